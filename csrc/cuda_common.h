// Helpers shared by the CUDA kernels (.cu files only).
#pragma once
#include <cuda_runtime.h>
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

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace sal
