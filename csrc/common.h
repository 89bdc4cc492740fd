// Shared helpers for sal_ext kernels. No libtorch: tensors arrive as raw pointers
// (Python passes tensor.data_ptr()), sizes as int64, CUDA streams as integer handles.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sal {

// Pointer passed from Python as an integer (tensor.data_ptr()).
using ptr_t = std::uintptr_t;

template <typename T>
inline T* as_ptr(ptr_t p) { return reinterpret_cast<T*>(p); }

// Data type codes shared with sal_ext/ops/_common.py (DTYPE_CODES).
enum DType : int { kFloat32 = 0, kFloat64 = 1, kInt64 = 2, kInt32 = 3, kUInt8 = 4 };

[[noreturn]] inline void fail(const std::string& op, const std::string& what) {
  throw std::runtime_error("sal_ext." + op + ": " + what);
}

// Calls f with a value of the floating type named by `dtype` (float or double).
#define SAL_DISPATCH_FLOAT(dtype, op, ...)                                   \
  [&] {                                                                      \
    switch (dtype) {                                                         \
      case ::sal::kFloat32: { using scalar_t = float; return __VA_ARGS__(); }  \
      case ::sal::kFloat64: { using scalar_t = double; return __VA_ARGS__(); } \
      default: ::sal::fail(op, "unsupported dtype code " + std::to_string(dtype)); \
    }                                                                        \
  }()

// ---- CPU threading -------------------------------------------------------
// A small std::thread pool-free parallel_for: torch's own OpenMP runtime is not linked,
// so a second OpenMP runtime (spinning threads) never competes with torch's.
// The count defaults to the machine's cores; the Python front (sal_ext/ops/_common.py, call())
// sets it to torch.get_num_threads() before every CPU kernel call, so OMP_NUM_THREADS and
// torch.set_num_threads govern the kernels too.
int get_num_threads();
void set_num_threads(int n);

// Runs f(begin, end) over [0, n) split into at most get_num_threads() chunks of at least
// `grain` items. Exceptions from workers are rethrown in the caller.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

}  // namespace sal
