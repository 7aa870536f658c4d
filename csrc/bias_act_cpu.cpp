// CPU kernels of bias_act: forward, gradient and second derivative, one pass over memory each.
//
// A tensor is seen in memory order as [outer, C, inner] rows (C = size of the bias dimension), so
// channels-last and other dense layouts need no copy: with inner > 1 each row has one bias value
// (planar), with inner == 1 the bias varies along the row (interleaved). The gradient kernels also
// sum their result per channel in the same pass (the bias gradient), through per-work-item
// partial sums that are reduced in a fixed order (deterministic for any thread count).
//
// The loops use ATen's SIMD vectors (at::vec::Vectorized), whose exp/tanh/expm1/log1p are the
// same vectorised (SLEEF) functions torch's own elementwise ops use, so the transcendental
// activations vectorise as well as the piecewise-linear ones.

#include "cpu_vec.h"  // first: selects the SIMD width of at::vec

#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "activations.h"
#include "ops.h"

namespace gb {
namespace {

enum Mode : int { kForward = 0, kGrad = 1, kGrad2 = 2 };

constexpr int64_t kPiece = 16384;  // elements per work item

// ---- activations on SIMD vectors (same formulas as activations.h) -------------------------

template <typename T>
inline Vec<T> select(const Vec<T>& cond, const Vec<T>& if_true, const Vec<T>& if_false) {
  return Vec<T>::blendv(if_false, if_true, cond);
}

template <typename T>
inline Vec<T> vsigmoid(const Vec<T>& z) {
  const Vec<T> one(T(1));
  return one / (one + z.neg().exp());
}

template <int A, typename T>
inline Vec<T> vact(const Vec<T>& z, const Vec<T>& alpha) {
  const Vec<T> zero(T(0));
  if constexpr (A == kLinear) {
    return z;
  } else if constexpr (A == kRelu) {
    return at::vec::maximum(z, zero);  // NaN propagates
  } else if constexpr (A == kLrelu) {
    return select(z > zero, z, z * alpha);
  } else if constexpr (A == kTanh) {
    return z.tanh();
  } else if constexpr (A == kSigmoid) {
    return vsigmoid(z);
  } else if constexpr (A == kElu) {
    return select(z > zero, z, z.expm1());
  } else if constexpr (A == kSelu) {
    const Vec<T> s = Vec<T>(static_cast<T>(kSeluScale));
    const Vec<T> sa = Vec<T>(static_cast<T>(kSeluScale * kSeluAlpha));
    return select(z > zero, s * z, sa * z.expm1());
  } else if constexpr (A == kSoftplus) {
    return select(z > Vec<T>(T(20)), z, z.exp().log1p());
  } else {
    return z * vsigmoid(z);
  }
}

template <int A, typename T>
inline Vec<T> vact_d1(const Vec<T>& z, const Vec<T>& alpha) {
  const Vec<T> zero(T(0)), one(T(1));
  if constexpr (A == kLinear) {
    return one;
  } else if constexpr (A == kRelu) {
    return select(z <= zero, zero, one);  // as torch: passes where relu(z) is not <= 0
  } else if constexpr (A == kLrelu) {
    return select(z > zero, one, alpha);
  } else if constexpr (A == kTanh) {
    const Vec<T> t = z.tanh();
    return one - t * t;
  } else if constexpr (A == kSigmoid) {
    const Vec<T> s = vsigmoid(z);
    return s * (one - s);
  } else if constexpr (A == kElu) {
    // z > 0 first, so that a NaN gives NaN (torch's own CPU kernels differ by instruction set).
    return select(z > zero, one, z.exp());
  } else if constexpr (A == kSelu) {
    const Vec<T> s = Vec<T>(static_cast<T>(kSeluScale));
    const Vec<T> sa = Vec<T>(static_cast<T>(kSeluScale * kSeluAlpha));
    return select(z > zero, s, sa * z.exp());  // NaN gives NaN, as for elu
  } else if constexpr (A == kSoftplus) {
    return select(z > Vec<T>(T(20)), one, vsigmoid(z));
  } else {
    const Vec<T> s = vsigmoid(z);
    return s * (one + z * (one - s));
  }
}

template <int A, typename T>
inline Vec<T> vact_d2(const Vec<T>& z, const Vec<T>& alpha) {
  const Vec<T> zero(T(0)), one(T(1)), two(T(2));
  if constexpr (A == kLinear || A == kRelu || A == kLrelu) {
    return zero;
  } else if constexpr (A == kTanh) {
    const Vec<T> t = z.tanh();
    return (t * (one - t * t)) * Vec<T>(T(-2));
  } else if constexpr (A == kSigmoid) {
    const Vec<T> s = vsigmoid(z);
    return s * (one - s) * (one - two * s);
  } else if constexpr (A == kElu) {
    return select(z >= zero, zero, z.exp());  // z < 0 as torch's; NaN gives NaN
  } else if constexpr (A == kSelu) {
    const Vec<T> sa = Vec<T>(static_cast<T>(kSeluScale * kSeluAlpha));
    return select(z >= zero, zero, sa * z.exp());
  } else if constexpr (A == kSoftplus) {
    const Vec<T> s = vsigmoid(z);
    return select(z > Vec<T>(T(20)), zero, s * (one - s));
  } else {
    const Vec<T> s = vsigmoid(z);
    return s * (one - s) * (two + z * (one - two * s));
  }
}

// ---- loads and stores in the compute type ------------------------------------------------

struct Scalars {
  double alpha, gain, clamp;  // clamp < 0: none
};

// One vector of results: r = op(x + b) (see the modes), from lanes already loaded.
template <int MODE, int A, typename T>
inline Vec<T> compute(const Vec<T>& x, const Vec<T>& b, const Vec<T>& dy, const Vec<T>& g,
                      const Vec<T>& alpha, const Vec<T>& gain, const Vec<T>& c, bool has_clamp) {
  const Vec<T> z = x + b;
  if constexpr (MODE == kForward) {
    Vec<T> r = vact<A>(z, alpha) * gain;
    if (has_clamp) r = at::vec::minimum(at::vec::maximum(r, c.neg()), c);
    return r;
  } else {
    Vec<T> r = dy * gain * (MODE == kGrad ? vact_d1<A>(z, alpha) : vact_d2<A>(z, alpha));
    if constexpr (MODE == kGrad2) r = r * g;
    if (has_clamp) {
      const Vec<T> v = vact<A>(z, alpha) * gain;
      // torch.clamp passes the gradient on [-c, c]; a multiply (not a bit mask) keeps a NaN
      // derivative NaN, as the reference's chain of products does.
      r = r * (((v >= c.neg()) & (v <= c)) & Vec<T>(T(1)));
    }
    return r;
  }
}

// One contiguous run of n elements; returns the sum of the results (the bias gradient's share).
// VB: the bias varies per element (bvec[i]), else it is the constant bsc.
template <int MODE, int A, bool VB, typename scalar_t>
at::opmath_type<scalar_t> run_span(int64_t n, const scalar_t* x, const scalar_t* dy,
                                   const scalar_t* g, const scalar_t* bvec,
                                   at::opmath_type<scalar_t> bsc, scalar_t* out,
                                   const Scalars& sc) {
  using T = at::opmath_type<scalar_t>;
  constexpr int L = Vec<T>::size();
  const bool has_clamp = sc.clamp >= 0;
  const Vec<T> alpha(static_cast<T>(sc.alpha)), gain(static_cast<T>(sc.gain));
  const Vec<T> c(has_clamp ? static_cast<T>(sc.clamp) : T(0));
  const Vec<T> bconst(bsc), zero(T(0));
  Vec<T> acc(T(0));
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const Vec<T> xv = load_op<T>(x + i);
    const Vec<T> bv = VB ? load_op<T>(bvec + i) : bconst;
    const Vec<T> dyv = MODE >= kGrad ? load_op<T>(dy + i) : zero;
    const Vec<T> gv = MODE == kGrad2 ? load_op<T>(g + i) : zero;
    const Vec<T> r = compute<MODE, A, T>(xv, bv, dyv, gv, alpha, gain, c, has_clamp);
    store_op<T>(r, out + i);
    acc = acc + r;
  }
  T lanes[L];
  acc.store(lanes);
  T sum = T(0);
  for (int k = 0; k < L; ++k) sum += lanes[k];
  if (i < n) {  // the tail, through zero-padded buffers
    const int64_t m = n - i;
    T bx[L] = {}, bb[L] = {}, bd[L] = {}, bg[L] = {}, br[L];
    for (int64_t k = 0; k < m; ++k) {
      bx[k] = static_cast<T>(x[i + k]);
      bb[k] = VB ? static_cast<T>(bvec[i + k]) : bsc;
      if constexpr (MODE >= kGrad) bd[k] = static_cast<T>(dy[i + k]);
      if constexpr (MODE == kGrad2) bg[k] = static_cast<T>(g[i + k]);
    }
    const Vec<T> r = compute<MODE, A, T>(Vec<T>::loadu(bx), Vec<T>::loadu(bb), Vec<T>::loadu(bd),
                                         Vec<T>::loadu(bg), alpha, gain, c, has_clamp);
    r.store(br);
    for (int64_t k = 0; k < m; ++k) {
      out[i + k] = static_cast<scalar_t>(br[k]);
      sum += br[k];
    }
  }
  return sum;
}

struct Inputs {
  at::Tensor x, dy, g, b;  // dense, same strides as x (dy, g) / contiguous (b)
  Span3 s;
  bool has_b;
};

Inputs prepare(const at::Tensor& x_in, const at::Tensor* dy_in, const at::Tensor* g_in,
               const std::optional<at::Tensor>& b, int64_t dim) {
  TORCH_CHECK(x_in.device().is_cpu(), "bias_act: expected a CPU tensor");
  Inputs in;
  in.x = x_in.is_non_overlapping_and_dense() ? x_in : x_in.contiguous();
  auto like_x = [&](const at::Tensor& t) {
    TORCH_CHECK(t.sizes() == in.x.sizes(), "bias_act: gradient shape ", t.sizes(),
                " does not match x ", in.x.sizes());
    if (t.strides() == in.x.strides() && t.scalar_type() == in.x.scalar_type()) return t;
    return at::empty_like(in.x).copy_(t);
  };
  if (dy_in) in.dy = like_x(*dy_in);
  if (g_in) in.g = like_x(*g_in);
  in.has_b = b.has_value() && b->defined();
  if (in.has_b) {
    TORCH_CHECK(dim >= 0 && dim < in.x.dim(), "bias_act: dim out of range");
    TORCH_CHECK(b->dim() == 1 && b->size(0) == in.x.size(dim),
                "bias_act: b must have x.shape[dim] elements");
    in.b = b->to(in.x.scalar_type()).contiguous();
    in.s = span3_of(in.x, dim);
  } else {
    in.s = {1, 1, in.x.numel()};
  }
  return in;
}

template <int MODE, int A, typename scalar_t>
void run(const Inputs& in, at::Tensor& out, const Scalars& sc, at::Tensor* db) {
  using T = at::opmath_type<scalar_t>;
  const scalar_t* x = in.x.const_data_ptr<scalar_t>();
  const scalar_t* dy = in.dy.defined() ? in.dy.const_data_ptr<scalar_t>() : nullptr;
  const scalar_t* g = in.g.defined() ? in.g.const_data_ptr<scalar_t>() : nullptr;
  const scalar_t* b = in.has_b ? in.b.const_data_ptr<scalar_t>() : nullptr;
  scalar_t* o = out.mutable_data_ptr<scalar_t>();
  const int64_t outer = in.s.outer, C = in.s.C, inner = in.s.inner;
  if (outer * C * inner == 0) {
    if (db) db->zero_();
    return;
  }
  if (inner > 1 || C == 1) {
    // Planar: rows of `inner` elements sharing one bias value, split into pieces.
    const int64_t rows = outer * C;
    const int64_t kr = (inner + kPiece - 1) / kPiece;
    const int64_t piece = (inner + kr - 1) / kr;
    const int64_t items = rows * kr;
    std::vector<T> partial(db ? items : 0);
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / piece);
    at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
      for (int64_t it = begin; it < end; ++it) {
        const int64_t r = it / kr, q = it % kr;
        const int64_t start = r * inner + q * piece;
        const int64_t n = std::min(piece, inner - q * piece);
        const T bv = b ? static_cast<T>(b[r % C]) : T(0);
        const T sum = run_span<MODE, A, false, scalar_t>(
            n, x + start, dy ? dy + start : nullptr, g ? g + start : nullptr, nullptr, bv,
            o + start, sc);
        if (db) partial[it] = sum;
      }
    });
    if (db) {
      std::vector<double> acc(C, 0.0);
      for (int64_t it = 0; it < items; ++it) acc[(it / kr) % C] += partial[it];
      T* dbp = db->mutable_data_ptr<T>();
      for (int64_t ch = 0; ch < C; ++ch) dbp[ch] = static_cast<T>(acc[ch]);
    }
  } else {
    // Interleaved: rows of C elements with the bias varying along the row.
    const int64_t rows_per_item = std::max<int64_t>(1, kPiece / C);
    const int64_t items = (outer + rows_per_item - 1) / rows_per_item;
    // Per-channel partial sums in float64: a float32 running sum over many rows would round
    // far more than the reference's (pairwise) reduction.
    std::vector<double> partial(db ? items * C : 0, 0.0);
    at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
      for (int64_t it = begin; it < end; ++it) {
        const int64_t r0 = it * rows_per_item, r1 = std::min(outer, r0 + rows_per_item);
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t start = r * C;
          scalar_t* orow = o + start;
          run_span<MODE, A, true, scalar_t>(C, x + start, dy ? dy + start : nullptr,
                                            g ? g + start : nullptr, b, T(0), orow, sc);
          if (db) {
            double* __restrict pp = partial.data() + it * C;
            // Sum what was just written (still in cache).
            for (int64_t ch = 0; ch < C; ++ch) pp[ch] += static_cast<double>(orow[ch]);
          }
        }
      }
    });
    if (db) {
      std::vector<double> acc(C, 0.0);
      for (int64_t it = 0; it < items; ++it) {
        for (int64_t ch = 0; ch < C; ++ch) acc[ch] += partial[it * C + ch];
      }
      T* dbp = db->mutable_data_ptr<T>();
      for (int64_t ch = 0; ch < C; ++ch) dbp[ch] = static_cast<T>(acc[ch]);
    }
  }
}

template <int MODE, typename scalar_t>
void dispatch(int act, const Inputs& in, at::Tensor& out, const Scalars& sc, at::Tensor* db) {
  switch (act) {
    case kLinear: run<MODE, kLinear, scalar_t>(in, out, sc, db); break;
    case kRelu: run<MODE, kRelu, scalar_t>(in, out, sc, db); break;
    case kLrelu: run<MODE, kLrelu, scalar_t>(in, out, sc, db); break;
    case kTanh: run<MODE, kTanh, scalar_t>(in, out, sc, db); break;
    case kSigmoid: run<MODE, kSigmoid, scalar_t>(in, out, sc, db); break;
    case kElu: run<MODE, kElu, scalar_t>(in, out, sc, db); break;
    case kSelu: run<MODE, kSelu, scalar_t>(in, out, sc, db); break;
    case kSoftplus: run<MODE, kSoftplus, scalar_t>(in, out, sc, db); break;
    default: run<MODE, kSwish, scalar_t>(in, out, sc, db); break;
  }
}

template <int MODE>
std::tuple<at::Tensor, at::Tensor> launch(const Inputs& in, int64_t act, double alpha, double gain,
                                          double clamp, bool want_db) {
  const int a = static_cast<int>(act);
  TORCH_CHECK(a >= kLinear && a <= kSwish, "bias_act: unknown activation id ", act);
  at::Tensor out = at::empty_like(in.x);
  const at::ScalarType opmath = in.x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  if (want_db) TORCH_CHECK(in.has_b, "bias_act: want_db needs a bias");
  // Without want_db the second result is an empty tensor (never an undefined one), so that the
  // op's fake kernel and its autograd formula see one fixed signature.
  at::Tensor db = at::empty({want_db ? in.b.numel() : 0}, in.x.options().dtype(opmath));
  const Scalars sc{alpha, gain, clamp};
  at::Tensor* dbp = want_db ? &db : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "bias_act_cpu", [&] {
    dispatch<MODE, scalar_t>(a, in, out, sc, dbp);
  });
  return {out, db};
}

}  // namespace

at::Tensor bias_act_cpu(const at::Tensor& x, const std::optional<at::Tensor>& b, int64_t dim,
                        int64_t act, double alpha, double gain, double clamp) {
  const Inputs in = prepare(x, nullptr, nullptr, b, dim);
  return std::get<0>(launch<kForward>(in, act, alpha, gain, clamp, false));
}

std::tuple<at::Tensor, at::Tensor> bias_act_grad_cpu(const at::Tensor& dy, const at::Tensor& x,
                                                     const std::optional<at::Tensor>& b,
                                                     int64_t dim, int64_t act, double alpha,
                                                     double gain, double clamp, bool want_db) {
  const Inputs in = prepare(x, &dy, nullptr, b, dim);
  return launch<kGrad>(in, act, alpha, gain, clamp, want_db);
}

std::tuple<at::Tensor, at::Tensor> bias_act_grad2_cpu(const at::Tensor& g, const at::Tensor& dy,
                                                      const at::Tensor& x,
                                                      const std::optional<at::Tensor>& b,
                                                      int64_t dim, int64_t act, double alpha,
                                                      double gain, double clamp, bool want_db) {
  const Inputs in = prepare(x, &dy, &g, b, dim);
  return launch<kGrad2>(in, act, alpha, gain, clamp, want_db);
}

}  // namespace gb
