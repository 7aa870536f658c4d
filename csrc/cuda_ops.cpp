// CUDA implementations of the torch.ops.ganblocks.* ops: validate, lay out, and launch the kernels
// of upfirdn2d_cuda.cu / bias_act_cuda.cu on the current stream. Compiled only in the CUDA flavour
// of the build (it needs a CUDA build of torch for ATen/cuda headers).

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "kernels_cuda.h"
#include "ops.h"

namespace gb {
namespace {

int dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return cuda::kF32;
    case at::kDouble: return cuda::kF64;
    case at::kHalf: return cuda::kF16;
    case at::kBFloat16: return cuda::kBF16;
    default: TORCH_CHECK(false, "ganblocks CUDA kernels: unsupported dtype ", t);
  }
  return -1;
}

at::ScalarType opmath_of(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

void check_cuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, ": CUDA error: ", cudaGetErrorString(err));
}

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& w_in, int64_t upx, int64_t upy,
                          int64_t downx, int64_t downy, int64_t padx0, int64_t padx1,
                          int64_t pady0, int64_t pady1) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 4, "upfirdn2d: x must be a 4-D CUDA tensor");
  TORCH_CHECK(w_in.dim() == 1 || w_in.dim() == 2, "upfirdn2d: w must be 1-D or 2-D");
  TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1,
              "upfirdn2d: up and down must be >= 1");
  c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType opmath = opmath_of(x.scalar_type());
  at::Tensor w = w_in.to(x.device(), opmath).contiguous();
  const int64_t fw = w.size(-1), fh = w.dim() == 2 ? w.size(0) : fw;
  if (w.dim() == 1 && fw <= 8) {
    w = at::outer(w, w).contiguous();  // one pass with the 2-D product (tiled kernels)
  } else if (w.dim() == 1) {
    // Long separable filters: a horizontal pass, then a vertical one.
    at::Tensor t = upfirdn2d_cuda(x, w.reshape({1, fw}), upx, 1, downx, 1, padx0, padx1, 0, 0);
    return upfirdn2d_cuda(t, w.reshape({fh, 1}), 1, upy, 1, downy, 0, 0, pady0, pady1);
  }
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t up_w = W * upx + padx0 + padx1 - fw, up_h = H * upy + pady0 + pady1 - fh;
  TORCH_CHECK(up_w >= 0 && up_h >= 0, "upfirdn2d: the padded input is smaller than the filter");
  const int64_t OW = up_w / downx + 1, OH = up_h / downy + 1;
  const bool channels_last =
      !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast) && C > 1;
  at::Tensor y = at::empty({N, C, OH, OW},
                           x.options().memory_format(channels_last
                                                         ? at::MemoryFormat::ChannelsLast
                                                         : at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  cuda::UpFirDn2dArgs a{};
  a.x = x.const_data_ptr();
  a.y = y.mutable_data_ptr();
  a.w = w.const_data_ptr();
  a.N = N;
  a.C = C;
  a.H = H;
  a.W = W;
  a.OH = OH;
  a.OW = OW;
  for (int d = 0; d < 4; ++d) {
    a.sx[d] = x.stride(d);
    a.sy[d] = y.stride(d);
  }
  a.upx = static_cast<int>(upx);
  a.upy = static_cast<int>(upy);
  a.downx = static_cast<int>(downx);
  a.downy = static_cast<int>(downy);
  a.padx0 = static_cast<int>(padx0);
  a.pady0 = static_cast<int>(pady0);
  a.fw = static_cast<int>(fw);
  a.fh = static_cast<int>(fh);
  int path = 0;
  check_cuda(cuda::upfirdn2d(a, dtype_code(x.scalar_type()), channels_last,
                             c10::cuda::getCurrentCUDAStream().stream(), &path),
             "upfirdn2d");
  return y;
}

struct Dense {
  at::Tensor x, dy, g, b;
  Span3 s;
};

Dense prepare(const at::Tensor& x_in, const at::Tensor* dy, const at::Tensor* g,
              const std::optional<at::Tensor>& b, int64_t dim) {
  TORCH_CHECK(x_in.is_cuda(), "bias_act: expected a CUDA tensor");
  Dense d;
  d.x = x_in.is_non_overlapping_and_dense() ? x_in : x_in.contiguous();
  auto like_x = [&](const at::Tensor& t) {
    TORCH_CHECK(t.sizes() == d.x.sizes(), "bias_act: gradient shape does not match x");
    if (t.strides() == d.x.strides() && t.scalar_type() == d.x.scalar_type()) return t;
    return at::empty_like(d.x).copy_(t);
  };
  if (dy) d.dy = like_x(*dy);
  if (g) d.g = like_x(*g);
  if (b.has_value() && b->defined()) {
    TORCH_CHECK(dim >= 0 && dim < d.x.dim(), "bias_act: dim out of range");
    TORCH_CHECK(b->dim() == 1 && b->size(0) == d.x.size(dim),
                "bias_act: b must have x.shape[dim] elements");
    d.b = b->to(d.x.device(), d.x.scalar_type()).contiguous();
    d.s = span3_of(d.x, dim);
  } else {
    d.s = {1, 1, d.x.numel()};
  }
  return d;
}

at::Tensor run(const Dense& d, int mode, int64_t act, double alpha, double gain, double clamp) {
  at::Tensor out = at::empty_like(d.x);
  cuda::BiasActArgs a{};
  a.x = d.x.const_data_ptr();
  a.dy = d.dy.defined() ? d.dy.const_data_ptr() : nullptr;
  a.g = d.g.defined() ? d.g.const_data_ptr() : nullptr;
  a.b = d.b.defined() ? d.b.const_data_ptr() : nullptr;
  a.out = out.mutable_data_ptr();
  a.numel = d.x.numel();
  a.C = d.s.C;
  a.inner = std::max<int64_t>(d.s.inner, 1);
  a.act = static_cast<int>(act);
  a.mode = mode;
  a.alpha = alpha;
  a.gain = gain;
  a.clamp = clamp;
  check_cuda(cuda::bias_act(a, dtype_code(d.x.scalar_type()), c10::cuda::getCurrentCUDAStream().stream()),
             "bias_act");
  return out;
}

// The bias gradient, or an empty tensor when not wanted (never an undefined one: the op's fake
// kernel and autograd formula see one fixed signature).
at::Tensor bias_sum(const at::Tensor& t, int64_t dim, bool want_db) {
  if (!want_db) return at::empty({0}, t.options().dtype(opmath_of(t.scalar_type())));
  std::vector<int64_t> dims;
  for (int64_t k = 0; k < t.dim(); ++k) {
    if (k != dim) dims.push_back(k);
  }
  return at::sum(t, dims, false, opmath_of(t.scalar_type()));
}

at::Tensor bias_act_cuda(const at::Tensor& x, const std::optional<at::Tensor>& b, int64_t dim,
                         int64_t act, double alpha, double gain, double clamp) {
  c10::cuda::CUDAGuard guard(x.device());
  return run(prepare(x, nullptr, nullptr, b, dim), 0, act, alpha, gain, clamp);
}

std::tuple<at::Tensor, at::Tensor> bias_act_grad_cuda(const at::Tensor& dy, const at::Tensor& x,
                                                      const std::optional<at::Tensor>& b,
                                                      int64_t dim, int64_t act, double alpha,
                                                      double gain, double clamp, bool want_db) {
  c10::cuda::CUDAGuard guard(x.device());
  at::Tensor dx = run(prepare(x, &dy, nullptr, b, dim), 1, act, alpha, gain, clamp);
  return {dx, bias_sum(dx, dim, want_db)};
}

std::tuple<at::Tensor, at::Tensor> bias_act_grad2_cuda(const at::Tensor& g, const at::Tensor& dy,
                                                       const at::Tensor& x,
                                                       const std::optional<at::Tensor>& b,
                                                       int64_t dim, int64_t act, double alpha,
                                                       double gain, double clamp, bool want_db) {
  c10::cuda::CUDAGuard guard(x.device());
  at::Tensor d = run(prepare(x, &dy, &g, b, dim), 2, act, alpha, gain, clamp);
  return {d, bias_sum(d, dim, want_db)};
}

}  // namespace
}  // namespace gb

TORCH_LIBRARY_IMPL(ganblocks, CUDA, m) {
  m.impl("upfirdn2d", &gb::upfirdn2d_cuda);
  m.impl("bias_act", &gb::bias_act_cuda);
  m.impl("bias_act_grad", &gb::bias_act_grad_cuda);
  m.impl("bias_act_grad2", &gb::bias_act_grad2_cuda);
}
