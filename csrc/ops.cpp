// Operator schemas of the native extension (torch.ops.ganblocks.*) and their CPU kernels.
//
// The ops are registered with the dispatcher (TORCH_LIBRARY) rather than through pybind11, so the
// extension needs no Python headers and compiles quickly. CUDA kernels are registered by
// cuda_ops.cpp, which is only compiled in the CUDA flavour of the build.

#include <torch/library.h>

#include "ops.h"

namespace gb {
namespace {

std::string build_info() {
#ifdef GANBLOCKS_WITH_CUDA
  return "cpu+cuda";
#else
  return "cpu";
#endif
}

}  // namespace
}  // namespace gb

TORCH_LIBRARY(ganblocks, m) {
  m.def("build_info() -> str", &gb::build_info);
  m.def(
      "upfirdn2d(Tensor x, Tensor w, int upx, int upy, int downx, int downy, int padx0, "
      "int padx1, int pady0, int pady1) -> Tensor");
  m.def(
      "bias_act(Tensor x, Tensor? b, int dim, int act, float alpha, float gain, float clamp) "
      "-> Tensor");
  m.def(
      "bias_act_grad(Tensor dy, Tensor x, Tensor? b, int dim, int act, float alpha, float gain, "
      "float clamp, bool want_db) -> (Tensor, Tensor)");
  m.def(
      "bias_act_grad2(Tensor g, Tensor dy, Tensor x, Tensor? b, int dim, int act, float alpha, "
      "float gain, float clamp, bool want_db) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(ganblocks, CPU, m) {
  m.impl("upfirdn2d", &gb::upfirdn2d_cpu);
  m.impl("bias_act", &gb::bias_act_cpu);
  m.impl("bias_act_grad", &gb::bias_act_grad_cpu);
  m.impl("bias_act_grad2", &gb::bias_act_grad2_cpu);
}
