// Kernels that check the CUDA emulator itself (emulated builds only; python_tests/test_cuda_emu.py):
// correct ones whose results the test knows, and broken ones each emulator check must catch.
#include <cstdio>
#include <string>
#include <vector>

#include "cuda_common.h"
#include "emu/emu_selftest.h"

namespace sal {
namespace {

constexpr int kN = 128;

// Warp collectives, atomics and both kinds of shared memory, with known results.
__global__ void collectives_kernel(double* out, int* order, int* counter) {
  __shared__ double s_vals[kN];
  __shared__ int s_count;
  SAL_EXTERN_SHARED(int, dyn);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) s_count = 0;
  s_vals[tid] = tid;
  dyn[tid] = 2 * tid;
  __syncthreads();
  atomicAdd(&s_count, 1);
  double v = s_vals[(tid + 1) % kN] + dyn[tid];  // 3 tid + 1 (mod wrap)
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int up = __shfl_up_sync(0xffffffffu, lane, 1);
  const int x = __shfl_xor_sync(0xffffffffu, lane, 3);
  const int b = __shfl_sync(0xffffffffu, lane * 10, 5);
  const unsigned ballot = __ballot_sync(0xffffffffu, lane % 3 == 0);
  const bool any = __any_sync(0xffffffffu, lane == 7), all = __all_sync(0xffffffffu, lane < 32);
  const int half = lane < 16 ? __shfl_down_sync(0x0000ffffu, lane, 1, 16) : -1;  // a 16-lane group
  __syncwarp();
  __syncthreads();
  const int base = (blockIdx.x * kN + tid) * 8;
  out[base + 0] = lane == 0 ? v : 0.0;
  out[base + 1] = up;
  out[base + 2] = x;
  out[base + 3] = b;
  out[base + 4] = (double)__popc(ballot);
  out[base + 5] = (any ? 1 : 0) + (all ? 2 : 0);
  out[base + 6] = half;
  out[base + 7] = s_count;
  if (tid == 0) order[atomicAdd(counter, 1)] = blockIdx.x;
  (void)warp;
}

// Reads static shared memory before this block writes it: the poison pattern (NaN) shows,
// not the previous block's values.
__global__ void read_before_write_kernel(double* out) {
  __shared__ double s[kN];
  const double v = s[threadIdx.x];
  __syncthreads();
  s[threadIdx.x] = 1.0;
  out[blockIdx.x * kN + threadIdx.x] = v;
}

__global__ void bench_kernel(double* out, int syncs, int shuffles) {
  double v = threadIdx.x;
  for (int i = 0; i < syncs; ++i) __syncthreads();
  for (int i = 0; i < shuffles; ++i) v += __shfl_xor_sync(0xffffffffu, v, 1);
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

// Threads 0..31 return early, the others reach a barrier.
__global__ void missing_barrier_kernel(double* out) {
  if (threadIdx.x < 32) return;
  __syncthreads();
  out[blockIdx.x * kN + threadIdx.x] = 1.0;
}

// Two halves of the block wait at different barriers.
__global__ void divergent_barrier_kernel(double* out) {
  if (threadIdx.x < kN / 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[blockIdx.x * kN + threadIdx.x] = 1.0;
}

// A full-mask shuffle called by half of each warp.
__global__ void partial_warp_kernel(double* out) {
  double v = threadIdx.x;
  if ((threadIdx.x & 31) < 16) v += __shfl_down_sync(0xffffffffu, v, 8);
  __syncthreads();
  out[blockIdx.x * kN + threadIdx.x] = v;
}

// Lanes of one warp pass different masks to one shuffle.
__global__ void mask_mismatch_kernel(double* out) {
  const int lane = threadIdx.x & 31;
  const unsigned mask = lane < 16 ? 0xffffffffu : 0xffff0000u;
  out[threadIdx.x] = __shfl_xor_sync(mask, (double)lane, 1);
}

// A lane calls a collective whose mask does not name it.
__global__ void not_in_mask_kernel(double* out) {
  const int lane = threadIdx.x & 31;
  out[threadIdx.x] = __shfl_sync(lane == 31 ? 0x0000ffffu : 0xffffffffu, (double)lane, 0);
}

// Writes one element past the dynamic shared memory the launch asked for.
__global__ void dynamic_overflow_kernel(double* out) {
  SAL_EXTERN_SHARED(double, dyn);
  dyn[threadIdx.x] = threadIdx.x;
  __syncthreads();
  if (threadIdx.x == 0) dyn[kN] = 1.0;
  out[blockIdx.x * kN + threadIdx.x] = dyn[threadIdx.x];  // (each block its own: no race between blocks)
}

// Blocks wait (a bounded spin) until `n` blocks have started: they pass only if the emulator
// runs blocks at the same time; each records how many had started.
__global__ void overlap_kernel(double* out, int* started, int n) {
  if (threadIdx.x != 0) return;
  atomicAdd(started, 1);
  for (long spins = 0; atomicAdd(started, 0) < n && spins < 200000000L; ++spins) {
  }
  out[blockIdx.x] = atomicAdd(started, 0);
}

// The planted second_order_pool mutant's shape: every block's first thread adds to one global
// value without an atomic, a race between blocks (ThreadSanitizer must report it).
__global__ void cross_block_race_kernel(double* out) {
  if (threadIdx.x == 0) out[0] += 1.0;
}

// Every thread of a block adds to one shared value without an atomic: a race inside a block.
__global__ void block_race_kernel(double* out) {
  __shared__ double s_sum;
  if (threadIdx.x == 0) s_sum = 0.0;
  __syncthreads();
  s_sum += 1.0;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = s_sum;
}

__global__ void empty_kernel(double* out) {
  if (threadIdx.x == 0 && out != nullptr) out[0] = 1.0;
}

}  // namespace

std::vector<double> emu_selftest(const std::string& name) {
  const char* op = "emu_selftest";
  const int blocks = 24;
  std::vector<double> out(static_cast<size_t>(blocks) * kN * 8, 0.0);
  std::vector<int> order(blocks, -1);
  int counter = 0;
  cudaStream_t st = nullptr;
  double* o = out.data();
  if (name == "collectives") {
    SAL_LAUNCH(blocks, kN, kN * sizeof(int), st, collectives_kernel)(o, order.data(), &counter);
    SAL_CUDA_CHECK_LAUNCH(op);
    out.insert(out.end(), order.begin(), order.end());  // the block order, after the results
  } else if (name == "read_before_write") {
    SAL_LAUNCH(2, kN, 0, st, read_before_write_kernel)(o);
  } else if (name.rfind("bench", 0) == 0) {  // bench_<blocks>_<threads>_<syncs>_<shuffles>
    int nb = 1, nt = 32, sy = 0, sh = 0;
    std::sscanf(name.c_str(), "bench_%d_%d_%d_%d", &nb, &nt, &sy, &sh);
    out.assign(static_cast<size_t>(nb) * nt, 0.0);
    o = out.data();
    SAL_LAUNCH(nb, nt, 0, st, bench_kernel)(o, sy, sh);
  } else if (name == "overlap") {
    SAL_LAUNCH(2, kN, 0, st, overlap_kernel)(o, &counter, 2);
    out.resize(2);
  } else if (name == "cross_block_race") {
    SAL_LAUNCH(8, 32, 0, st, cross_block_race_kernel)(o);
    out.resize(1);
  } else if (name == "block_race") {
    SAL_LAUNCH(2, kN, 0, st, block_race_kernel)(o);
    out.resize(2);
  } else if (name == "missing_barrier") {
    SAL_LAUNCH(2, kN, 0, st, missing_barrier_kernel)(o);
  } else if (name == "divergent_barrier") {
    SAL_LAUNCH(2, kN, 0, st, divergent_barrier_kernel)(o);
  } else if (name == "partial_warp") {
    SAL_LAUNCH(2, kN, 0, st, partial_warp_kernel)(o);
  } else if (name == "mask_mismatch") {
    SAL_LAUNCH(1, 32, 0, st, mask_mismatch_kernel)(o);
  } else if (name == "not_in_mask") {
    SAL_LAUNCH(1, 32, 0, st, not_in_mask_kernel)(o);
  } else if (name == "dynamic_overflow") {
    SAL_LAUNCH(3, kN, kN * sizeof(double), st, dynamic_overflow_kernel)(o);
  } else if (name == "block_too_large") {
    SAL_LAUNCH(1, 1025, 0, st, empty_kernel)(o);
  } else if (name == "empty_grid") {
    SAL_LAUNCH(0, 32, 0, st, empty_kernel)(o);
  } else if (name == "too_much_shared") {
    SAL_LAUNCH(1, 32, 64 * 1024, st, empty_kernel)(o);
  } else if (name == "stream") {
    SAL_LAUNCH(1, 32, 0, reinterpret_cast<cudaStream_t>(16), empty_kernel)(o);
  } else {
    throw std::invalid_argument("emu_selftest: unknown case " + name);
  }
  SAL_CUDA_CHECK_LAUNCH(op);
  return out;
}

}  // namespace sal
