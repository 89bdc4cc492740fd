#include "ops/topk.h"
#include "registry.h"

namespace sal {

static void register_topk(py::module_& m) {
  m.def("topk_mil_cpu", &topk_mil_cpu, py::call_guard<py::gil_scoped_release>());
  m.def("topk_mask_cpu", &topk_mask_cpu, py::call_guard<py::gil_scoped_release>());
  m.def("topk_mil_backward_cpu", &topk_mil_backward_cpu, py::call_guard<py::gil_scoped_release>());
#ifdef SAL_EXT_WITH_CUDA
  m.def("topk_needs_workspace_cuda", &topk_needs_workspace_cuda);
  m.def("topk_mil_cuda", &topk_mil_cuda, py::call_guard<py::gil_scoped_release>());
  m.def("topk_mask_cuda", &topk_mask_cuda, py::call_guard<py::gil_scoped_release>());
  m.def("topk_mil_backward_cuda", &topk_mil_backward_cuda, py::call_guard<py::gil_scoped_release>());
#endif
}
SAL_REGISTER_OP(topk, register_topk)

}  // namespace sal
