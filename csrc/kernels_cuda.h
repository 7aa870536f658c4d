// Interface between the CUDA kernels (*.cu) and their torch binding (cuda_ops.cpp).
//
// Plain C++ and the CUDA runtime API only: the .cu files include no torch header, so they compile
// with nvcc alone (a CPU-only build of torch is enough to check them) and the binding passes in
// raw pointers, sizes, strides and the current stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gb {
namespace cuda {

enum DType : int { kF32 = 0, kF64 = 1, kF16 = 2, kBF16 = 3 };

struct UpFirDn2dArgs {
  const void* x;  // input, dtype `dtype`, strides sx (elements) for n, c, h, w
  void* y;        // output, strides sy
  const void* w;  // [fh, fw] taps in correlation order: float (double for kF64 inputs)
  int64_t N, C, H, W, OH, OW;
  int64_t sx[4];
  int64_t sy[4];
  int upx, upy, downx, downy, padx0, pady0, fw, fh;
};

// Which kernel upfirdn2d chose (reported for diagnostics and the per-configuration self-check).
enum UpFirDn2dPath : int { kGeneric = 0, kTiledNCHW = 1, kTiledNHWC = 2 };

// Launches upfirdn2d on `stream`. channels_last: x and y are NHWC-dense (else y is NCHW-dense).
cudaError_t upfirdn2d(const UpFirDn2dArgs& a, int dtype, bool channels_last, cudaStream_t stream,
                      int* path);

struct BiasActArgs {
  const void* x;   // input (dense), layout [outer, C, inner] in memory order
  const void* dy;  // incoming gradient (mode >= 1), same layout as x
  const void* g;   // gradient of the gradient (mode 2), same layout as x
  const void* b;   // bias [C] in x's dtype, or nullptr
  void* out;       // result, same layout as x
  int64_t numel, C, inner;
  int act;
  int mode;  // 0: y = clamp(act(x + b) * gain), 1: dx, 2: d(dx)/dx contracted with g
  double alpha, gain, clamp;  // clamp < 0: none
};

cudaError_t bias_act(const BiasActArgs& a, int dtype, cudaStream_t stream);

}  // namespace cuda
}  // namespace gb
