// CUDA top-k selection: one 256-thread block per (b, c) column.
//  0. (NaN in the column sets a device flag that the Python front reads after the launch)
//  1. the column's first n_b scores become order-preserving unsigned keys (sign bit flipped,
//     -0.0 mapped like +0.0) in shared memory (or in a global workspace for long columns);
//  2. radix select, 8 bits per pass (4 passes for float32, 8 for float64): a shared-memory
//     histogram of the digit under the keys that still match the chosen prefix, and a block
//     scan over the 256 digits (descending) picks the digit holding the k-th largest key;
//     the result is the k-th key K and `krem`, how many keys equal to K are taken;
//  3. one ordered pass takes every key > K and the first krem keys == K by ascending index
//     (ballot + block prefix counts), compacting the selected time indices in index order
//     and writing the mask;
//  4. topk_mil: each selected element's rank under (key desc, index asc) is counted against
//     the k selected (k^2/256 compares per thread) and its index written at that rank; the
//     values at the selected steps are summed in double (as the CPU kernel) by a fixed-order
//     block reduction (deterministic) and the mean written once.
#include "cuda_common.h"
#include "ops/topk.h"

namespace sal {
namespace {

constexpr int kThreads = 256;  // also the number of radix bins: one bin per thread
constexpr int kWarps = kThreads / 32;
constexpr int64_t kSmemBudget = 40 * 1024;  // dynamic shared memory per block (< the 48 KB default)

template <typename scalar_t> struct KeyOf;
template <> struct KeyOf<float> {
  using type = unsigned int;
  static constexpr int bits = 32;
};
template <> struct KeyOf<double> {
  using type = unsigned long long;
  static constexpr int bits = 64;
};

__device__ __forceinline__ unsigned int to_key(float x) {
  unsigned int u = __float_as_uint(x == 0.0f ? 0.0f : x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ unsigned long long to_key(double x) {
  unsigned long long u = static_cast<unsigned long long>(__double_as_longlong(x == 0.0 ? 0.0 : x));
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

__host__ __device__ inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

inline int64_t key_size(int dtype) { return dtype == kFloat64 ? 8 : 4; }

// Dynamic shared memory of one block: T keys (16-byte aligned), then kmax int32 indices.
inline int64_t smem_bytes(int64_t T, int64_t kmax, int dtype) {
  return round_up(T * key_size(dtype), 16) + kmax * 4;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
topk_kernel(const scalar_t* __restrict__ score, const scalar_t* __restrict__ value,
            const int64_t* __restrict__ kvec, const int64_t* __restrict__ lengths,
            scalar_t* __restrict__ pooled, int64_t* __restrict__ indices,
            scalar_t* __restrict__ mask, int64_t T, int64_t C, int64_t kmax,
            typename KeyOf<scalar_t>::type* __restrict__ ws_keys, int* __restrict__ ws_sel,
            int* __restrict__ nan_flag) {
  using key_t = typename KeyOf<scalar_t>::type;
  constexpr int kBits = KeyOf<scalar_t>::bits;
  SAL_EXTERN_SHARED(unsigned char, smem_raw);
  __shared__ int hist[kThreads];
  __shared__ int warp_a[kWarps];
  __shared__ int warp_b[kWarps];
  __shared__ int s_digit;
  __shared__ int s_krem;
  __shared__ double s_red[kWarps];

  const int64_t col = blockIdx.x;  // grid.x = B * C
  const int64_t b = col / C;
  const int64_t c = col - b * C;
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;

  // n = candidate steps, k = steps taken (the front guarantees 1 <= k <= n <= T, k <= kmax;
  // clamped again so that no input can make this kernel write out of bounds).
  int64_t n64 = T;
  if (lengths != nullptr) {
    n64 = lengths[b];
    n64 = n64 < 1 ? 1 : (n64 > T ? T : n64);
  }
  int64_t k64 = kvec != nullptr ? kvec[b] : kmax;
  k64 = k64 > kmax ? kmax : k64;
  k64 = k64 > n64 ? n64 : k64;
  k64 = k64 < 1 ? 1 : k64;
  const int n = static_cast<int>(n64);
  const int k = static_cast<int>(k64);

  key_t* keys;
  int* sel;
  if (ws_keys != nullptr) {
    keys = ws_keys + col * T;
    sel = ws_sel + col * kmax;
  } else {
    keys = reinterpret_cast<key_t*>(smem_raw);
    sel = reinterpret_cast<int*>(smem_raw + round_up(T * static_cast<int64_t>(sizeof(key_t)), 16));
  }

  // 1. keys of the column; NaN anywhere in the column (also past n) raises the flag
  const scalar_t* scol = score + b * T * C + c;
  bool has_nan = false;
  for (int t = tid; t < n; t += kThreads) {
    const scalar_t x = scol[static_cast<int64_t>(t) * C];
    has_nan |= (x != x);
    keys[t] = to_key(x);
  }
  for (int64_t t = n + tid; t < T; t += kThreads) {
    const scalar_t x = scol[t * C];
    has_nan |= (x != x);
  }
  if (has_nan) atomicOr(nan_flag, 1);

  // 2. radix select of the k-th largest key
  key_t desired = 0, dmask = 0;
  int krem = k;
#pragma unroll 1
  for (int pos = kBits - 8; pos >= 0; pos -= 8) {
    hist[tid] = 0;
    __syncthreads();  // (first pass: also publishes the keys)
    for (int t = tid; t < n; t += kThreads) {
      const key_t key = keys[t];
      if ((key & dmask) == desired) atomicAdd(&hist[static_cast<int>((key >> pos) & 0xFF)], 1);
    }
    __syncthreads();
    const int d = kThreads - 1 - tid;  // thread tid owns digit 255 - tid: scan runs high to low
    const int cnt = hist[d];
    int incl = cnt;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int v = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += v;
    }
    if (lane == 31) warp_a[warp] = incl;
    __syncthreads();
    int before = 0;
    for (int w = 0; w < warp; ++w) before += warp_a[w];
    const int geq = before + incl;  // matching keys with digit >= d
    const int gt = geq - cnt;       // matching keys with digit > d
    if (gt < krem && geq >= krem) {  // exactly one thread: the digit holding the krem-th key
      s_digit = d;
      s_krem = krem - gt;
    }
    __syncthreads();
    desired |= static_cast<key_t>(s_digit) << pos;
    dmask |= static_cast<key_t>(0xFF) << pos;
    krem = s_krem;
  }
  const key_t kth = desired;  // the k-th largest key; krem of the keys equal to it are taken

  // 3. ordered selection: keys > kth, then ties by ascending time index
  const bool want_sel = pooled != nullptr;
  const unsigned int lt_mask = (1u << lane) - 1u;
  int base_gt = 0, base_eq = 0;
  for (int c0 = 0; c0 < n; c0 += kThreads) {
    const int t = c0 + tid;
    const bool valid = t < n;
    const key_t key = valid ? keys[t] : key_t(0);
    const bool is_gt = valid && key > kth;
    const bool is_eq = valid && key == kth;
    const unsigned int mgt = __ballot_sync(0xffffffffu, is_gt);
    const unsigned int meq = __ballot_sync(0xffffffffu, is_eq);
    if (lane == 0) {
      warp_a[warp] = __popc(mgt);
      warp_b[warp] = __popc(meq);
    }
    __syncthreads();
    int gt_before = base_gt + __popc(mgt & lt_mask);
    int eq_before = base_eq + __popc(meq & lt_mask);
    int tot_gt = 0, tot_eq = 0;
    for (int w = 0; w < kWarps; ++w) {
      const int a = warp_a[w], e = warp_b[w];
      if (w < warp) {
        gt_before += a;
        eq_before += e;
      }
      tot_gt += a;
      tot_eq += e;
    }
    const bool take = is_gt || (is_eq && eq_before < krem);
    if (take && want_sel) sel[gt_before + (eq_before < krem ? eq_before : krem)] = t;
    if (mask != nullptr && valid) mask[(b * T + t) * C + c] = take ? scalar_t(1) : scalar_t(0);
    base_gt += tot_gt;
    base_eq += tot_eq;
    __syncthreads();  // sel complete after the last chunk; warp_a/b free for the next chunk
  }
  if (mask != nullptr) {
    for (int64_t t = n + tid; t < T; t += kThreads) mask[(b * T + t) * C + c] = scalar_t(0);
  }
  if (!want_sel) return;

  // 4a. index output in descending order: rank of each selected element among the k
  // (sel is in ascending index order, so j < i breaks ties the right way)
  for (int i = tid; i < k; i += kThreads) {
    const int ti = sel[i];
    const key_t ki = keys[ti];
    int rank = 0;
    for (int j = 0; j < k; ++j) {
      const key_t kj = keys[sel[j]];
      rank += (kj > ki) || (kj == ki && j < i);
    }
    indices[(b * kmax + rank) * C + c] = ti;
  }
  for (int64_t j = k + tid; j < kmax; j += kThreads) indices[(b * kmax + j) * C + c] = -1;

  // 4b. mean of value at the selected steps, summed in double like the CPU kernel
  // (fixed-order reduction: deterministic)
  const scalar_t* vcol = value + b * T * C + c;
  double sum = 0;
  for (int j = tid; j < k; j += kThreads) sum += static_cast<double>(vcol[static_cast<int64_t>(sel[j]) * C]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, o);
  if (lane == 0) s_red[warp] = sum;
  __syncthreads();
  if (tid == 0) {
    double s = 0;
    for (int w = 0; w < kWarps; ++w) s += s_red[w];
    pooled[b * C + c] = static_cast<scalar_t>(s / static_cast<double>(k));
  }
}

template <typename scalar_t>
void launch(const char* op, ptr_t score, ptr_t value, ptr_t kvec, ptr_t lengths, ptr_t pooled,
            ptr_t indices, ptr_t mask, int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype,
            ptr_t ws_keys, ptr_t ws_sel, ptr_t nan_flag, int device, ptr_t stream) {
  using key_t = typename KeyOf<scalar_t>::type;
  const int64_t cols = B * C;
  if (nan_flag == 0) fail(op, "nan_flag is required");
  DeviceGuard device_guard(device, op);
  // the flag is zeroed even when there is nothing to do, so the front always reads a value
  SAL_CUDA_CHECK(cudaMemsetAsync(as_ptr<void>(nan_flag), 0, sizeof(int), as_stream(stream)), op);
  if (cols == 0) return;
  if (T < 1 || T > (int64_t(1) << 30)) fail(op, "T must be in 1..2^30");
  if (kmax < 1 || kmax > T) fail(op, "kmax must be in 1..T");
  if (cols > 0x7FFFFFFFLL) fail(op, "B * C must be < 2^31");
  const bool use_ws = ws_keys != 0;
  if (use_ws && ws_sel == 0) fail(op, "ws_keys given without ws_sel");
  const int64_t smem = use_ws ? 0 : smem_bytes(T, kmax, dtype);
  if (smem > kSmemBudget) fail(op, "column too long for shared memory: pass workspaces");
  SAL_LAUNCH(static_cast<unsigned int>(cols), kThreads, static_cast<size_t>(smem), as_stream(stream),
             topk_kernel<scalar_t>)(
      as_ptr<const scalar_t>(score), as_ptr<const scalar_t>(value),
      as_ptr<const int64_t>(kvec), as_ptr<const int64_t>(lengths), as_ptr<scalar_t>(pooled),
      as_ptr<int64_t>(indices), as_ptr<scalar_t>(mask), T, C, kmax, as_ptr<key_t>(ws_keys),
      as_ptr<int>(ws_sel), as_ptr<int>(nan_flag));
  SAL_CUDA_CHECK_LAUNCH(op);
}

// grad_value (zeroed before) at the selected steps: one thread per (b, j, c).
template <typename scalar_t>
__global__ void topk_backward_kernel(const scalar_t* __restrict__ g,
                                     const int64_t* __restrict__ indices,
                                     const int64_t* __restrict__ kvec, scalar_t* __restrict__ gv,
                                     int64_t B, int64_t T, int64_t C, int64_t kmax) {
  const int64_t n = B * kmax * C;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = indices[i];
    if (t < 0 || t >= T) continue;
    const int64_t b = i / (kmax * C);
    const int64_t c = i % C;
    const scalar_t k = static_cast<scalar_t>(kvec != nullptr ? kvec[b] : kmax);
    gv[(b * T + t) * C + c] = g[b * C + c] / k;
  }
}

}  // namespace

bool topk_needs_workspace_cuda(int64_t T, int64_t kmax, int dtype) {
  return smem_bytes(T, kmax, dtype) > kSmemBudget;
}

void topk_mil_cuda(ptr_t score, ptr_t value, ptr_t kvec, ptr_t lengths, ptr_t pooled,
                   ptr_t indices, int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype,
                   ptr_t ws_keys, ptr_t ws_sel, ptr_t nan_flag, int device, ptr_t stream) {
  // (an empty [B, T, 0] input has null pointers and nothing to do: found by the emulator)
  if (B * C > 0 && (pooled == 0 || indices == 0 || value == 0)) fail("topk_mil", "null output or value pointer");
  SAL_DISPATCH_FLOAT(dtype, "topk_mil", [&] {
    launch<scalar_t>("topk_mil", score, value, kvec, lengths, pooled, indices, 0, B, T, C, kmax,
                     dtype, ws_keys, ws_sel, nan_flag, device, stream);
  });
}

void topk_mask_cuda(ptr_t score, ptr_t kvec, ptr_t lengths, ptr_t mask, int64_t B, int64_t T,
                    int64_t C, int64_t kmax, int dtype, ptr_t ws_keys, ptr_t ws_sel,
                    ptr_t nan_flag, int device, ptr_t stream) {
  SAL_DISPATCH_FLOAT(dtype, "topk_mask", [&] {
    launch<scalar_t>("topk_mask", score, 0, kvec, lengths, 0, 0, mask, B, T, C, kmax, dtype,
                     ws_keys, ws_sel, nan_flag, device, stream);
  });
}

void topk_mil_backward_cuda(ptr_t grad_pooled, ptr_t indices, ptr_t kvec, ptr_t grad_value,
                            int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype, int device,
                            ptr_t stream) {
  if (B * T * C == 0) return;
  DeviceGuard device_guard(device, "topk_mil");
  const int64_t esize = dtype == kFloat64 ? 8 : 4;
  SAL_CUDA_CHECK(cudaMemsetAsync(as_ptr<void>(grad_value), 0, static_cast<size_t>(B * T * C * esize),
                                 as_stream(stream)), "topk_mil");
  const int64_t n = B * kmax * C;
  if (n == 0) return;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>(ceil_div(n, threads), 65535LL * 8));
  SAL_DISPATCH_FLOAT(dtype, "topk_mil", [&] {
    SAL_LAUNCH(blocks, threads, 0, as_stream(stream), topk_backward_kernel<scalar_t>)(
        as_ptr<const scalar_t>(grad_pooled), as_ptr<const int64_t>(indices),
        as_ptr<const int64_t>(kvec), as_ptr<scalar_t>(grad_value), B, T, C, kmax);
  });
  SAL_CUDA_CHECK_LAUNCH("topk_mil");
}

}  // namespace sal
