// SIMD helpers shared by the CPU kernels: the widest at::vec implementation this compilation
// targets, and loads/stores that convert between a tensor's dtype and its compute type
// (float for float/bfloat16/float16, double for double) a whole vector at a time.
#pragma once

// Select the widest SIMD implementation of at::vec that this compilation targets (the build uses
// -march=native on x86-64); without these, at::vec falls back to portable scalar code.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
    defined(__AVX512VL__) && !defined(CPU_CAPABILITY)
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#elif defined(__AVX2__) && defined(__FMA__) && !defined(CPU_CAPABILITY)
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#endif

#include <ATen/OpMathType.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <cstdint>
#include <type_traits>

namespace gb {

template <typename T>
using Vec = at::vec::Vectorized<T>;

template <typename S>
constexpr bool kReduced = std::is_same_v<S, at::BFloat16> || std::is_same_v<S, at::Half>;

// Vec<T>::size() elements of p, converted to the compute type T.
template <typename T, typename S>
inline Vec<T> load_op(const S* p) {
  if constexpr (std::is_same_v<S, T>) {
    return Vec<T>::loadu(p);
  } else {
    static_assert(kReduced<S> && std::is_same_v<T, float>, "unsupported conversion");
    Vec<float> v;
    at::vec::load_to_float<S>(p, v);
    return v;
  }
}

// Stores the Vec<T>::size() lanes of v at p, rounded to S.
template <typename T, typename S>
inline void store_op(const Vec<T>& v, S* p) {
  if constexpr (std::is_same_v<S, T>) {
    v.store(p);
  } else {
    static_assert(kReduced<S> && std::is_same_v<T, float>, "unsupported conversion");
    at::vec::convert_from_float<S>(v, v).store(p, Vec<T>::size());
  }
}

// dst[i] = D(src[i]) for i < n, vectorised (src and dst: the compute type or a tensor dtype).
template <typename Src, typename Dst>
inline void convert_n(const Src* __restrict src, Dst* __restrict dst, int64_t n) {
  if constexpr (std::is_same_v<Src, Dst>) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  } else if constexpr (kReduced<Src> && std::is_same_v<Dst, float>) {
    constexpr int64_t L = Vec<float>::size();
    int64_t i = 0;
    for (; i + L <= n; i += L) load_op<float>(src + i).store(dst + i);
    for (; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  } else if constexpr (std::is_same_v<Src, float> && kReduced<Dst>) {
    constexpr int64_t L = Vec<float>::size();
    int64_t i = 0;
    for (; i + L <= n; i += L) store_op<float>(Vec<float>::loadu(src + i), dst + i);
    for (; i < n; ++i) dst[i] = static_cast<Dst>(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(src[i]);
  }
}

}  // namespace gb
