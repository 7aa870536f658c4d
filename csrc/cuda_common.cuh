// Small device helpers shared by the CUDA kernels: compute types, loads and stores.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace gb {
namespace cuda {

// Compute type: float for float/half/bfloat16, double for double.
template <typename S>
struct OpMath {
  using T = float;
};
template <>
struct OpMath<double> {
  using T = double;
};

__device__ __forceinline__ float to_op(float v) { return v; }
__device__ __forceinline__ double to_op(double v) { return v; }
__device__ __forceinline__ float to_op(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_op(__nv_bfloat16 v) { return __bfloat162float(v); }

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

__host__ __device__ __forceinline__ int64_t mod_pos(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

// ceil(a / b) for b > 0 and any sign of a.
__host__ __device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

// Launch limits (kept equal to _CUDA_MAX_* in ganblocks/ops/native.py, whose self-check builds
// inputs just past them): a 1-D grid has at most kMaxBlocks1D blocks and strides over the rest
// (4096 x 256 threads fill any current GPU); the tiled upfirdn2d kernels stride over more than
// kMaxGridZ planes, and hand outputs taller than kMaxGridY tiles to the generic kernel. The
// limits are low enough that a small input exercises each of these paths.
constexpr int64_t kMaxBlocks1D = 4096;
constexpr int64_t kMaxGridZ = 4096;
constexpr int64_t kMaxGridY = 65535;

inline unsigned int grid_1d(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > kMaxBlocks1D) blocks = kMaxBlocks1D;  // grid-stride loops cover the rest
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks);
}

}  // namespace cuda
}  // namespace gb
