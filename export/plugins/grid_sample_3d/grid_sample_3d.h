// 5-D grid sample (trilinear, zeros padding) on NCDHW tensors: the launcher shared by the
// TensorRT plugin, the C-ABI library and the Python test/benchmark loader.
//
// Semantics are those of torch.nn.functional.grid_sample(x, grid, mode="bilinear",
// padding_mode="zeros", align_corners=...) for 5-D input:
//   x    (N, C, D, H, W)
//   grid (N, Do, Ho, Wo, 3), last axis (x -> W, y -> H, z -> D) in [-1, 1]
//   y    (N, C, Do, Ho, Wo)
// Each of the 8 corners contributes only if it lies inside the volume; non-finite
// coordinates sample nothing (output 0), as PyTorch's CPU kernel does.
#pragma once

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace facecodec
{

struct GridSample3DShape
{
    int64_t n, c, d, h, w;      // x
    int64_t dOut, hOut, wOut;   // grid and y
};

// Channels handled by one thread. 0 picks a split that keeps small batches from
// under-filling the GPU; c (or more) keeps one thread per output voxel for all channels.
constexpr int32_t kAUTO_CHANNELS_PER_THREAD = 0;

// Launches on `stream` and returns the launch status (cudaSuccess, or
// cudaErrorInvalidValue for shapes the kernel cannot index). T (x and y) and G (grid) are
// float/float, __half/__half or __half/float: fp16 features with an fp32 grid sample at the
// grid's full precision. Arithmetic is fp32 throughout.
template <typename T, typename G>
cudaError_t gridSample3D(T const* x, G const* grid, T* y, GridSample3DShape const& shape, bool alignCorners,
    int32_t channelsPerThread, cudaStream_t stream);

extern template cudaError_t gridSample3D<float, float>(
    float const*, float const*, float*, GridSample3DShape const&, bool, int32_t, cudaStream_t);
extern template cudaError_t gridSample3D<__half, __half>(
    __half const*, __half const*, __half*, GridSample3DShape const&, bool, int32_t, cudaStream_t);
extern template cudaError_t gridSample3D<__half, float>(
    __half const*, float const*, __half*, GridSample3DShape const&, bool, int32_t, cudaStream_t);

} // namespace facecodec
