// Declarations of the native ops (CPU and CUDA entry points) and shared layout helpers.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

namespace gb {

// ---- upfirdn2d: x [N, C, H, W]; w 1-D (separable) or 2-D [fh, fw], correlation order, already
// scaled by the gain, in the compute dtype (float64 for float64 x, float32 otherwise).
at::Tensor upfirdn2d_cpu(const at::Tensor& x, const at::Tensor& w, int64_t upx, int64_t upy,
                         int64_t downx, int64_t downy, int64_t padx0, int64_t padx1,
                         int64_t pady0, int64_t pady1);

// ---- bias_act: y = clamp(act(x + b) * gain) with b along `dim`; clamp < 0 means no clamp.
at::Tensor bias_act_cpu(const at::Tensor& x, const std::optional<at::Tensor>& b, int64_t dim,
                        int64_t act, double alpha, double gain, double clamp);

// dx = dy * gain * act'(x + b) * clamp_mask; db (compute dtype) = dx summed over all but `dim`
// when want_db, else an empty tensor.
std::tuple<at::Tensor, at::Tensor> bias_act_grad_cpu(const at::Tensor& dy, const at::Tensor& x,
                                                     const std::optional<at::Tensor>& b,
                                                     int64_t dim, int64_t act, double alpha,
                                                     double gain, double clamp, bool want_db);

// d = g * dy * gain * act''(x + b) * clamp_mask (the gradient of dx with respect to x), and its
// sum over all but `dim` when want_db.
std::tuple<at::Tensor, at::Tensor> bias_act_grad2_cpu(const at::Tensor& g, const at::Tensor& dy,
                                                      const at::Tensor& x,
                                                      const std::optional<at::Tensor>& b,
                                                      int64_t dim, int64_t act, double alpha,
                                                      double gain, double clamp, bool want_db);

// ---- layout of an elementwise op with a per-channel bias.
// A non-overlapping, dense tensor seen in memory order as [outer, C, inner] with C = size(dim).
struct Span3 {
  int64_t outer, C, inner;
};

inline Span3 span3_of(const at::Tensor& t, int64_t dim) {
  const int64_t numel = t.numel();
  const int64_t C = t.size(dim);
  if (C <= 1 || numel == 0) return {1, 1, numel};
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) > 1) dims.push_back(d);
  }
  std::stable_sort(dims.begin(), dims.end(),
                   [&](int64_t a, int64_t b) { return t.stride(a) > t.stride(b); });
  int64_t outer = 1, inner = 1;
  bool before = true;
  for (int64_t d : dims) {
    if (d == dim) {
      before = false;
    } else if (before) {
      outer *= t.size(d);
    } else {
      inner *= t.size(d);
    }
  }
  return {outer, C, inner};
}

}  // namespace gb
