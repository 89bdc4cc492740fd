#include "ops/second_order_pool.h"
#include "registry.h"

namespace sal {

static void register_second_order_pool(py::module_& m) {
  m.def("second_order_pool_forward_cpu", &second_order_pool_forward_cpu,
        py::call_guard<py::gil_scoped_release>());
  m.def("second_order_pool_backward_cpu", &second_order_pool_backward_cpu,
        py::call_guard<py::gil_scoped_release>());
#ifdef SAL_EXT_WITH_CUDA
  m.def("second_order_pool_forward_cuda", &second_order_pool_forward_cuda,
        py::call_guard<py::gil_scoped_release>());
  m.def("second_order_pool_backward_cuda", &second_order_pool_backward_cuda,
        py::call_guard<py::gil_scoped_release>());
#endif
}
SAL_REGISTER_OP(second_order_pool, register_second_order_pool)

}  // namespace sal
