#include "grid_sample_3d_capi.h"

#include "grid_sample_3d.h"

namespace
{

template <typename T, typename G = T>
int launch(void const* x, void const* grid, void* y, facecodec::GridSample3DShape const& shape, int alignCorners,
    int channelsPerThread, cudaStream_t stream)
{
    return static_cast<int>(facecodec::gridSample3D(static_cast<T const*>(x), static_cast<G const*>(grid),
        static_cast<T*>(y), shape, alignCorners != 0, channelsPerThread, stream));
}

} // namespace

extern "C" int facecodec_grid_sample_3d_f32(float const* x, float const* grid, float* y, int64_t n, int64_t c,
    int64_t d, int64_t h, int64_t w, int64_t d_out, int64_t h_out, int64_t w_out, int align_corners,
    int channels_per_thread, cudaStream_t stream)
{
    return launch<float>(
        x, grid, y, {n, c, d, h, w, d_out, h_out, w_out}, align_corners, channels_per_thread, stream);
}

extern "C" int facecodec_grid_sample_3d_f16(void const* x, void const* grid, void* y, int64_t n, int64_t c,
    int64_t d, int64_t h, int64_t w, int64_t d_out, int64_t h_out, int64_t w_out, int align_corners,
    int channels_per_thread, cudaStream_t stream)
{
    return launch<__half>(
        x, grid, y, {n, c, d, h, w, d_out, h_out, w_out}, align_corners, channels_per_thread, stream);
}

extern "C" int facecodec_grid_sample_3d_f16_f32grid(void const* x, float const* grid, void* y, int64_t n,
    int64_t c, int64_t d, int64_t h, int64_t w, int64_t d_out, int64_t h_out, int64_t w_out, int align_corners,
    int channels_per_thread, cudaStream_t stream)
{
    return launch<__half, float>(
        x, grid, y, {n, c, d, h, w, d_out, h_out, w_out}, align_corners, channels_per_thread, stream);
}

extern "C" char const* facecodec_cuda_error_string(int code)
{
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}
