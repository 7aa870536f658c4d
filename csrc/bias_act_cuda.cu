// CUDA kernels of bias_act: forward, gradient and second derivative, one pass each.
//
// Elementwise over a dense tensor seen in memory order as [outer, C, inner]; the bias of flat
// element i is b[(i / inner) % C]. The activation formulas are shared with the CPU kernels
// (activations.h). Only CUDA headers are included (see kernels_cuda.h).

#include "activations.h"
#include "cuda_common.cuh"
#include "kernels_cuda.h"

namespace gb {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename S, int MODE>
__global__ void __launch_bounds__(kThreads) bias_act_kernel(BiasActArgs a) {
  using T = typename OpMath<S>::T;
  const S* __restrict__ x = static_cast<const S*>(a.x);
  const S* __restrict__ dy = static_cast<const S*>(a.dy);
  const S* __restrict__ g = static_cast<const S*>(a.g);
  const S* __restrict__ b = static_cast<const S*>(a.b);
  S* __restrict__ out = static_cast<S*>(a.out);
  const T alpha = static_cast<T>(a.alpha), gain = static_cast<T>(a.gain);
  const bool has_clamp = a.clamp >= 0;
  const T c = static_cast<T>(has_clamp ? a.clamp : 0.0);
  const int act = a.act;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  // The bias index of element i is (i / inner) % C. It is tracked incrementally along the
  // grid-stride loop: two divisions per thread, none per element.
  int64_t r = 0, ch = 0, step_r = 0, step_c = 0;  // i % inner, (i / inner) % C, their steps
  if (b != nullptr && i < a.numel) {
    const int64_t q = i / a.inner;
    r = i - q * a.inner;
    ch = q % a.C;
    const int64_t sq = stride / a.inner;
    step_r = stride - sq * a.inner;
    step_c = sq % a.C;
  }
  for (; i < a.numel; i += stride) {
    T z = to_op(x[i]);
    if (b != nullptr) {
      z += to_op(b[ch]);
      r += step_r;
      ch += step_c;
      if (r >= a.inner) {
        r -= a.inner;
        ++ch;
      }
      if (ch >= a.C) ch -= a.C;
    }
    T r;
    if (MODE == 0) {
      r = act_fn_rt(act, z, alpha) * gain;
      if (has_clamp) r = clamp_value(r, c);
    } else {
      const T d = MODE == 1 ? act_d1_rt(act, z, alpha) : act_d2_rt(act, z, alpha);
      r = to_op(dy[i]) * gain * d;
      if (MODE == 2) r *= to_op(g[i]);
      if (has_clamp) r *= clamp_mask(act_fn_rt(act, z, alpha) * gain, c);
    }
    store(out + i, r);
  }
}

template <typename S>
cudaError_t launch(const BiasActArgs& a, cudaStream_t stream) {
  const unsigned int blocks = grid_1d(a.numel, kThreads);
  switch (a.mode) {
    case 0: bias_act_kernel<S, 0><<<blocks, kThreads, 0, stream>>>(a); break;
    case 1: bias_act_kernel<S, 1><<<blocks, kThreads, 0, stream>>>(a); break;
    case 2: bias_act_kernel<S, 2><<<blocks, kThreads, 0, stream>>>(a); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t bias_act(const BiasActArgs& a, int dtype, cudaStream_t stream) {
  if (a.numel == 0) return cudaSuccess;
  if (a.act < kLinear || a.act > kSwish || a.C < 1 || a.inner < 1) return cudaErrorInvalidValue;
  switch (dtype) {
    case kF32: return launch<float>(a, stream);
    case kF64: return launch<double>(a, stream);
    case kF16: return launch<__half>(a, stream);
    case kBF16: return launch<__nv_bfloat16>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace cuda
}  // namespace gb
