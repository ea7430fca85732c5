/* C ABI over the 5-D grid-sample kernel: raw device pointers, shapes and a stream, for
 * callers that are not C++ (ctypes in the tests and benchmark, other runtimes).
 * Semantics and layouts: grid_sample_3d.h. Every function returns a cudaError_t value
 * (0 on success); the kernel runs asynchronously on `stream`. */
#ifndef FACECODEC_GRID_SAMPLE_3D_CAPI_H
#define FACECODEC_GRID_SAMPLE_3D_CAPI_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#if defined(__GNUC__)
#define FACECODEC_API __attribute__((visibility("default")))
#else
#define FACECODEC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* channels_per_thread: 0 = automatic; C or more = one thread per output voxel. */
FACECODEC_API int facecodec_grid_sample_3d_f32(float const* x, float const* grid, float* y, int64_t n, int64_t c,
    int64_t d, int64_t h, int64_t w, int64_t d_out, int64_t h_out, int64_t w_out, int align_corners,
    int channels_per_thread, cudaStream_t stream);

/* x, grid and y hold IEEE binary16 values; interpolation runs in fp32. */
FACECODEC_API int facecodec_grid_sample_3d_f16(void const* x, void const* grid, void* y, int64_t n, int64_t c,
    int64_t d, int64_t h, int64_t w, int64_t d_out, int64_t h_out, int64_t w_out, int align_corners,
    int channels_per_thread, cudaStream_t stream);

/* x and y hold IEEE binary16 values, grid fp32 (sampled at full precision); interpolation runs in fp32. */
FACECODEC_API int facecodec_grid_sample_3d_f16_f32grid(void const* x, float const* grid, void* y, int64_t n,
    int64_t c, int64_t d, int64_t h, int64_t w, int64_t d_out, int64_t h_out, int64_t w_out, int align_corners,
    int channels_per_thread, cudaStream_t stream);

/* Name of an error code returned above. */
FACECODEC_API char const* facecodec_cuda_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif /* FACECODEC_GRID_SAMPLE_3D_CAPI_H */
