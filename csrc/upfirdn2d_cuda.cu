// CUDA kernels of upfirdn2d (see upfirdn2d_cpu.cpp for the semantics and the polyphase indexing).
//
// * upfirdn2d_generic: one thread per output sample, any factors, filter size and strides;
// * upfirdn2d_tiled_nchw / upfirdn2d_tiled_nhwc: the common cases (up or down by 1, 2 or 4 on
//   both axes, filters up to 8x8): a block stages the input tile its outputs need (and the
//   filter) in shared memory, then every thread reads its polyphase taps from there. The NCHW
//   kernel tiles one image plane per block; the NHWC kernel tiles a group of channels, so that
//   consecutive threads touch consecutive channels (coalesced for channels-last tensors).
//
// Only CUDA headers are included: the torch binding (cuda_ops.cpp) passes pointers, strides and
// the stream, so this file compiles with nvcc alone.

#include "cuda_common.cuh"
#include "kernels_cuda.h"

namespace gb {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kFMax = 8;

template <typename S>
__global__ void __launch_bounds__(kThreads) upfirdn2d_generic(UpFirDn2dArgs a, bool channels_last) {
  using T = typename OpMath<S>::T;
  const S* __restrict__ x = static_cast<const S*>(a.x);
  S* __restrict__ y = static_cast<S*>(a.y);
  const T* __restrict__ w = static_cast<const T*>(a.w);
  const int64_t total = a.N * a.C * a.OH * a.OW;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t n, c, oy, ox, t = idx;
    if (channels_last) {  // thread order = NHWC memory order
      c = t % a.C;
      t /= a.C;
      ox = t % a.OW;
      t /= a.OW;
      oy = t % a.OH;
      n = t / a.OH;
    } else {
      ox = t % a.OW;
      t /= a.OW;
      oy = t % a.OH;
      t /= a.OH;
      c = t % a.C;
      n = t / a.C;
    }
    const int64_t k0x = ox * a.downx - a.padx0;
    const int64_t k0y = oy * a.downy - a.pady0;
    const int64_t tx0 = mod_pos(-k0x, a.upx), ix0 = (k0x + tx0) / a.upx;
    const int64_t ty0 = mod_pos(-k0y, a.upy), iy0 = (k0y + ty0) / a.upy;
    const S* xp = x + n * a.sx[0] + c * a.sx[1];
    T acc = T(0);
    int64_t iy = iy0;
    for (int64_t ty = ty0; ty < a.fh; ty += a.upy, ++iy) {
      if (iy < 0 || iy >= a.H) continue;
      int64_t ix = ix0;
      for (int64_t tx = tx0; tx < a.fw; tx += a.upx, ++ix) {
        if (ix < 0 || ix >= a.W) continue;
        acc += w[ty * a.fw + tx] * to_op(xp[iy * a.sx[2] + ix * a.sx[3]]);
      }
    }
    store(y + n * a.sy[0] + c * a.sy[1] + oy * a.sy[2] + ox * a.sy[3], acc);
  }
}

// Output tile TW x TH of one plane per block; the input tile is ITH x ITW.
template <typename S, int UP, int DOWN, int TW, int TH>
__global__ void __launch_bounds__(kThreads) upfirdn2d_tiled_nchw(UpFirDn2dArgs a) {
  using T = typename OpMath<S>::T;
  constexpr int ITW = ((TW - 1) * DOWN + kFMax - 1) / UP + 2;
  constexpr int ITH = ((TH - 1) * DOWN + kFMax - 1) / UP + 2;
  constexpr int NTAP = (kFMax + UP - 1) / UP;
  __shared__ T sw[kFMax * kFMax];
  __shared__ T sx[ITH][ITW];
  const S* __restrict__ x = static_cast<const S*>(a.x);
  S* __restrict__ y = static_cast<S*>(a.y);
  const T* __restrict__ w = static_cast<const T*>(a.w);
  const int fw = a.fw, fh = a.fh;
  for (int i = threadIdx.x; i < fw * fh; i += blockDim.x) sw[i] = w[i];
  const int64_t ox0 = int64_t(blockIdx.x) * TW, oy0 = int64_t(blockIdx.y) * TH;
  const int64_t ix_base = ceil_div(ox0 * DOWN - a.padx0, UP);
  const int64_t iy_base = ceil_div(oy0 * DOWN - a.pady0, UP);
  for (int64_t plane = blockIdx.z; plane < a.N * a.C; plane += gridDim.z) {
    const int64_t n = plane / a.C, c = plane % a.C;
    const S* xp = x + n * a.sx[0] + c * a.sx[1];
    __syncthreads();  // the previous plane's tile is no longer read (and sw is complete)
    for (int i = threadIdx.x; i < ITH * ITW; i += blockDim.x) {
      const int r = i / ITW, q = i % ITW;
      const int64_t iy = iy_base + r, ix = ix_base + q;
      T v = T(0);
      if (iy >= 0 && iy < a.H && ix >= 0 && ix < a.W) v = to_op(xp[iy * a.sx[2] + ix * a.sx[3]]);
      sx[r][q] = v;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < TW * TH; i += blockDim.x) {
      const int64_t ox = ox0 + i % TW, oy = oy0 + i / TW;
      if (ox >= a.OW || oy >= a.OH) continue;
      const int64_t k0x = ox * DOWN - a.padx0, k0y = oy * DOWN - a.pady0;
      const int tx0 = static_cast<int>(mod_pos(-k0x, UP));
      const int ty0 = static_cast<int>(mod_pos(-k0y, UP));
      const int jx = static_cast<int>((k0x + tx0) / UP - ix_base);
      const int jy = static_cast<int>((k0y + ty0) / UP - iy_base);
      T acc = T(0);
#pragma unroll
      for (int my = 0; my < NTAP; ++my) {
        const int ty = ty0 + my * UP;
        if (ty >= fh) break;
#pragma unroll
        for (int mx = 0; mx < NTAP; ++mx) {
          const int tx = tx0 + mx * UP;
          if (tx >= fw) break;
          acc += sw[ty * fw + tx] * sx[jy + my][jx + mx];
        }
      }
      store(y + n * a.sy[0] + c * a.sy[1] + oy * a.sy[2] + ox * a.sy[3], acc);
    }
  }
}

// Output tile TW x TH x CC channels per block, channels fastest (channels-last tensors).
template <typename S, int UP, int DOWN, int TW, int TH>
__global__ void __launch_bounds__(kThreads) upfirdn2d_tiled_nhwc(UpFirDn2dArgs a) {
  using T = typename OpMath<S>::T;
  constexpr int CC = 64 / sizeof(T);  // 16 float or 8 double channels
  constexpr int ITW = ((TW - 1) * DOWN + kFMax - 1) / UP + 2;
  constexpr int ITH = ((TH - 1) * DOWN + kFMax - 1) / UP + 2;
  constexpr int NTAP = (kFMax + UP - 1) / UP;
  __shared__ T sw[kFMax * kFMax];
  __shared__ T sx[ITH * ITW * CC];
  const S* __restrict__ x = static_cast<const S*>(a.x);
  S* __restrict__ y = static_cast<S*>(a.y);
  const T* __restrict__ w = static_cast<const T*>(a.w);
  const int fw = a.fw, fh = a.fh;
  for (int i = threadIdx.x; i < fw * fh; i += blockDim.x) sw[i] = w[i];
  const int64_t ox0 = int64_t(blockIdx.x) * TW, oy0 = int64_t(blockIdx.y) * TH;
  const int64_t ix_base = ceil_div(ox0 * DOWN - a.padx0, UP);
  const int64_t iy_base = ceil_div(oy0 * DOWN - a.pady0, UP);
  const int64_t cgroups = (a.C + CC - 1) / CC;
  for (int64_t zz = blockIdx.z; zz < a.N * cgroups; zz += gridDim.z) {
    const int64_t n = zz / cgroups, c0 = (zz % cgroups) * CC;
    const S* xp = x + n * a.sx[0];
    __syncthreads();
    for (int i = threadIdx.x; i < ITH * ITW * CC; i += blockDim.x) {
      const int cc = i % CC, q = (i / CC) % ITW, r = i / (CC * ITW);
      const int64_t iy = iy_base + r, ix = ix_base + q, c = c0 + cc;
      T v = T(0);
      if (c < a.C && iy >= 0 && iy < a.H && ix >= 0 && ix < a.W) {
        v = to_op(xp[c * a.sx[1] + iy * a.sx[2] + ix * a.sx[3]]);
      }
      sx[i] = v;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < TW * TH * CC; i += blockDim.x) {
      const int cc = i % CC, lx = (i / CC) % TW, ly = i / (CC * TW);
      const int64_t ox = ox0 + lx, oy = oy0 + ly, c = c0 + cc;
      if (ox >= a.OW || oy >= a.OH || c >= a.C) continue;
      const int64_t k0x = ox * DOWN - a.padx0, k0y = oy * DOWN - a.pady0;
      const int tx0 = static_cast<int>(mod_pos(-k0x, UP));
      const int ty0 = static_cast<int>(mod_pos(-k0y, UP));
      const int jx = static_cast<int>((k0x + tx0) / UP - ix_base);
      const int jy = static_cast<int>((k0y + ty0) / UP - iy_base);
      T acc = T(0);
#pragma unroll
      for (int my = 0; my < NTAP; ++my) {
        const int ty = ty0 + my * UP;
        if (ty >= fh) break;
#pragma unroll
        for (int mx = 0; mx < NTAP; ++mx) {
          const int tx = tx0 + mx * UP;
          if (tx >= fw) break;
          acc += sw[ty * fw + tx] * sx[((jy + my) * ITW + (jx + mx)) * CC + cc];
        }
      }
      store(y + n * a.sy[0] + c * a.sy[1] + oy * a.sy[2] + ox * a.sy[3], acc);
    }
  }
}

inline unsigned int clamp_grid(int64_t v, int64_t hi) {
  return static_cast<unsigned int>(v < 1 ? 1 : (v > hi ? hi : v));
}

template <typename S, int UP, int DOWN>
cudaError_t launch_tiled(const UpFirDn2dArgs& a, bool channels_last, cudaStream_t stream) {
  if (channels_last) {
    using T = typename OpMath<S>::T;
    constexpr int CC = 64 / sizeof(T);
    constexpr int TW = DOWN == 1 ? 8 : 4, TH = TW;
    if ((a.OH + TH - 1) / TH > kMaxGridY) return cudaErrorNotSupported;  // y indexes tiles
    const dim3 grid(clamp_grid((a.OW + TW - 1) / TW, 2147483647),
                    clamp_grid((a.OH + TH - 1) / TH, kMaxGridY),
                    clamp_grid(a.N * ((a.C + CC - 1) / CC), kMaxGridZ));
    upfirdn2d_tiled_nhwc<S, UP, DOWN, TW, TH><<<grid, kThreads, 0, stream>>>(a);
  } else {
    constexpr int TW = 32, TH = 32 / DOWN;
    if ((a.OH + TH - 1) / TH > kMaxGridY) return cudaErrorNotSupported;  // y indexes tiles
    const dim3 grid(clamp_grid((a.OW + TW - 1) / TW, 2147483647),
                    clamp_grid((a.OH + TH - 1) / TH, kMaxGridY),
                    clamp_grid(a.N * a.C, kMaxGridZ));
    upfirdn2d_tiled_nchw<S, UP, DOWN, TW, TH><<<grid, kThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

template <typename S>
cudaError_t launch(const UpFirDn2dArgs& a, bool channels_last, cudaStream_t stream, int* path) {
  const bool square = a.upx == a.upy && a.downx == a.downy;
  const bool small = a.fw <= kFMax && a.fh <= kFMax;
  if (square && small) {
    const int up = a.upx, down = a.downx;
    cudaError_t err = cudaErrorNotSupported;
    if (up == 1 && down == 1) err = launch_tiled<S, 1, 1>(a, channels_last, stream);
    else if (up == 2 && down == 1) err = launch_tiled<S, 2, 1>(a, channels_last, stream);
    else if (up == 4 && down == 1) err = launch_tiled<S, 4, 1>(a, channels_last, stream);
    else if (up == 1 && down == 2) err = launch_tiled<S, 1, 2>(a, channels_last, stream);
    else if (up == 1 && down == 4) err = launch_tiled<S, 1, 4>(a, channels_last, stream);
    if (err != cudaErrorNotSupported) {
      if (path) *path = channels_last ? kTiledNHWC : kTiledNCHW;
      return err;
    }
  }
  const int64_t total = a.N * a.C * a.OH * a.OW;
  upfirdn2d_generic<S><<<grid_1d(total, kThreads), kThreads, 0, stream>>>(a, channels_last);
  if (path) *path = kGeneric;
  return cudaGetLastError();
}

}  // namespace

cudaError_t upfirdn2d(const UpFirDn2dArgs& a, int dtype, bool channels_last, cudaStream_t stream,
                      int* path) {
  if (a.N * a.C * a.OH * a.OW == 0) return cudaSuccess;
  switch (dtype) {
    case kF32: return launch<float>(a, channels_last, stream, path);
    case kF64: return launch<double>(a, channels_last, stream, path);
    case kF16: return launch<__half>(a, channels_last, stream, path);
    case kBF16: return launch<__nv_bfloat16>(a, channels_last, stream, path);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace cuda
}  // namespace gb
