#include "ops/oic_proposals.h"
#include "registry.h"

namespace sal {

static void register_oic_proposals(py::module_& m) {
  m.def("oic_count_cpu", &oic_count_cpu, py::call_guard<py::gil_scoped_release>());
  m.def("oic_fill_cpu", &oic_fill_cpu, py::call_guard<py::gil_scoped_release>());
}
SAL_REGISTER_OP(oic_proposals, register_oic_proposals)

}  // namespace sal
