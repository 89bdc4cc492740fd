#include "ops/nms.h"
#include "registry.h"

namespace sal {

static void register_nms(py::module_& m) {
  m.def("nms_1d_cpu", &nms_1d_cpu, py::call_guard<py::gil_scoped_release>());
#ifdef SAL_EXT_WITH_CUDA
  m.def("nms_1d_cuda", &nms_1d_cuda, py::call_guard<py::gil_scoped_release>());
#endif
}
SAL_REGISTER_OP(nms, register_nms)

}  // namespace sal
