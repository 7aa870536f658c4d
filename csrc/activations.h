// Activation functions of bias_act and their first and second derivatives.
//
// Shared by the CPU (C++) and the CUDA kernels: plain C++ with no torch or CUDA headers, so that
// both compilers see the same formulas. The ids match ActivationSpec.code in
// ganblocks/ops/bias_act.py. The formulas follow torch's own definitions (what the reference path
// computes): relu' is 0 at 0, lrelu' is alpha at 0, elu has alpha 1, softplus has beta 1 and
// threshold 20.
#pragma once

#include <math.h>

#if defined(__CUDACC__)
#define GB_HD __host__ __device__ __forceinline__
#else
#define GB_HD inline
#endif

namespace gb {

enum ActCode : int {
  kLinear = 1,
  kRelu = 2,
  kLrelu = 3,
  kTanh = 4,
  kSigmoid = 5,
  kElu = 6,
  kSelu = 7,
  kSoftplus = 8,
  kSwish = 9,
};

// Float and double overloads that resolve to the C library on the host and to the CUDA math
// library on the device.
GB_HD float m_exp(float v) { return expf(v); }
GB_HD double m_exp(double v) { return exp(v); }
GB_HD float m_expm1(float v) { return expm1f(v); }
GB_HD double m_expm1(double v) { return expm1(v); }
GB_HD float m_log1p(float v) { return log1pf(v); }
GB_HD double m_log1p(double v) { return log1p(v); }
GB_HD float m_tanh(float v) { return tanhf(v); }
GB_HD double m_tanh(double v) { return tanh(v); }

template <typename T>
GB_HD T m_sigmoid(T z) {
  return T(1) / (T(1) + m_exp(-z));
}

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;

// y = act(z)
template <int A, typename T>
GB_HD T act_fn(T z, T alpha) {
  if constexpr (A == kLinear) {
    return z;
  } else if constexpr (A == kRelu) {
    return z <= T(0) ? T(0) : z;  // NaN passes through, as with torch.relu
  } else if constexpr (A == kLrelu) {
    return z > T(0) ? z : z * alpha;
  } else if constexpr (A == kTanh) {
    return m_tanh(z);
  } else if constexpr (A == kSigmoid) {
    return m_sigmoid(z);
  } else if constexpr (A == kElu) {
    return z > T(0) ? z : m_expm1(z);
  } else if constexpr (A == kSelu) {
    const T s = T(kSeluScale), a = T(kSeluAlpha);
    return z > T(0) ? s * z : s * a * m_expm1(z);
  } else if constexpr (A == kSoftplus) {
    return z > T(20) ? z : m_log1p(m_exp(z));
  } else {  // kSwish
    return z * m_sigmoid(z);
  }
}

// d act / dz
template <int A, typename T>
GB_HD T act_d1(T z, T alpha) {
  if constexpr (A == kLinear) {
    return T(1);
  } else if constexpr (A == kRelu) {
    return z <= T(0) ? T(0) : T(1);  // torch: the gradient passes where relu(z) is not <= 0
  } else if constexpr (A == kLrelu) {
    return z > T(0) ? T(1) : alpha;
  } else if constexpr (A == kTanh) {
    const T t = m_tanh(z);
    return T(1) - t * t;
  } else if constexpr (A == kSigmoid) {
    const T s = m_sigmoid(z);
    return s * (T(1) - s);
  } else if constexpr (A == kElu) {
    // z > 0 first, so that a NaN gives NaN (torch's own CPU kernels differ by instruction set).
    return z > T(0) ? T(1) : m_exp(z);
  } else if constexpr (A == kSelu) {
    const T s = T(kSeluScale), a = T(kSeluAlpha);
    return z > T(0) ? s : s * a * m_exp(z);  // NaN gives NaN, as for elu
  } else if constexpr (A == kSoftplus) {
    return z > T(20) ? T(1) : m_sigmoid(z);
  } else {  // kSwish: s + z s (1 - s)
    const T s = m_sigmoid(z);
    return s * (T(1) + z * (T(1) - s));
  }
}

// d^2 act / dz^2 (zero for the piecewise-linear activations)
template <int A, typename T>
GB_HD T act_d2(T z, T alpha) {
  (void)alpha;
  if constexpr (A == kLinear || A == kRelu || A == kLrelu) {
    return T(0);
  } else if constexpr (A == kTanh) {
    const T t = m_tanh(z);
    return T(-2) * t * (T(1) - t * t);
  } else if constexpr (A == kSigmoid) {
    const T s = m_sigmoid(z);
    return s * (T(1) - s) * (T(1) - T(2) * s);
  } else if constexpr (A == kElu) {
    return z >= T(0) ? T(0) : m_exp(z);  // z < 0 as torch's double backward; NaN gives NaN
  } else if constexpr (A == kSelu) {
    const T s = T(kSeluScale), a = T(kSeluAlpha);
    return z >= T(0) ? T(0) : s * a * m_exp(z);
  } else if constexpr (A == kSoftplus) {
    if (z > T(20)) return T(0);
    const T s = m_sigmoid(z);
    return s * (T(1) - s);
  } else {  // kSwish: s (1 - s) (2 + z (1 - 2 s))
    const T s = m_sigmoid(z);
    return s * (T(1) - s) * (T(2) + z * (T(1) - T(2) * s));
  }
}

// Runtime-selected versions (act id as an argument), for the activations whose cost is dominated
// by transcendental functions anyway; kGeneric as a template argument selects them.
constexpr int kGeneric = 0;

#define GB_ACT_SWITCH(FN, act, z, alpha)                         \
  switch (act) {                                                 \
    case kLinear: return FN<kLinear>(z, alpha);                  \
    case kRelu: return FN<kRelu>(z, alpha);                      \
    case kLrelu: return FN<kLrelu>(z, alpha);                    \
    case kTanh: return FN<kTanh>(z, alpha);                      \
    case kSigmoid: return FN<kSigmoid>(z, alpha);                \
    case kElu: return FN<kElu>(z, alpha);                        \
    case kSelu: return FN<kSelu>(z, alpha);                      \
    case kSoftplus: return FN<kSoftplus>(z, alpha);              \
    default: return FN<kSwish>(z, alpha);                        \
  }

template <typename T>
GB_HD T act_fn_rt(int act, T z, T alpha) {
  GB_ACT_SWITCH(act_fn, act, z, alpha)
}
template <typename T>
GB_HD T act_d1_rt(int act, T z, T alpha) {
  GB_ACT_SWITCH(act_d1, act, z, alpha)
}
template <typename T>
GB_HD T act_d2_rt(int act, T z, T alpha) {
  GB_ACT_SWITCH(act_d2, act, z, alpha)
}
#undef GB_ACT_SWITCH

// The clamp mask of the gradient: torch.clamp passes the gradient where -c <= v <= c.
template <typename T>
GB_HD T clamp_mask(T v, T c) {
  return (v >= -c && v <= c) ? T(1) : T(0);
}

template <typename T>
GB_HD T clamp_value(T v, T c) {
  // NaN passes through, as with torch.clamp.
  v = v < -c ? -c : v;
  return v > c ? c : v;
}

}  // namespace gb
