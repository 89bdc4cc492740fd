#include "ops/detection.h"
#include "registry.h"

namespace sal {

static void register_detection(py::module_& m) {
  m.def("segment_iou_cpu", &segment_iou_cpu, py::call_guard<py::gil_scoped_release>());
  m.def("detection_ap_cpu", &detection_ap_cpu, py::call_guard<py::gil_scoped_release>());
#ifdef SAL_EXT_WITH_CUDA
  m.def("segment_iou_cuda", &segment_iou_cuda, py::call_guard<py::gil_scoped_release>());
#endif
}
SAL_REGISTER_OP(detection, register_detection)

}  // namespace sal
