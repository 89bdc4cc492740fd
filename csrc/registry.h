// Op self-registration into the sal_ext._C module (binding .cpp files only, not .cu).
#pragma once
#include <pybind11/pybind11.h>

#include "common.h"

namespace sal {

namespace py = pybind11;

// ---- op registry -----------------------------------------------------------
// Each op's binding file registers itself (SAL_REGISTER_OP), so adding an op is adding files.
using RegisterFn = void (*)(py::module_&);
struct Registrar {
  Registrar(const char* name, RegisterFn fn);
};
#define SAL_REGISTER_OP(name, fn) static ::sal::Registrar sal_registrar_##name(#name, fn);

}  // namespace sal
