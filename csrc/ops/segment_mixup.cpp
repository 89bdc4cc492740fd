#include "ops/segment_mixup.h"
#include "registry.h"

namespace sal {

static void register_segment_mixup(py::module_& m) {
  m.def("segment_mixup_cpu", &segment_mixup_cpu, py::call_guard<py::gil_scoped_release>());
  m.def("mix_targets_cpu", &mix_targets_cpu, py::call_guard<py::gil_scoped_release>());
#ifdef SAL_EXT_WITH_CUDA
  m.def("segment_mixup_cuda", &segment_mixup_cuda, py::call_guard<py::gil_scoped_release>());
  m.def("mix_targets_cuda", &mix_targets_cuda, py::call_guard<py::gil_scoped_release>());
#endif
}
SAL_REGISTER_OP(segment_mixup, register_segment_mixup)

}  // namespace sal
