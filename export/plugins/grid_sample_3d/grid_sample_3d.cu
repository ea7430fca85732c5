#include "grid_sample_3d.h"

#include <algorithm>
#include <climits>
#include <iterator>

namespace facecodec
{
namespace
{

constexpr int32_t kBLOCK_SIZE = 256;
constexpr int64_t kMAX_GRID_YZ = 65535;
// Enough threads to cover an H100/H200 (132 SMs x 2048 threads) about four times over.
constexpr int64_t kTARGET_THREADS = int64_t{1} << 20;
// Below this many channels per thread the per-voxel coordinate math stops being amortised.
constexpr int64_t kMIN_CHANNELS_PER_THREAD = 4;

__device__ __forceinline__ float loadFloat(float const* p)
{
    return __ldg(p);
}

__device__ __forceinline__ float loadFloat(__half const* p)
{
    return __half2float(__ldg(p));
}

__device__ __forceinline__ void storeFloat(float* p, float v)
{
    *p = v;
}

__device__ __forceinline__ void storeFloat(__half* p, float v)
{
    *p = __float2half_rn(v);
}

// Normalised [-1, 1] coordinate to voxel units, written as PyTorch writes it.
__device__ __forceinline__ float unnormalize(float coord, int32_t size, bool alignCorners)
{
    return alignCorners ? ((coord + 1.f) / 2.f) * static_cast<float>(size - 1)
                        : ((coord + 1.f) * static_cast<float>(size) - 1.f) / 2.f;
}

// One axis of the trilinear stencil: the lower index, both weights, and whether each of
// the two taps lies inside [0, size - 1]. Bounds are tested on the float so that NaN,
// inf and huge coordinates are rejected before any float-to-int conversion.
struct Axis
{
    int32_t i0;
    float w0, w1;
    bool in0, in1;
};

__device__ __forceinline__ Axis axis(float coord, int32_t size)
{
    float const f = floorf(coord);
    float const last = static_cast<float>(size - 1);
    Axis a;
    a.in0 = f >= 0.f && f <= last;
    a.in1 = f >= -1.f && f <= last - 1.f;
    a.i0 = static_cast<int32_t>(fminf(fmaxf(f, -1.f), last)); // clamped: only used when a tap is inside
    a.w0 = (f + 1.f) - coord;
    a.w1 = coord - f;
    return a;
}

// One thread per output voxel of one batch item (blockIdx.z) and one group of channels
// (blockIdx.y): the stencil is computed once and reused for every channel of the group.
// T is the type of x and y, G the grid's (an fp32 grid keeps fp16 features' sampling exact).
template <typename T, typename G>
__global__ void __launch_bounds__(kBLOCK_SIZE) gridSample3DKernel(T const* __restrict__ x,
    G const* __restrict__ grid, T* __restrict__ y, int32_t channels, int32_t d, int32_t h, int32_t w,
    int32_t outVol, int32_t channelsPerThread, bool alignCorners)
{
    int32_t const s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= outVol)
    {
        return;
    }
    int64_t const n = blockIdx.z;
    int32_t const c0 = blockIdx.y * channelsPerThread;
    int32_t const c1 = static_cast<int32_t>(min(static_cast<int64_t>(c0) + channelsPerThread, int64_t{channels}));

    G const* g = grid + (n * outVol + s) * 3;
    Axis const ax = axis(unnormalize(loadFloat(g + 0), w, alignCorners), w);
    Axis const ay = axis(unnormalize(loadFloat(g + 1), h, alignCorners), h);
    Axis const az = axis(unnormalize(loadFloat(g + 2), d, alignCorners), d);

    // Corner k = (dz, dy, dx) in PyTorch's accumulation order: tnw, tne, tsw, tse, bnw, ...
    int32_t off[8];
    float wt[8];
    uint32_t inside = 0;
#pragma unroll
    for (int32_t k = 0; k < 8; ++k)
    {
        int32_t const dz = k >> 2, dy = (k >> 1) & 1, dx = k & 1;
        bool const in = (dx ? ax.in1 : ax.in0) && (dy ? ay.in1 : ay.in0) && (dz ? az.in1 : az.in0);
        off[k] = in ? ((az.i0 + dz) * h + (ay.i0 + dy)) * w + (ax.i0 + dx) : 0;
        wt[k] = (dx ? ax.w1 : ax.w0) * (dy ? ay.w1 : ay.w0) * (dz ? az.w1 : az.w0);
        inside |= static_cast<uint32_t>(in) << k;
    }

    int64_t const inVol = static_cast<int64_t>(d) * h * w;
    T const* xc = x + (n * channels + c0) * inVol;
    T* yc = y + (n * channels + c0) * outVol + s;
    for (int32_t c = c0; c < c1; ++c, xc += inVol, yc += outVol)
    {
        float acc = 0.f;
#pragma unroll
        for (int32_t k = 0; k < 8; ++k)
        {
            // Skip (not zero-weight) outside corners so inf/NaN there cannot leak in.
            if (inside & (1u << k))
            {
                acc += loadFloat(xc + off[k]) * wt[k];
            }
        }
        storeFloat(yc, acc);
    }
}

int64_t chooseChannelsPerThread(int64_t c, int64_t outVol, int64_t n)
{
    int64_t cpt = c;
    while (cpt > kMIN_CHANNELS_PER_THREAD && n * outVol * ((c + cpt - 1) / cpt) < kTARGET_THREADS)
    {
        cpt = (cpt + 1) / 2;
    }
    return cpt;
}

} // namespace

template <typename T, typename G>
cudaError_t gridSample3D(T const* x, G const* grid, T* y, GridSample3DShape const& s, bool alignCorners,
    int32_t channelsPerThread, cudaStream_t stream)
{
    int64_t const dims[] = {s.n, s.c, s.d, s.h, s.w, s.dOut, s.hOut, s.wOut};
    if (std::any_of(std::begin(dims), std::end(dims), [](int64_t v) { return v < 0; }) || channelsPerThread < 0)
    {
        return cudaErrorInvalidValue;
    }
    int64_t const inVol = s.d * s.h * s.w;
    int64_t const outVol = s.dOut * s.hOut * s.wOut;
    if (s.n == 0 || s.c == 0 || outVol == 0)
    {
        return cudaSuccess;
    }
    // Offsets inside one (n, c) volume are 32-bit; batch and channel strides are 64-bit.
    if (x == nullptr || grid == nullptr || y == nullptr || inVol > INT32_MAX || outVol > INT32_MAX - kBLOCK_SIZE
        || s.c > INT32_MAX)
    {
        return cudaErrorInvalidValue;
    }

    int64_t cpt = channelsPerThread == kAUTO_CHANNELS_PER_THREAD ? chooseChannelsPerThread(s.c, outVol, s.n)
                                                                  : std::min<int64_t>(channelsPerThread, s.c);
    cpt = std::max(cpt, (s.c + kMAX_GRID_YZ - 1) / kMAX_GRID_YZ);
    dim3 const block(kBLOCK_SIZE);
    // gridDim.z is at most 65535, so very large batches go in chunks.
    for (int64_t n0 = 0; n0 < s.n; n0 += kMAX_GRID_YZ)
    {
        int64_t const nb = std::min(kMAX_GRID_YZ, s.n - n0);
        dim3 const blocks(static_cast<uint32_t>((outVol + kBLOCK_SIZE - 1) / kBLOCK_SIZE),
            static_cast<uint32_t>((s.c + cpt - 1) / cpt), static_cast<uint32_t>(nb));
        gridSample3DKernel<T, G><<<blocks, block, 0, stream>>>(x + n0 * s.c * inVol, grid + n0 * outVol * 3,
            y + n0 * s.c * outVol, static_cast<int32_t>(s.c), static_cast<int32_t>(s.d), static_cast<int32_t>(s.h),
            static_cast<int32_t>(s.w), static_cast<int32_t>(outVol), static_cast<int32_t>(cpt), alignCorners);
        cudaError_t const err = cudaGetLastError();
        if (err != cudaSuccess)
        {
            return err;
        }
    }
    return cudaSuccess;
}

template cudaError_t gridSample3D<float, float>(
    float const*, float const*, float*, GridSample3DShape const&, bool, int32_t, cudaStream_t);
template cudaError_t gridSample3D<__half, __half>(
    __half const*, __half const*, __half*, GridSample3DShape const&, bool, int32_t, cudaStream_t);
template cudaError_t gridSample3D<__half, float>(
    __half const*, float const*, __half*, GridSample3DShape const&, bool, int32_t, cudaStream_t);

} // namespace facecodec
