// The sal_ext._C module: common entry points, then every op that registered itself.
#include <mutex>

#include "registry.h"

namespace sal {

// Bump when any kernel signature changes: sal_ext/_ext.py refuses a stale build.
constexpr int kAbiVersion = 1;

static std::vector<std::pair<const char*, RegisterFn>>& registry() {
  static std::vector<std::pair<const char*, RegisterFn>> r;
  return r;
}

Registrar::Registrar(const char* name, RegisterFn fn) { registry().emplace_back(name, fn); }

static std::atomic<int> g_num_threads{0};

int get_num_threads() {
  int n = g_num_threads.load();
  if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
  return n;
}

void set_num_threads(int n) { g_num_threads.store(n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = std::min<int64_t>(get_num_threads(), (n + grain - 1) / grain);
  if (chunks <= 1) {
    f(0, n);
    return;
  }
  std::vector<std::thread> workers;
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](int64_t c) {
    int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    try {
      f(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  workers.reserve(chunks - 1);
  for (int64_t c = 1; c < chunks; ++c) workers.emplace_back(run, c);
  run(0);
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace sal

PYBIND11_MODULE(_C, m) {
  m.doc() = "sal_ext kernels (C++ and, when built, CUDA)";
  m.def("abi_version", [] { return sal::kAbiVersion; });
#if defined(SAL_EXT_WITH_CUDA) && !defined(SAL_EXT_CUDA_EMU)
  m.def("with_cuda", [] { return true; });
#else
  m.def("with_cuda", [] { return false; });
#endif
  // the `<op>_cuda` entry points run on the CPU emulator (host pointers, device 0, stream 0)
#ifdef SAL_EXT_CUDA_EMU
  m.def("with_cuda_emu", [] { return true; });
#else
  m.def("with_cuda_emu", [] { return false; });
#endif
  m.def("get_num_threads", &sal::get_num_threads);
  m.def("set_num_threads", &sal::set_num_threads, pybind11::arg("n"));
  pybind11::list ops;
  for (auto& entry : sal::registry()) {
    entry.second(m);
    ops.append(entry.first);
  }
  m.attr("ops") = ops;
}
