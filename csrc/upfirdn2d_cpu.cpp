// CPU kernels of upfirdn2d: upsample (zero insertion), pad/crop, FIR filter, downsample.
//
// The filter `w` arrives in correlation form (flipped by the caller where the op convolves),
// already scaled by the gain and rounded to the input's dtype, and stored in the compute type
// (float for float/bfloat16 inputs, double for double inputs):
//
//   out[oy][ox] = sum_{ty, tx} w[ty][tx] * u[oy * down_y + ty][ox * down_x + tx]
//
// where u is the upsampled, padded input: u[k] = x[(k - pad0) / up] when k - pad0 is a
// non-negative multiple of `up` inside the input, else 0 (per axis).
//
// The kernels are polyphase: an output o only meets the taps t with (o * down - pad0 + t) % up
// == 0, so each axis is planned once (which taps and which input samples each output phase
// uses) and the inserted zeros are never multiplied. Two strategies:
//
// * separable (1-D filters, and 2-D filters that are an outer product col ⊗ row, such as
//   setup_filter([1, 3, 3, 1])): a horizontal pass filters the needed input rows into a row
//   buffer (reused by every output row that needs them), then a vertical pass combines
//   buffered rows into each output row;
// * general 2-D: each output row accumulates, per filter row, the horizontal polyphase FIR of
//   the matching input row.
//
// Work is split over (image, channel, strip of output rows) with at::parallel_for; the inner
// loops run over contiguous buffers with compile-time tap counts and strides so that the
// compiler vectorises them. Channels-last inputs run the same two strategies with whole pixels
// (all channels) as the unit, vectorised over channels. bfloat16/float16 rows are converted to
// and from float a SIMD vector at a time.

#include "cpu_vec.h"  // first: selects the SIMD width of at::vec

#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "ops.h"

namespace gb {
namespace {

inline int64_t mod_pos(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

// Taps of output sample `o` along one axis: first tap t0, first input index i0, tap count nt
// (taps t0, t0 + up, ... meet inputs i0, i0 + 1, ...).
inline void output_taps(int64_t o, int64_t up, int64_t down, int64_t pad0, int64_t taps,
                        int64_t& t0, int64_t& i0, int64_t& nt) {
  const int64_t k0 = o * down - pad0;  // upsampled index met by tap 0
  t0 = mod_pos(-k0, up);
  i0 = (k0 + t0) / up;  // exact division
  nt = t0 < taps ? (taps - t0 + up - 1) / up : 0;
}

// Polyphase plan of one axis. Outputs o = p + P * j (phase p) share their taps, and their first
// input index advances by S per step of j.
struct Axis {
  int64_t in = 0, out = 0, up = 1, down = 1, pad0 = 0, taps = 1;
  int64_t P = 1, S = 1, nph = 1;
  std::vector<int64_t> t0, nt, i0, nj;
  int64_t lpad = 0, rpad = 0;  // zeros needed before / after the input row
  int64_t njmax = 0;
};

Axis make_axis(int64_t in, int64_t out, int64_t up, int64_t down, int64_t pad0, int64_t taps) {
  Axis a;
  a.in = in;
  a.out = out;
  a.up = up;
  a.down = down;
  a.pad0 = pad0;
  a.taps = taps;
  const int64_t g = std::gcd(up, down);
  a.P = up / g;
  a.S = down / g;
  a.nph = std::min(a.P, out);
  int64_t lo = 0, hi = in - 1;
  for (int64_t p = 0; p < a.nph; ++p) {
    int64_t t0, i0, nt;
    output_taps(p, up, down, pad0, taps, t0, i0, nt);
    const int64_t nj = (out - p + a.P - 1) / a.P;
    a.t0.push_back(t0);
    a.i0.push_back(i0);
    a.nt.push_back(nt);
    a.nj.push_back(nj);
    a.njmax = std::max(a.njmax, nj);
    if (nt > 0 && nj > 0) {
      lo = std::min(lo, i0);
      hi = std::max(hi, i0 + a.S * (nj - 1) + nt - 1);
    }
  }
  a.lpad = -lo;
  a.rpad = hi - (in - 1);
  return a;
}

// ---------------------------------------------------------------------------------------------
// One phase of a 1-D polyphase FIR: dst[j] (+)= sum_m wt[m] * s[st * j + m], j < nj.

template <typename T, int NT, int S>
inline void phase_fixed(const T* __restrict s, int64_t st_rt, const T* __restrict wt, int64_t nj,
                        T* __restrict dst, bool acc) {
  const int64_t st = S > 0 ? S : st_rt;
  T w[NT];
  for (int m = 0; m < NT; ++m) w[m] = wt[m];
  if (acc) {
    for (int64_t j = 0; j < nj; ++j) {
      T v = dst[j];
      for (int m = 0; m < NT; ++m) v += w[m] * s[st * j + m];
      dst[j] = v;
    }
  } else {
    for (int64_t j = 0; j < nj; ++j) {
      T v = w[0] * s[st * j];
      for (int m = 1; m < NT; ++m) v += w[m] * s[st * j + m];
      dst[j] = v;
    }
  }
}

template <typename T, int S>
inline void phase_any(const T* __restrict s, int64_t st_rt, const T* __restrict wt, int64_t nt,
                      int64_t nj, T* __restrict dst, bool acc) {
  const int64_t st = S > 0 ? S : st_rt;
  if (!acc) std::fill(dst, dst + nj, T(0));
  for (int64_t m = 0; m < nt; ++m) {
    const T wm = wt[m];
    const T* __restrict sm = s + m;
    for (int64_t j = 0; j < nj; ++j) dst[j] += wm * sm[st * j];
  }
}

template <typename T, int S>
inline void phase_dispatch_nt(const T* s, int64_t st, const T* wt, int64_t nt, int64_t nj, T* dst,
                              bool acc) {
  switch (nt) {
    case 1: phase_fixed<T, 1, S>(s, st, wt, nj, dst, acc); break;
    case 2: phase_fixed<T, 2, S>(s, st, wt, nj, dst, acc); break;
    case 3: phase_fixed<T, 3, S>(s, st, wt, nj, dst, acc); break;
    case 4: phase_fixed<T, 4, S>(s, st, wt, nj, dst, acc); break;
    case 5: phase_fixed<T, 5, S>(s, st, wt, nj, dst, acc); break;
    case 6: phase_fixed<T, 6, S>(s, st, wt, nj, dst, acc); break;
    case 7: phase_fixed<T, 7, S>(s, st, wt, nj, dst, acc); break;
    case 8: phase_fixed<T, 8, S>(s, st, wt, nj, dst, acc); break;
    default: phase_any<T, S>(s, st, wt, nt, nj, dst, acc); break;
  }
}

template <typename T>
inline void run_phase(const T* s, int64_t st, const T* wt, int64_t nt, int64_t nj, T* dst,
                      bool acc) {
  if (st == 1) {
    phase_dispatch_nt<T, 1>(s, st, wt, nt, nj, dst, acc);
  } else if (st == 2) {
    phase_dispatch_nt<T, 2>(s, st, wt, nt, nj, dst, acc);
  } else {
    phase_dispatch_nt<T, 0>(s, st, wt, nt, nj, dst, acc);
  }
}

// Filters one row along an axis into phase-major scratch ph[p * ldp + j]. `src` points at input
// index 0 of a buffer holding a.lpad zeros before it and a.rpad zeros after the row. `w` holds the
// axis' taps (correlation order, contiguous).
template <typename T>
void fir_phases(const T* src, const T* w, const Axis& a, T* ph, int64_t ldp, bool acc) {
  T wt[64];
  std::vector<T> wt_big;
  for (int64_t p = 0; p < a.nph; ++p) {
    T* dst = ph + p * ldp;
    const int64_t nj = a.nj[p], nt = a.nt[p];
    if (nt == 0) {
      if (!acc) std::fill(dst, dst + nj, T(0));
      continue;
    }
    T* taps = wt;
    if (nt > 64) {
      wt_big.resize(nt);
      taps = wt_big.data();
    }
    for (int64_t m = 0; m < nt; ++m) taps[m] = w[a.t0[p] + m * a.up];
    run_phase(src + a.i0[p], a.S, taps, nt, nj, dst, acc);
  }
}

// Writes phase-major results back in output order (out[p + P * j] = ph[p * ldp + j]), converting
// to the output type.
template <typename T, typename O>
void interleave(const T* __restrict ph, int64_t ldp, const Axis& a, O* __restrict out) {
  const int64_t P = a.P, n = a.out;
  if (P == 1) {
    for (int64_t j = 0; j < n; ++j) out[j] = static_cast<O>(ph[j]);
  } else if (P == 2) {
    const T* __restrict p0 = ph;
    const T* __restrict p1 = ph + ldp;
    const int64_t full = n / 2;
    for (int64_t j = 0; j < full; ++j) {
      out[2 * j] = static_cast<O>(p0[j]);
      out[2 * j + 1] = static_cast<O>(p1[j]);
    }
    if (n % 2) out[n - 1] = static_cast<O>(p0[full]);
  } else if (P == 4) {
    const int64_t full = n / 4;
    const T* __restrict p0 = ph;
    const T* __restrict p1 = ph + ldp;
    const T* __restrict p2 = ph + 2 * ldp;
    const T* __restrict p3 = ph + 3 * ldp;
    for (int64_t j = 0; j < full; ++j) {
      out[4 * j] = static_cast<O>(p0[j]);
      out[4 * j + 1] = static_cast<O>(p1[j]);
      out[4 * j + 2] = static_cast<O>(p2[j]);
      out[4 * j + 3] = static_cast<O>(p3[j]);
    }
    for (int64_t o = 4 * full; o < n; ++o) out[o] = static_cast<O>(ph[(o % 4) * ldp + full]);
  } else {
    for (int64_t p = 0; p < a.nph; ++p) {
      for (int64_t j = 0; j < a.nj[p]; ++j) out[p + P * j] = static_cast<O>(ph[p * ldp + j]);
    }
  }
}

// out[j] = sum_k wk * rows[k][j], converted to the output type.
template <typename T, typename O>
void combine_rows(const T* const* rows, const T* ws, int64_t k, int64_t n, O* __restrict out,
                  T* __restrict acc) {
  if (k == 0) {
    for (int64_t j = 0; j < n; ++j) out[j] = static_cast<O>(T(0));
  } else if (k == 1) {
    const T w0 = ws[0];
    const T* __restrict r0 = rows[0];
    for (int64_t j = 0; j < n; ++j) out[j] = static_cast<O>(w0 * r0[j]);
  } else if (k == 2) {
    const T w0 = ws[0], w1 = ws[1];
    const T* __restrict r0 = rows[0];
    const T* __restrict r1 = rows[1];
    for (int64_t j = 0; j < n; ++j) out[j] = static_cast<O>(w0 * r0[j] + w1 * r1[j]);
  } else if (k == 3) {
    const T w0 = ws[0], w1 = ws[1], w2 = ws[2];
    const T* __restrict r0 = rows[0];
    const T* __restrict r1 = rows[1];
    const T* __restrict r2 = rows[2];
    for (int64_t j = 0; j < n; ++j) out[j] = static_cast<O>(w0 * r0[j] + w1 * r1[j] + w2 * r2[j]);
  } else if (k == 4) {
    const T w0 = ws[0], w1 = ws[1], w2 = ws[2], w3 = ws[3];
    const T* __restrict r0 = rows[0];
    const T* __restrict r1 = rows[1];
    const T* __restrict r2 = rows[2];
    const T* __restrict r3 = rows[3];
    for (int64_t j = 0; j < n; ++j) {
      out[j] = static_cast<O>(w0 * r0[j] + w1 * r1[j] + w2 * r2[j] + w3 * r3[j]);
    }
  } else {
    // Blocks of four vectors of outputs summed over all k rows in registers: one load per
    // multiply-add and one store per output (a running sum in memory costs a load and a store
    // per tap).
    using V = gb::Vec<T>;
    constexpr int64_t L = V::size();
    int64_t j0 = 0;
    for (; j0 + 4 * L <= n; j0 += 4 * L) {
      const V w0(ws[0]);
      const T* r0 = rows[0] + j0;
      V a0 = w0 * V::loadu(r0), a1 = w0 * V::loadu(r0 + L);
      V a2 = w0 * V::loadu(r0 + 2 * L), a3 = w0 * V::loadu(r0 + 3 * L);
      for (int64_t m = 1; m < k; ++m) {
        const V wm(ws[m]);
        const T* rm = rows[m] + j0;
        a0 = at::vec::fmadd(wm, V::loadu(rm), a0);
        a1 = at::vec::fmadd(wm, V::loadu(rm + L), a1);
        a2 = at::vec::fmadd(wm, V::loadu(rm + 2 * L), a2);
        a3 = at::vec::fmadd(wm, V::loadu(rm + 3 * L), a3);
      }
      gb::store_op<T>(a0, out + j0);
      gb::store_op<T>(a1, out + j0 + L);
      gb::store_op<T>(a2, out + j0 + 2 * L);
      gb::store_op<T>(a3, out + j0 + 3 * L);
    }
    if (j0 == n) return;
    for (int64_t j = j0; j < n; ++j) acc[j] = ws[0] * rows[0][j];
    for (int64_t m = 1; m < k; ++m) {
      const T wm = ws[m];
      const T* __restrict rm = rows[m];
      for (int64_t j = j0; j < n; ++j) acc[j] += wm * rm[j];
    }
    for (int64_t j = j0; j < n; ++j) out[j] = static_cast<O>(acc[j]);
  }
}

// combine_rows into `out` of the tensor's dtype O: directly when O is the compute type, else
// through the float row `tmp` and one vectorised conversion.
template <typename T, typename O>
inline void emit_rows(const T* const* rows, const T* ws, int64_t k, int64_t n, O* out, T* tmp,
                      T* acc) {
  if constexpr (std::is_same_v<T, O>) {
    combine_rows(rows, ws, k, n, out, acc);
  } else {
    combine_rows(rows, ws, k, n, tmp, acc);
    convert_n(tmp, out, n);
  }
}

// interleave into `out` of dtype O (through `tmp` when O is not the compute type).
template <typename T, typename O>
inline void emit_phases(const T* ph, int64_t ldp, const Axis& a, O* out, T* tmp) {
  if constexpr (std::is_same_v<T, O>) {
    interleave(ph, ldp, a, out);
  } else {
    interleave(ph, ldp, a, tmp);
    convert_n(tmp, out, a.out);
  }
}

// Copies input row `src` (element stride sw) into buf[lpad .. lpad + n) in the compute type; the
// zero margins of buf are written once by the caller.
template <typename scalar_t, typename T>
inline void load_row(const scalar_t* __restrict src, int64_t sw, int64_t n, T* __restrict dst) {
  if (sw == 1) {
    convert_n(src, dst, n);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i * sw]);
  }
}

struct Geometry {
  int64_t N, C, H, W, OH, OW;
  int64_t upx, upy, downx, downy, px0, py0;
  int64_t fw, fh;
};

// Input rows [lo, hi] needed by output rows [oy0, oy1) (lo > hi when none is).
inline void rows_needed(const Geometry& g, int64_t oy0, int64_t oy1, int64_t& lo, int64_t& hi) {
  lo = std::numeric_limits<int64_t>::max();
  hi = std::numeric_limits<int64_t>::min();
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    int64_t t0, i0, nt;
    output_taps(oy, g.upy, g.downy, g.py0, g.fh, t0, i0, nt);
    if (nt == 0) continue;
    const int64_t a = std::max<int64_t>(i0, 0), b = std::min<int64_t>(i0 + nt - 1, g.H - 1);
    if (a > b) continue;
    lo = std::min(lo, a);
    hi = std::max(hi, b);
  }
}

// Output rows per work item. The buffered input rows of a strip stay around `budget` elements,
// but a strip always spans at least 4 filter heights of new input rows: every strip filters the
// fh-row halo it shares with its neighbour again, so short strips of wide rows (a channels-last
// row holds W * C values) would otherwise redo most of the work (12 taps, down 2, R = 1: six
// times the horizontal pass). Very wide rows cap that at 32 MiB of float rows per thread.
inline int64_t strip_rows(const Geometry& g, int64_t row_len, int64_t budget) {
  const int64_t len = std::max<int64_t>(row_len, 1);
  const int64_t fit = budget / len;
  const int64_t most = (int64_t(1) << 23) / len;
  const int64_t rows = std::max<int64_t>(fit, std::min<int64_t>(5 * g.fh, most));
  const int64_t r = std::max<int64_t>(1, ((rows - g.fh) * g.upy) / g.downy);
  return std::min(r, g.OH);
}

// Leading dimension of a buffer of rows of n elements: rounded up to whole cache lines, and off
// multiples of 4 KiB (rows exactly 4 KiB apart alias in the L1 cache and stall loads).
template <typename T>
inline int64_t row_stride(int64_t n) {
  const int64_t line = 64 / static_cast<int64_t>(sizeof(T));
  int64_t ld = (n + line - 1) / line * line;
  if ((ld * static_cast<int64_t>(sizeof(T))) % 4096 == 0) ld += line;
  return ld;
}

// NCHW (any input strides, contiguous output): separable (wx, wy) or general 2-D (w2) filter.
template <typename scalar_t>
void upfirdn2d_nchw(const at::Tensor& x, at::Tensor& out, const Geometry& g,
                    const at::opmath_type<scalar_t>* wx, const at::opmath_type<scalar_t>* wy,
                    const at::opmath_type<scalar_t>* w2) {
  using T = at::opmath_type<scalar_t>;
  const bool separable = w2 == nullptr;
  const Axis ax = make_axis(g.W, g.OW, g.upx, g.downx, g.px0, g.fw);
  const int64_t row_len = row_stride<T>(ax.lpad + g.W + ax.rpad);  // padded input row
  const int64_t ldh = row_stride<T>(g.OW);                          // filtered row
  const int64_t ldp = std::max<int64_t>(ax.njmax, 1);
  const int64_t sN = x.stride(0), sC = x.stride(1), sH = x.stride(2), sW = x.stride(3);
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* op = out.mutable_data_ptr<scalar_t>();
  const int64_t buffered_len = separable ? ldh : row_len;
  const int64_t R = strip_rows(g, buffered_len, int64_t(32) << 10);
  const int64_t nstrips = (g.OH + R - 1) / R;
  const int64_t items = g.N * g.C * nstrips;
  const int64_t work_per_item = std::max<int64_t>(1, R * g.OW * (separable ? 4 : g.fh));
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / work_per_item);

  at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    const int64_t max_rows = std::min<int64_t>(g.H, (R - 1) * g.downy / g.upy + g.fh + 2);
    std::vector<T> row(separable ? row_len : 0, T(0));          // one padded input row
    std::vector<T> rows(separable ? 0 : max_rows * row_len, T(0));  // padded input rows
    std::vector<T> hbuf(separable ? max_rows * ldh : 0);        // horizontally filtered rows
    std::vector<T> ph(ax.P * ldp);
    std::vector<T> acc(g.OW), tmp(g.OW);
    std::vector<const T*> rp(g.fh);
    std::vector<T> rw(g.fh);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t strip = item % nstrips, plane = item / nstrips;
      const int64_t n = plane / g.C, c = plane % g.C;
      const int64_t oy0 = strip * R, oy1 = std::min(g.OH, oy0 + R);
      const scalar_t* xplane = xp + n * sN + c * sC;
      scalar_t* oplane = op + (n * g.C + c) * g.OH * g.OW;
      int64_t lo, hi;
      rows_needed(g, oy0, oy1, lo, hi);
      TORCH_INTERNAL_ASSERT(hi < lo || hi - lo + 1 <= max_rows);
      if (separable) {
        for (int64_t iy = lo; iy <= hi; ++iy) {
          load_row(xplane + iy * sH, sW, g.W, row.data() + ax.lpad);
          fir_phases(row.data() + ax.lpad, wx, ax, ph.data(), ldp, false);
          interleave(ph.data(), ldp, ax, hbuf.data() + (iy - lo) * ldh);
        }
      } else {
        for (int64_t iy = lo; iy <= hi; ++iy) {
          load_row(xplane + iy * sH, sW, g.W, rows.data() + (iy - lo) * row_len + ax.lpad);
        }
      }
      for (int64_t oy = oy0; oy < oy1; ++oy) {
        int64_t t0, i0, nt;
        output_taps(oy, g.upy, g.downy, g.py0, g.fh, t0, i0, nt);
        scalar_t* orow = oplane + oy * g.OW;
        int64_t k = 0;
        for (int64_t m = 0; m < nt; ++m) {
          const int64_t iy = i0 + m;
          if (iy < 0 || iy >= g.H) continue;
          const int64_t ty = t0 + m * g.upy;
          if (separable) {
            rp[k] = hbuf.data() + (iy - lo) * ldh;
            rw[k] = wy[ty];
          } else {
            fir_phases(rows.data() + (iy - lo) * row_len + ax.lpad, w2 + ty * g.fw, ax,
                       ph.data(), ldp, k > 0);
          }
          ++k;
        }
        if (separable) {
          emit_rows(rp.data(), rw.data(), k, g.OW, orow, tmp.data(), acc.data());
        } else if (k == 0) {
          std::fill(orow, orow + g.OW, static_cast<scalar_t>(T(0)));
        } else {
          emit_phases(ph.data(), ldp, ax, orow, tmp.data());
        }
      }
    }
  });
}

// Four neighbouring output pixels of the channels-last direct kernel at once, for filters that
// are not upsampled horizontally (upx = 1) and whose taps all fall inside the row: each input
// vector is loaded once and added to every output of the four that it reaches (a 5-wide filter:
// 8 loads for 20 multiply-adds instead of 20). `rows[r] + col0 * C` is the first input pixel of
// output 0 in row r; C is a multiple of NV vectors.
template <int NV, typename T>
void nhwc_four_pixels(const T* const* rows, const T* const* wrows, int64_t ky, int64_t fw,
                      int64_t downx, int64_t C, int64_t col0, T* out) {
  using V = gb::Vec<T>;
  constexpr int64_t L = V::size();
  const int64_t span = 3 * downx + fw;  // input pixels read by the four outputs
  for (int64_t c = 0; c < C; c += NV * L) {
    V a[4][NV];  // 4 * NV independent sums: enough to hide the multiply-add latency
    for (int t = 0; t < 4; ++t) {
      for (int v = 0; v < NV; ++v) a[t][v] = V(T(0));
    }
    for (int64_t r = 0; r < ky; ++r) {
      const T* src = rows[r] + col0 * C + c;
      const T* w = wrows[r];
      for (int64_t j = 0; j < span; ++j) {
        V x[NV];
        for (int v = 0; v < NV; ++v) x[v] = V::loadu(src + j * C + v * L);
        // Output t meets this pixel with tap j - t * downx.
        for (int t = 0; t < 4; ++t) {
          const int64_t m = j - t * downx;
          if (m < 0 || m >= fw) continue;
          const V wm(w[m]);
          for (int v = 0; v < NV; ++v) a[t][v] = at::vec::fmadd(wm, x[v], a[t][v]);
        }
      }
    }
    for (int t = 0; t < 4; ++t) {
      for (int v = 0; v < NV; ++v) a[t][v].store(out + t * C + c + v * L);
    }
  }
}

// Channels-last (NHWC-contiguous input and output): direct polyphase kernel, vectorised over C.
template <typename scalar_t>
void upfirdn2d_nhwc(const at::Tensor& x, at::Tensor& out, const Geometry& g,
                    const at::opmath_type<scalar_t>* w2) {
  using T = at::opmath_type<scalar_t>;
  const int64_t C = g.C;
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* op = out.mutable_data_ptr<scalar_t>();
  // Horizontal taps of every output column, planned once: column ox reads input columns at
  // element offsets xoff[q] with filter columns xtap[q], q in [xstart[ox], xstart[ox + 1]).
  std::vector<int64_t> xstart(g.OW + 1, 0), xoff, xtap;
  xoff.reserve(g.OW * ((g.fw + g.upx - 1) / g.upx));
  xtap.reserve(xoff.capacity());
  for (int64_t ox = 0; ox < g.OW; ++ox) {
    int64_t tx0, ix0, ntx;
    output_taps(ox, g.upx, g.downx, g.px0, g.fw, tx0, ix0, ntx);
    for (int64_t m = 0; m < ntx; ++m) {
      const int64_t ix = ix0 + m;
      if (ix < 0 || ix >= g.W) continue;
      xoff.push_back(ix * C);
      xtap.push_back(tx0 + m * g.upx);
    }
    xstart[ox + 1] = static_cast<int64_t>(xoff.size());
  }
  // Output columns [tile_lo, tile_hi] read whole filter widths inside the row; with upx = 1 and
  // whole vectors of channels they run four at a time (nhwc_four_pixels).
  const bool tiled = g.upx == 1 && C % gb::Vec<T>::size() == 0;
  const int64_t tile_lo = (g.px0 + g.downx - 1) / g.downx;        // ox * downx - px0 >= 0
  const int64_t tile_hi = g.W - g.fw + g.px0 >= 0
      ? std::min(g.OW - 1, (g.W - g.fw + g.px0) / g.downx)         // last tap < W
      : int64_t(-1);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, g.OW * C));
  at::parallel_for(0, g.N * g.OH, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(C);
    std::vector<const scalar_t*> tp(g.fh * g.fw), yrow(g.fh);  // the taps of one output pixel
    std::vector<T> tw(g.fh * g.fw);
    std::vector<const T*> ywts(g.fh);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / g.OH, oy = item % g.OH;
      int64_t ty0, iy0, nty;
      output_taps(oy, g.upy, g.downy, g.py0, g.fh, ty0, iy0, nty);
      scalar_t* orow = op + (n * g.OH + oy) * g.OW * C;
      // The rows this output row reads, with their filter rows.
      int64_t ky = 0;
      for (int64_t my = 0; my < nty; ++my) {
        const int64_t iy = iy0 + my;
        if (iy < 0 || iy >= g.H) continue;
        yrow[ky] = xp + ((n * g.H + iy) * g.W) * C;
        ywts[ky] = w2 + (ty0 + my * g.upy) * g.fw;
        ++ky;
      }
      for (int64_t ox = 0; ox < g.OW; ++ox) {
        if constexpr (std::is_same_v<scalar_t, T>) {
          if (tiled && ox >= tile_lo && ox + 3 <= tile_hi) {
            const int64_t col0 = ox * g.downx - g.px0;
            if (C % (2 * gb::Vec<T>::size()) == 0) {
              nhwc_four_pixels<2>(yrow.data(), ywts.data(), ky, g.fw, g.downx, C, col0,
                                  orow + ox * C);
            } else {
              nhwc_four_pixels<1>(yrow.data(), ywts.data(), ky, g.fw, g.downx, C, col0,
                                  orow + ox * C);
            }
            ox += 3;
            continue;
          }
        }
        // Every tap's input pixel, then one pass over the channels.
        const int64_t q0 = xstart[ox], kx = xstart[ox + 1] - q0;
        int64_t k = 0;
        for (int64_t r = 0; r < ky; ++r) {
          for (int64_t q = q0; q < q0 + kx; ++q) {
            tp[k] = yrow[r] + xoff[q];
            tw[k] = ywts[r][xtap[q]];
            ++k;
          }
        }
        scalar_t* __restrict o = orow + ox * C;
        if constexpr (std::is_same_v<scalar_t, T>) {
          combine_rows(tp.data(), tw.data(), k, C, o, acc.data());  // register-blocked
        } else {
          T* __restrict a = acc.data();
          std::fill(a, a + C, T(0));
          for (int64_t m = 0; m < k; ++m) {
            const T wv = tw[m];
            const scalar_t* __restrict sv = tp[m];
            for (int64_t ch = 0; ch < C; ++ch) a[ch] += wv * static_cast<T>(sv[ch]);
          }
          for (int64_t ch = 0; ch < C; ++ch) o[ch] = static_cast<scalar_t>(a[ch]);
        }
      }
    }
  });
}

// Channels-last with a separable filter (col ⊗ row): a horizontal pass filters each input row an
// output strip needs (all channels of a pixel at once) into a float row buffer, and a vertical
// pass combines buffered rows into each output row: fw + fh multiply-adds per output, not fw·fh.
template <typename scalar_t>
void upfirdn2d_nhwc_separable(const at::Tensor& x, at::Tensor& out, const Geometry& g,
                              const at::opmath_type<scalar_t>* wx,
                              const at::opmath_type<scalar_t>* wy) {
  using T = at::opmath_type<scalar_t>;
  const int64_t C = g.C;
  const int64_t row = g.OW * C;  // one horizontally filtered row
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  scalar_t* op = out.mutable_data_ptr<scalar_t>();
  // Taps of every output column, planned once.
  std::vector<int64_t> tx0(g.OW), ix0(g.OW), ntx(g.OW);
  for (int64_t ox = 0; ox < g.OW; ++ox) {
    output_taps(ox, g.upx, g.downx, g.px0, g.fw, tx0[ox], ix0[ox], ntx[ox]);
  }
  // Output rows per work item: the buffered rows stay around 256 KiB where the rows allow.
  const int64_t R = strip_rows(g, row, int64_t(64) << 10);
  const int64_t nstrips = (g.OH + R - 1) / R;
  const int64_t max_rows = std::min<int64_t>(g.H, (R - 1) * g.downy / g.upy + g.fh + 2);
  const int64_t work_per_item = std::max<int64_t>(1, R * row * 4);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / work_per_item);
  at::parallel_for(0, g.N * nstrips, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> xrow(std::is_same_v<scalar_t, T> ? 0 : g.W * C);
    std::vector<T> hbuf(max_rows * row), acc(row), tmp(row);
    std::vector<const T*> rp(g.fh), cp(g.fw);
    std::vector<T> rw(g.fh), cw(g.fw);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / nstrips, strip = item % nstrips;
      const int64_t oy0 = strip * R, oy1 = std::min(g.OH, oy0 + R);
      int64_t lo, hi;
      rows_needed(g, oy0, oy1, lo, hi);
      TORCH_INTERNAL_ASSERT(hi < lo || hi - lo + 1 <= max_rows);
      for (int64_t iy = lo; iy <= hi; ++iy) {
        const scalar_t* src = xp + (n * g.H + iy) * g.W * C;
        const T* s;
        if constexpr (std::is_same_v<scalar_t, T>) {
          s = src;
        } else {
          convert_n(src, xrow.data(), g.W * C);
          s = xrow.data();
        }
        T* h = hbuf.data() + (iy - lo) * row;
        for (int64_t ox = 0; ox < g.OW; ++ox) {
          int64_t k = 0;  // the taps of this column that fall inside the row
          for (int64_t m = 0; m < ntx[ox]; ++m) {
            const int64_t ix = ix0[ox] + m;
            if (ix < 0 || ix >= g.W) continue;
            cp[k] = s + ix * C;
            cw[k] = wx[tx0[ox] + m * g.upx];
            ++k;
          }
          combine_rows(cp.data(), cw.data(), k, C, h + ox * C, acc.data());
        }
      }
      for (int64_t oy = oy0; oy < oy1; ++oy) {
        int64_t ty0, iy0, nty;
        output_taps(oy, g.upy, g.downy, g.py0, g.fh, ty0, iy0, nty);
        int64_t k = 0;
        for (int64_t m = 0; m < nty; ++m) {
          const int64_t iy = iy0 + m;
          if (iy < 0 || iy >= g.H) continue;
          rp[k] = hbuf.data() + (iy - lo) * row;
          rw[k] = wy[ty0 + m * g.upy];
          ++k;
        }
        emit_rows(rp.data(), rw.data(), k, row, op + (n * g.OH + oy) * row, tmp.data(),
                  acc.data());
      }
    }
  });
}

// Splits a 2-D filter into col ⊗ row when it is rank 1 to within `tol` (relative to its largest
// tap); returns false otherwise.
template <typename T>
bool split_rank1(const T* w, int64_t fh, int64_t fw, double tol, std::vector<T>& col,
                 std::vector<T>& row) {
  int64_t pi = 0, pj = 0;
  double best = -1;
  for (int64_t i = 0; i < fh; ++i) {
    for (int64_t j = 0; j < fw; ++j) {
      const double v = std::abs(static_cast<double>(w[i * fw + j]));
      if (v > best) {
        best = v;
        pi = i;
        pj = j;
      }
    }
  }
  col.assign(fh, T(0));
  row.assign(fw, T(0));
  if (!(best > 0)) return best == 0;  // all zero: 0 ⊗ 0; NaN: not separable
  const T pivot = w[pi * fw + pj];
  for (int64_t i = 0; i < fh; ++i) col[i] = w[i * fw + pj];
  for (int64_t j = 0; j < fw; ++j) row[j] = w[pi * fw + j] / pivot;
  double err = 0;
  for (int64_t i = 0; i < fh; ++i) {
    for (int64_t j = 0; j < fw; ++j) {
      const double d = static_cast<double>(col[i]) * static_cast<double>(row[j]) -
                       static_cast<double>(w[i * fw + j]);
      err = std::max(err, std::abs(d));
    }
  }
  return err <= tol * best;
}

}  // namespace

at::Tensor upfirdn2d_cpu(const at::Tensor& x, const at::Tensor& w, int64_t upx, int64_t upy,
                         int64_t downx, int64_t downy, int64_t padx0, int64_t padx1,
                         int64_t pady0, int64_t pady1) {
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(w.dim() == 1 || w.dim() == 2, "upfirdn2d: w must be 1-D or 2-D, got ", w.sizes());
  TORCH_CHECK(w.device().is_cpu(), "upfirdn2d: w must be on the CPU");
  TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1,
              "upfirdn2d: up and down must be >= 1");
  const at::ScalarType opmath =
      x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(w.scalar_type() == opmath, "upfirdn2d: w must have dtype ", opmath, " for x of dtype ",
              x.scalar_type(), ", got ", w.scalar_type());
  Geometry g;
  g.N = x.size(0);
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.fw = w.size(-1);
  g.fh = w.dim() == 2 ? w.size(0) : g.fw;
  g.upx = upx;
  g.upy = upy;
  g.downx = downx;
  g.downy = downy;
  g.px0 = padx0;
  g.py0 = pady0;
  const int64_t up_w = g.W * upx + padx0 + padx1 - g.fw;
  const int64_t up_h = g.H * upy + pady0 + pady1 - g.fh;
  TORCH_CHECK(up_w >= 0 && up_h >= 0, "upfirdn2d: the padded input is smaller than the filter");
  g.OW = up_w / downx + 1;
  g.OH = up_h / downy + 1;
  TORCH_CHECK(g.W >= 1 && g.H >= 1, "upfirdn2d: x must have a non-empty spatial size");

  const bool channels_last = !x.is_contiguous() &&
                             x.is_contiguous(at::MemoryFormat::ChannelsLast) && g.C > 1;
  at::Tensor out = channels_last
                       ? at::empty({g.N, g.C, g.OH, g.OW},
                                   x.options().memory_format(at::MemoryFormat::ChannelsLast))
                       : at::empty({g.N, g.C, g.OH, g.OW}, x.options());
  if (out.numel() == 0) return out;
  const at::Tensor wc = w.contiguous();
  const bool small_planes = !channels_last && g.C >= 16 && g.OW < 32 && g.W < 32;

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "upfirdn2d_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const T* wp = wc.const_data_ptr<T>();
    std::vector<T> col, row;
    // Rank-1 tolerance: rounding level of the input's dtype (float32 taps are rounded there).
    const double tol = std::is_same_v<scalar_t, double> ? 1e-14 : 4.0 * 1.1920929e-7;
    const bool split = wc.dim() == 2 && split_rank1(wp, g.fh, g.fw, tol, col, row);
    const T* wx = wc.dim() == 1 ? wp : row.data();
    const T* wy = wc.dim() == 1 ? wp : col.data();
    if (channels_last) {
      if (wc.dim() == 1 || split) {
        upfirdn2d_nhwc_separable<scalar_t>(x, out, g, wx, wy);
      } else {
        upfirdn2d_nhwc<scalar_t>(x, out, g, wp);
      }
    } else if ((wc.dim() == 1 || split) && small_planes) {
      // Many small planes (StyleGAN's 4x4 and 8x8 layers): rows this short cannot amortise the
      // per-plane work of the planar kernel, so run the channels-last kernel (vectorised over
      // channels) on a channels-last copy and copy the (small) result back to NCHW.
      const at::Tensor xt = x.contiguous(at::MemoryFormat::ChannelsLast);
      at::Tensor ot = at::empty({g.N, g.C, g.OH, g.OW},
                                x.options().memory_format(at::MemoryFormat::ChannelsLast));
      upfirdn2d_nhwc_separable<scalar_t>(xt, ot, g, wx, wy);
      out.copy_(ot);
    } else if (wc.dim() == 1 || split) {
      upfirdn2d_nchw<scalar_t>(x, out, g, wx, wy, nullptr);
    } else {
      upfirdn2d_nchw<scalar_t>(x, out, g, nullptr, nullptr, wp);
    }
  });
  return out;
}

}  // namespace gb
