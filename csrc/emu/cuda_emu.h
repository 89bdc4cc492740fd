// CPU emulation of the CUDA execution model (development and CI builds only: SAL_EXT_CUDA_EMU).
//
// Included by cuda_common.h instead of <cuda_runtime.h>, so the unchanged kernel bodies of
// csrc/ops/cuda/*.cu compile as host C++ and run with CUDA semantics:
//  - a block's threads are user-space fibers on one OS thread (a worker): a thread runs until
//    it reaches a barrier or a warp collective, then a seeded random choice among the block's
//    runnable threads runs next, so a waiting thread costs nothing and is never runnable;
//  - several blocks run at once, one per worker (SAL_EXT_EMU_WORKERS, default 2 to 4; 1 under
//    ASan), in a seeded order, so blocks race on global memory as on a GPU; under
//    ThreadSanitizer every thread of every block is a TSan fiber, synchronised only by the
//    barriers, collectives and atomics of the kernel (and a block before the next one of its
//    worker), so a race inside a block or between blocks of different workers is reported;
//  - __syncthreads is a barrier of the whole block; the warp collectives (__shfl*_sync,
//    __ballot_sync, __any_sync, __all_sync, __syncwarp) are rendezvous of the lanes named by
//    their mask, exchanging values;
//  - static __shared__ variables are function-static thread_local storage: the worker's copy
//    is the shared memory of the block it runs (function-static under ASan, one worker, so
//    ASan's redzones guard them); they and the dynamic shared memory (SAL_EXTERN_SHARED, sized
//    by the launch) are filled with 0xFF bytes (NaN, -1) at every block start, so a read
//    before a write shows;
//  - atomics are host atomics (__atomic builtins, visible to ThreadSanitizer);
//  - the rules a GPU does not check fail loudly, naming the kernel: a __syncthreads not
//    reached by every thread of the block (or reached at different places), a warp collective
//    with lanes missing from its mask, different masks or a caller outside its mask, a
//    deadlock (every live thread waiting), a write past the dynamic shared memory the launch
//    asked for, a block over 1024 threads or an empty grid. The error becomes the CUDA error
//    of the launch (cudaGetLastError), so SAL_CUDA_CHECK_LAUNCH raises it naming the op.
// See csrc/emu/cuda_emu.cpp for the runtime and README "Development" for how to run it.
#pragma once
#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- CUDA keywords -------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// A block runs on one worker thread: a function-static thread_local variable is the shared
// memory of the block that worker runs (found and poisoned at block start through the symbol
// table, see cuda_emu.cpp). Under ASan one worker runs every block and plain statics keep
// ASan's redzones (it has none for thread_local data).
#if defined(__SANITIZE_ADDRESS__)
#define __shared__ static
#else
#define __shared__ static thread_local
#endif
// __restrict__ is a GCC / Clang keyword already.

// ---- vector types --------------------------------------------------------------------------
struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) double2 {
  double x, y;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline double2 make_double2(double x, double y) { return double2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }

// Built-in variables: per OS thread (the runtime sets them at every switch to a thread).
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---- host API ------------------------------------------------------------------------------
enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;
struct CUstream_st;
using cudaStream_t = CUstream_st*;
enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize();

namespace sal_emu {

// ---- runtime entry points (cuda_emu.cpp) ---------------------------------------------------
enum class Coll : int { kShfl, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncwarp };

void syncthreads(const char* file, int line);
// One warp rendezvous: this lane contributes `value`; returns lane `src`'s value (shuffles; an
// error if `src` is outside the mask) or the mask's lanes whose value is non-zero (the others).
uint64_t warp_collective(Coll op, unsigned mask, uint64_t value, int src, const char* file, int line);
[[noreturn]] void kernel_error(const std::string& what);
unsigned char* dynamic_shared();
// Bytes (and count) of the static __shared__ variables found in the kernel translation units.
size_t static_shared_bytes(size_t* count);

struct LaunchSite {
  const char* kernel;
  const char* file;
  int line;
};
// Runs body() in every thread of every block; returns the launch's error (also made the
// thread's last CUDA error).
cudaError_t launch(const LaunchSite& site, const void* kernel_address, dim3 grid, dim3 block,
                   size_t shmem, cudaStream_t stream, void (*body)(void*), void* ctx);

template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp value of 8 bytes at most");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <typename T>
inline T from_bits(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}

inline unsigned lane_id() { return (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) & 31u; }

template <typename T>
T shfl(Coll op, const char* file, int line, unsigned mask, T var, int arg, int width) {
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0)
    kernel_error(std::string("warp shuffle width ") + std::to_string(width) + " is not a power of 2 in 1..32");
  const int lane = static_cast<int>(lane_id());
  const int seg = lane & ~(width - 1);
  int src = lane;
  switch (op) {
    case Coll::kShfl: src = seg + (arg & (width - 1)); break;
    case Coll::kShflUp: src = (lane - seg) >= arg ? lane - arg : lane; break;
    case Coll::kShflDown: src = (lane - seg) + arg < width ? lane + arg : lane; break;
    default: {  // xor
      const int s = lane ^ arg;
      src = (s & ~(width - 1)) == seg ? s : lane;
    }
  }
  return from_bits<T>(warp_collective(op, mask, to_bits(var), src, file, line));
}

inline unsigned ballot(Coll op, const char* file, int line, unsigned mask, int pred) {
  return static_cast<unsigned>(warp_collective(op, mask, pred ? 1u : 0u, -1, file, line));
}

// ---- kernel launch ---------------------------------------------------------------------------
template <typename... P>
struct Launcher {
  void (*kernel)(P...);
  LaunchSite site;
  dim3 grid, block;
  size_t shmem;
  cudaStream_t stream;

  template <typename... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    // CUDA copies the arguments once at the launch; every thread gets them by value.
    std::tuple<std::decay_t<P>...> args(std::forward<A>(a)...);
    struct Ctx {
      void (*kernel)(P...);
      std::tuple<std::decay_t<P>...>* args;
    } ctx{kernel, &args};
    launch(site, reinterpret_cast<const void*>(kernel), grid, block, shmem, stream,
           [](void* c) {
             auto* x = static_cast<Ctx*>(c);
             std::apply(x->kernel, *x->args);
           },
           &ctx);
  }
};

template <typename... P>
Launcher<P...> make_launch(void (*kernel)(P...), const char* name, const char* file, int line,
                           dim3 grid, dim3 block, size_t shmem, cudaStream_t stream) {
  return Launcher<P...>{kernel, LaunchSite{name, file, line}, grid, block, shmem, stream};
}

}  // namespace sal_emu

// `SAL_LAUNCH(grid, block, shmem, stream, kernel)(args...)` is
// `kernel<<<grid, block, shmem, stream>>>(args...)` under nvcc (see cuda_common.h).
#define SAL_LAUNCH(grid, block, shmem, stream, ...)                                        \
  ::sal_emu::make_launch(__VA_ARGS__, #__VA_ARGS__, __FILE__, __LINE__, dim3(grid),       \
                         dim3(block), static_cast<size_t>(shmem), stream)
// `extern __shared__ __align__(16) type name[]` under nvcc: the launch's dynamic shared memory.
#define SAL_EXTERN_SHARED(type, name) type* const name = reinterpret_cast<type*>(::sal_emu::dynamic_shared())

// ---- synchronisation and warp collectives ------------------------------------------------------
#define __syncthreads() ::sal_emu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::sal_emu::syncwarp_(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_sync(mask, var, ...) \
  ::sal_emu::shfl(::sal_emu::Coll::kShfl, __FILE__, __LINE__, mask, var, __VA_ARGS__)
#define __shfl_up_sync(mask, var, ...) \
  ::sal_emu::shfl(::sal_emu::Coll::kShflUp, __FILE__, __LINE__, mask, var, __VA_ARGS__)
#define __shfl_down_sync(mask, var, ...) \
  ::sal_emu::shfl(::sal_emu::Coll::kShflDown, __FILE__, __LINE__, mask, var, __VA_ARGS__)
#define __shfl_xor_sync(mask, var, ...) \
  ::sal_emu::shfl(::sal_emu::Coll::kShflXor, __FILE__, __LINE__, mask, var, __VA_ARGS__)
#define __ballot_sync(mask, pred) ::sal_emu::ballot(::sal_emu::Coll::kBallot, __FILE__, __LINE__, mask, (pred))
#define __any_sync(mask, pred) (::sal_emu::ballot(::sal_emu::Coll::kAny, __FILE__, __LINE__, mask, (pred)) != 0u)
#define __all_sync(mask, pred) \
  (::sal_emu::ballot(::sal_emu::Coll::kAll, __FILE__, __LINE__, mask, (pred)) == (mask))

namespace sal_emu {
// width defaults to 32 (the shuffles' last argument)
template <typename T>
T shfl(Coll op, const char* file, int line, unsigned mask, T var, int arg) {
  return shfl<T>(op, file, line, mask, var, arg, 32);
}
inline void syncwarp_(const char* file, int line, unsigned mask = 0xffffffffu) {
  warp_collective(Coll::kSyncwarp, mask, 0, -1, file, line);
}
}  // namespace sal_emu

inline unsigned __activemask() { return 0xffffffffu; }  // every lane is running (no divergence model)
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---- atomics (relaxed, as CUDA's) -------------------------------------------------------------
// The read-modify-writes without a host instruction (float / double add, max, min): a
// compare-and-swap loop applying `f(old, v)`.
template <typename T, typename F>
inline T sal_emu_atomic_update(T* p, T v, F f) {
  T old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  while (true) {
    T want = f(old, v);
    if (__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return old;
  }
}
#define SAL_EMU_INT_ATOMICS(T)                                                                      \
  inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }             \
  inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }             \
  inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }               \
  inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }             \
  inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }             \
  inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }           \
  inline T atomicMax(T* p, T v) {                                                                  \
    return sal_emu_atomic_update(p, v, [](T o, T x) { return x > o ? x : o; });                   \
  }                                                                                                 \
  inline T atomicMin(T* p, T v) {                                                                  \
    return sal_emu_atomic_update(p, v, [](T o, T x) { return x < o ? x : o; });                   \
  }                                                                                                 \
  inline T atomicCAS(T* p, T expected, T desired) {                                                 \
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED); \
    return expected;                                                                                \
  }
SAL_EMU_INT_ATOMICS(int)
SAL_EMU_INT_ATOMICS(unsigned int)
SAL_EMU_INT_ATOMICS(unsigned long long)
SAL_EMU_INT_ATOMICS(long long)
#undef SAL_EMU_INT_ATOMICS
inline float atomicAdd(float* p, float v) { return sal_emu_atomic_update(p, v, [](float o, float x) { return o + x; }); }
inline double atomicAdd(double* p, double v) {
  return sal_emu_atomic_update(p, v, [](double o, double x) { return o + x; });
}
inline float atomicExch(float* p, float v) {
  float old;
  __atomic_exchange(p, &v, &old, __ATOMIC_RELAXED);
  return old;
}

// ---- intrinsics --------------------------------------------------------------------------------
inline unsigned int __float_as_uint(float x) { return sal_emu::from_bits<unsigned int>(sal_emu::to_bits(x)); }
inline float __uint_as_float(unsigned int x) { return sal_emu::from_bits<float>(x); }
inline int __float_as_int(float x) { return sal_emu::from_bits<int>(sal_emu::to_bits(x)); }
inline float __int_as_float(int x) { return sal_emu::from_bits<float>(static_cast<unsigned int>(x)); }
inline long long __double_as_longlong(double x) { return sal_emu::from_bits<long long>(sal_emu::to_bits(x)); }
inline double __longlong_as_double(long long x) { return sal_emu::from_bits<double>(static_cast<uint64_t>(x)); }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned int>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline unsigned int __brev(unsigned int x) {
  unsigned int r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
template <typename T>
inline T __ldg(const T* p) { return *p; }
inline float rsqrtf(float x) { return 1.0f / ::sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / ::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return ::expf(x); }

// CUDA's min / max accept mixed integer types (the usual arithmetic conversions).
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
  using R = std::common_type_t<A, B>;
  return static_cast<R>(b) < static_cast<R>(a) ? static_cast<R>(b) : static_cast<R>(a);
}
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
  using R = std::common_type_t<A, B>;
  return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(b) : static_cast<R>(a);
}
