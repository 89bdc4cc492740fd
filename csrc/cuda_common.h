// Helpers shared by the CUDA kernels (.cu files only).
#pragma once
#ifdef SAL_EXT_CUDA_EMU
// CPU emulation of the CUDA execution model (tools/emu_build.sh): the kernels compile as C++.
#include "emu/cuda_emu.h"
#else
#include <cuda_runtime.h>
// The two spellings the emulator needs changed (csrc/emu/cuda_emu.h defines its own):
// `SAL_LAUNCH(grid, block, shmem, stream, kernel)(args...)` is a kernel launch, and
// `SAL_EXTERN_SHARED(type, name);` declares the launch's dynamic shared memory.
#define SAL_LAUNCH(grid, block, shmem, stream, ...) __VA_ARGS__<<<grid, block, shmem, stream>>>
#define SAL_EXTERN_SHARED(type, name) extern __shared__ __align__(16) type name[]
#endif
#include <cstdint>
#include <stdexcept>
#include <string>

namespace sal {

// Every CUDA call and launch goes through this: an error becomes a RuntimeError naming the op.
inline void cuda_check(cudaError_t err, const char* op, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("sal_ext.") + op + ": CUDA error in " + what + ": " +
                             cudaGetErrorString(err));
  }
}
#define SAL_CUDA_CHECK(expr, op) ::sal::cuda_check((expr), op, #expr)
#define SAL_CUDA_CHECK_LAUNCH(op) ::sal::cuda_check(cudaGetLastError(), op, "kernel launch")

inline cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// Makes `device` current for this thread (the caller passes the tensor's device index).
inline void set_device(int device, const char* op) {
  SAL_CUDA_CHECK(cudaSetDevice(device), op);
}

// set_device for the scope of one op call, restoring the caller's current device on exit
// (torch reads the runtime's current device: a kernel on cuda:1 must not leave it switched).
class DeviceGuard {
 public:
  DeviceGuard(int device, const char* op) {
    SAL_CUDA_CHECK(cudaGetDevice(&prev_), op);
    if (prev_ != device) set_device(device, op);
  }
  ~DeviceGuard() {
    int cur = prev_;
    if (cudaGetDevice(&cur) == cudaSuccess && cur != prev_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace sal
