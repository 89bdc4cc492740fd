// Entry points of the CUDA emulator's own checks (emulated builds only).
#include <pybind11/stl.h>

#include "emu/cuda_emu.h"
#include "emu/emu_selftest.h"
#include "registry.h"

namespace sal {

static void register_cuda_emu(py::module_& m) {
  m.def("emu_selftest", &emu_selftest, py::arg("name"), py::call_guard<py::gil_scoped_release>());
  m.def("emu_static_shared", [] {
    size_t count = 0;
    const size_t bytes = sal_emu::static_shared_bytes(&count);
    return py::make_tuple(count, bytes);
  });
#if defined(__SANITIZE_ADDRESS__)
  m.def("emu_sanitizer", [] { return "address"; });
#elif defined(__SANITIZE_THREAD__)
  m.def("emu_sanitizer", [] { return "thread"; });
#else
  m.def("emu_sanitizer", [] { return ""; });
#endif
}
SAL_REGISTER_OP(cuda_emu, register_cuda_emu)

}  // namespace sal
