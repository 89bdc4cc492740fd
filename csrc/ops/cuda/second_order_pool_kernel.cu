// CUDA kernels of second_order_pool (see ops/second_order_pool.h for the contract).
//
// Forward: one CTA per upper-triangular 64 x 64 tile of the Gram matrix per video
// (grid = tiles x B, both looped so any size fits the grid limits); the two 64-row T-panels
// are staged in shared memory 16 steps at a time (masked to the video's length, mean-centred
// when asked), each thread accumulates 4 x 4 outputs in registers; the epilogue applies the
// scale and the signed square root, writes the tile and (through shared memory, coalesced) its
// mirror, and adds its sum of squares to a per-video float64 accumulator with one atomic.
// A light kernel then writes the norms and divides each row by its clamped norm.
// Backward: <y, dy> per video (atomic partial sums), the symmetric D x D matrix
// Gs = s * (G + G^T) (G = dL/dg, 32 x 32 shared-memory transposes), then dX = Gs Xc with a
// 64 x 64 tiled GEMM (Gs symmetric, so its panels are read coalesced), and for center=True a
// row pass that subtracts each row's mean (the gradient through the mean subtraction).
#include "cuda_common.h"
#include "ops/second_order_pool.h"

namespace sal {
namespace {

constexpr int kTile = 64;      // output tile (rows x cols)
constexpr int kKT = 16;        // reduction steps staged per shared-memory round
constexpr int kPad = 4;        // keeps 16-byte alignment of the staged rows
constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
constexpr int kLd = kTile + kPad;

__device__ __forceinline__ float dev_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double dev_sqrt(double v) { return sqrt(v); }

template <typename S>
__device__ __forceinline__ S dev_abs(S v) {
  return v < S(0) ? -v : v;
}

// sign(g) * sqrt(|g| + eps), sign(0) = 0, NaN stays NaN (the CPU kernel's form).
template <typename S>
__device__ __forceinline__ S signed_sqrt(S g, S eps) {
  const S h = dev_sqrt(dev_abs(g) + eps);
  const S sh = g < S(0) ? -h : h;
  return g == S(0) ? S(0) : sh;
}

template <typename S>
__device__ __forceinline__ S scale_of(int mode, int64_t len) {
  const S n = static_cast<S>(len);
  return mode == 0 ? S(1) / (n * n) : S(1) / n;
}

// Four consecutive shared-memory values (16-byte aligned) as one or two vector loads.
__device__ __forceinline__ void load4(const float* p, float (&v)[4]) {
  const float4 q = *reinterpret_cast<const float4*>(p);
  v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
}
__device__ __forceinline__ void load4(const double* p, double (&v)[4]) {
  const double2 q0 = *reinterpret_cast<const double2*>(p);
  const double2 q1 = *reinterpret_cast<const double2*>(p + 2);
  v[0] = q0.x; v[1] = q0.y; v[2] = q1.x; v[3] = q1.y;
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Sum of v over the block (kThreads threads); the result is valid in thread 0.
__device__ __forceinline__ double block_sum(double v, double* red) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  double total = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) total += red[w];
  __syncthreads();
  return total;
}

// mean[b * D + i] = mean of x[b, i, :len_b]; one warp per row.
template <typename S>
__global__ void row_mean_kernel(const S* __restrict__ x, const int64_t* __restrict__ lengths,
                                S* __restrict__ mean, int64_t B, int64_t D, int64_t T) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = blockDim.x / 32;
  for (int64_t row = blockIdx.x * warps + threadIdx.x / 32; row < B * D;
       row += (int64_t)gridDim.x * warps) {
    const int64_t len = lengths ? lengths[row / D] : T;
    const S* xr = x + row * T;
    double acc = 0;
    for (int64_t t = lane; t < len; t += 32) acc += (double)xr[t];
    acc = warp_sum(acc);
    if (lane == 0) mean[row] = static_cast<S>(acc / (double)len);
  }
}

// Subtracts each row's mean over its first len steps from dx (the mean-subtraction gradient).
template <typename S>
__global__ void row_center_kernel(S* __restrict__ dx, const int64_t* __restrict__ lengths,
                                  int64_t B, int64_t D, int64_t T) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = blockDim.x / 32;
  for (int64_t row = blockIdx.x * warps + threadIdx.x / 32; row < B * D;
       row += (int64_t)gridDim.x * warps) {
    const int64_t len = lengths ? lengths[row / D] : T;
    S* r = dx + row * T;
    double acc = 0;
    for (int64_t t = lane; t < len; t += 32) acc += (double)r[t];
    acc = warp_sum(acc);
    const S m = static_cast<S>(__shfl_sync(0xffffffffu, acc, 0) / (double)len);
    for (int64_t t = lane; t < len; t += 32) r[t] -= m;
  }
}

template <typename S>
__global__ void __launch_bounds__(kThreads)
    gram_kernel(const S* __restrict__ x, const int64_t* __restrict__ lengths,
                const S* __restrict__ mean, S* __restrict__ y, double* __restrict__ acc,
                int64_t B, int64_t D, int64_t T, int64_t nT, int64_t ntiles, int mode, S eps) {
  constexpr int kStage = 2 * kKT * kLd;
  constexpr int kMirror = kTile * (kTile + 1);
  __shared__ __align__(16) S smem[kStage > kMirror ? kStage : kMirror];
  __shared__ double red[kThreads / 32];
  S* As = smem;              // [kKT][kLd]: rows of tile I, transposed
  S* Bs = smem + kKT * kLd;  // [kKT][kLd]: rows of tile J, transposed
  S* Cs = smem;              // [kTile][kTile + 1]: the finished tile, for the mirror write
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int64_t len = lengths ? lengths[b] : T;
    const S* xb = x + b * D * T;
    const S* mb = mean ? mean + b * D : nullptr;
    S* yb = y + b * D * D;
    for (int64_t p = blockIdx.x; p < ntiles; p += gridDim.x) {
      int64_t I = 0, rem = p;
      while (rem >= nT - I) {
        rem -= nT - I;
        ++I;
      }
      const int64_t J = I + rem;
      const int64_t i0 = I * kTile, j0 = J * kTile;
      S c[4][4];
#pragma unroll
      for (int m = 0; m < 4; ++m)
#pragma unroll
        for (int n = 0; n < 4; ++n) c[m][n] = S(0);

      for (int64_t t0 = 0; t0 < len; t0 += kKT) {
        for (int e = threadIdx.x; e < kTile * kKT; e += kThreads) {
          const int r = e / kKT, k = e % kKT;
          const int64_t t = t0 + k;
          const int64_t ri = i0 + r, rj = j0 + r;
          S vi = S(0), vj = S(0);
          if (t < len) {
            if (ri < D) vi = xb[ri * T + t] - (mb ? mb[ri] : S(0));
            if (rj < D) vj = xb[rj * T + t] - (mb ? mb[rj] : S(0));
          }
          As[k * kLd + r] = vi;
          Bs[k * kLd + r] = vj;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kKT; ++k) {
          S a[4], bv[4];
          load4(As + k * kLd + ty * 4, a);
          load4(Bs + k * kLd + tx * 4, bv);
#pragma unroll
          for (int m = 0; m < 4; ++m)
#pragma unroll
            for (int n = 0; n < 4; ++n) c[m][n] += a[m] * bv[n];
        }
        __syncthreads();
      }

      // epilogue: scale, signed sqrt, tile (+ mirror), sum of squares
      const S s = scale_of<S>(mode, len);
      const bool diag = I == J;
      double ss = 0;
#pragma unroll
      for (int m = 0; m < 4; ++m) {
#pragma unroll
        for (int n = 0; n < 4; ++n) {
          const int li = ty * 4 + m, lj = tx * 4 + n;
          const int64_t i = i0 + li, j = j0 + lj;
          S h = S(0);
          if (i < D && j < D) {
            h = signed_sqrt(c[m][n] * s, eps);
            yb[i * D + j] = h;
            ss += (diag ? 1.0 : 2.0) * (double)h * (double)h;
          }
          if (!diag) Cs[li * (kTile + 1) + lj] = h;
        }
      }
      if (!diag) {  // block-uniform branch
        __syncthreads();
        for (int e = threadIdx.x; e < kTile * kTile; e += kThreads) {
          const int lj = e / kTile, li = e % kTile;
          const int64_t i = i0 + li, j = j0 + lj;
          if (i < D && j < D) yb[j * D + i] = Cs[li * (kTile + 1) + lj];
        }
      }
      const double total = block_sum(ss, red);  // also separates Cs from the next staging
      if (threadIdx.x == 0) atomicAdd(acc + b, total);
    }
  }
}

// norm[b] = sqrt(acc[b]); if normalize, y[b, :] /= max(norm[b], 1e-12).
template <typename S>
__global__ void finalize_kernel(S* __restrict__ y, S* __restrict__ norm,
                                const double* __restrict__ acc, int64_t B, int64_t DD,
                                bool normalize) {
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const S nb = static_cast<S>(sqrt(acc[b]));
    if (blockIdx.x == 0 && threadIdx.x == 0) norm[b] = nb;
    if (!normalize) continue;
    const S den = nb < S(1e-12) ? S(1e-12) : nb;  // std::max(nb, 1e-12): a NaN norm stays NaN
    S* yb = y + b * DD;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < DD;
         i += (int64_t)gridDim.x * blockDim.x)
      yb[i] = yb[i] / den;
  }
}

// acc[b] += sum_i y[b, i] * dy[b, i]
template <typename S>
__global__ void __launch_bounds__(kThreads)
    dot_kernel(const S* __restrict__ y, const S* __restrict__ dy, double* __restrict__ acc,
               int64_t B, int64_t DD) {
  __shared__ double red[kThreads / 32];
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    double v = 0;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < DD;
         i += (int64_t)gridDim.x * blockDim.x)
      v += (double)y[b * DD + i] * (double)dy[b * DD + i];
    const double total = block_sum(v, red);
    if (threadIdx.x == 0) atomicAdd(acc + b, total);
  }
}

// sym[b, i, k] = coef_b * (q(i, k) + q(k, i)), q = (dy - y * proj_b) / |y| (0 where y == 0):
// s * (G + G^T) with G = dL/dg (see second_order_pool_backward_cpu for the derivation).
template <typename S>
__global__ void sym_kernel(const S* __restrict__ y, const S* __restrict__ dy,
                           const S* __restrict__ norm, const double* __restrict__ dot,
                           const int64_t* __restrict__ lengths, S* __restrict__ sym, int64_t B,
                           int64_t D, int64_t T, int mode, bool normalize) {
  __shared__ S tr[32][33];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;  // 32 x 8 threads
  const int64_t nb = (D + 31) / 32;
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z) {
    const int64_t len = lengths ? lengths[b] : T;
    const S n = norm[b];
    const S den = normalize ? (n < S(1e-12) ? S(1e-12) : n) : S(1);  // std::max, as on CPU
    const S proj = (normalize && n >= S(1e-12)) ? static_cast<S>(dot[b]) : S(0);
    const S coef = scale_of<S>(mode, len) * S(0.5) / (den * den);
    const S* yb = y + b * D * D;
    const S* db = dy + b * D * D;
    S* ob = sym + b * D * D;
    for (int64_t bi = blockIdx.y; bi < nb; bi += gridDim.y) {
      for (int64_t bk = blockIdx.x; bk < nb; bk += gridDim.x) {
        const int64_t i0 = bi * 32, k0 = bk * 32;
        for (int r = ty; r < 32; r += 8) {  // q(k, i) for k in this k-block, i in this i-block
          const int64_t k = k0 + r, i = i0 + tx;
          S v = S(0);
          if (k < D && i < D) {
            const S yv = yb[k * D + i];
            v = yv != S(0) ? (db[k * D + i] - yv * proj) / dev_abs(yv) : S(0);
          }
          tr[r][tx] = v;
        }
        __syncthreads();
        for (int r = ty; r < 32; r += 8) {
          const int64_t i = i0 + r, k = k0 + tx;
          if (i < D && k < D) {
            const S yv = yb[i * D + k];
            const S v = yv != S(0) ? (db[i * D + k] - yv * proj) / dev_abs(yv) : S(0);
            ob[i * D + k] = coef * (v + tr[tx][r]);
          }
        }
        __syncthreads();
      }
    }
  }
}

// dx[b, i, t] = sum_k sym[b, i, k] * xc[b, k, t] for t < len_b, 0 for t >= len_b.
template <typename S>
__global__ void __launch_bounds__(kThreads)
    sym_x_kernel(const S* __restrict__ sym, const S* __restrict__ x,
                 const int64_t* __restrict__ lengths, const S* __restrict__ mean,
                 S* __restrict__ dx, int64_t B, int64_t D, int64_t T) {
  __shared__ __align__(16) S As[kKT * kLd];  // As[k][i] = sym[k0 + k, i0 + i] (= sym[i, k])
  __shared__ __align__(16) S Bs[kKT * kLd];  // Bs[k][t] = xc[k0 + k, t0 + t]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t ntb = (T + kTile - 1) / kTile, nib = (D + kTile - 1) / kTile;
  for (int64_t b = blockIdx.z; b < B; b += gridDim.z) {
    const int64_t len = lengths ? lengths[b] : T;
    const S* sb = sym + b * D * D;
    const S* xb = x + b * D * T;
    const S* mb = mean ? mean + b * D : nullptr;
    S* db = dx + b * D * T;
    for (int64_t bi = blockIdx.y; bi < nib; bi += gridDim.y) {
      for (int64_t bt = blockIdx.x; bt < ntb; bt += gridDim.x) {
        const int64_t i0 = bi * kTile, t0 = bt * kTile;
        S c[4][4];
#pragma unroll
        for (int m = 0; m < 4; ++m)
#pragma unroll
          for (int n = 0; n < 4; ++n) c[m][n] = S(0);
        if (t0 < len) {  // block-uniform
          for (int64_t k0 = 0; k0 < D; k0 += kKT) {
            for (int e = threadIdx.x; e < kTile * kKT; e += kThreads) {
              const int k = e / kTile, r = e % kTile;
              const int64_t kk = k0 + k, i = i0 + r, t = t0 + r;
              As[k * kLd + r] = (kk < D && i < D) ? sb[kk * D + i] : S(0);
              Bs[k * kLd + r] =
                  (kk < D && t < len) ? xb[kk * T + t] - (mb ? mb[kk] : S(0)) : S(0);
            }
            __syncthreads();
#pragma unroll
            for (int k = 0; k < kKT; ++k) {
              S a[4], bv[4];
              load4(As + k * kLd + ty * 4, a);
              load4(Bs + k * kLd + tx * 4, bv);
#pragma unroll
              for (int m = 0; m < 4; ++m)
#pragma unroll
                for (int n = 0; n < 4; ++n) c[m][n] += a[m] * bv[n];
            }
            __syncthreads();
          }
        }
#pragma unroll
        for (int m = 0; m < 4; ++m) {
          const int64_t i = i0 + ty * 4 + m;
          if (i >= D) continue;
#pragma unroll
          for (int n = 0; n < 4; ++n) {
            const int64_t t = t0 + tx * 4 + n;
            if (t < T) db[i * T + t] = t < len ? c[m][n] : S(0);
          }
        }
      }
    }
  }
}

inline unsigned grid_dim(int64_t n, int64_t cap) {
  return (unsigned)std::min<int64_t>(std::max<int64_t>(n, 1), cap);
}

int rows_grid(int64_t rows, int warps_per_block) {
  return (int)std::min<int64_t>(std::max<int64_t>(ceil_div(rows, warps_per_block), 1), 65535LL * 8);
}

}  // namespace

void second_order_pool_forward_cuda(ptr_t x, ptr_t lengths, ptr_t y, ptr_t norm, ptr_t mean,
                                    ptr_t acc, int64_t B, int64_t D, int64_t T, int scale_mode,
                                    bool center, double eps, bool normalize, int dtype,
                                    int device, ptr_t stream) {
  if (B <= 0 || D <= 0 || T <= 0) return;
  const char* op = "second_order_pool";
  DeviceGuard device_guard(device, op);
  cudaStream_t st = as_stream(stream);
  SAL_CUDA_CHECK(cudaMemsetAsync(as_ptr<double>(acc), 0, sizeof(double) * B, st), op);
  const int64_t* lens = as_ptr<const int64_t>(lengths);
  SAL_DISPATCH_FLOAT(dtype, op, [&] {
    const scalar_t* xp = as_ptr<const scalar_t>(x);
    scalar_t* mp = nullptr;
    if (center) {
      mp = as_ptr<scalar_t>(mean);
      SAL_LAUNCH(rows_grid(B * D, 8), 256, 0, st, row_mean_kernel<scalar_t>)(xp, lens, mp, B, D, T);
      SAL_CUDA_CHECK_LAUNCH(op);
    }
    const int64_t nT = ceil_div(D, kTile), ntiles = nT * (nT + 1) / 2;
    dim3 grid(grid_dim(ntiles, 1LL << 30), grid_dim(B, 65535));
    SAL_LAUNCH(grid, kThreads, 0, st, gram_kernel<scalar_t>)(xp, lens, mp, as_ptr<scalar_t>(y),
                                                     as_ptr<double>(acc), B, D, T, nT, ntiles,
                                                     scale_mode, static_cast<scalar_t>(eps));
    SAL_CUDA_CHECK_LAUNCH(op);
    dim3 fgrid(grid_dim(ceil_div(D * D, 256 * 8), 1024), grid_dim(B, 65535));
    SAL_LAUNCH(fgrid, 256, 0, st, finalize_kernel<scalar_t>)(as_ptr<scalar_t>(y), as_ptr<scalar_t>(norm),
                                                     as_ptr<const double>(acc), B, D * D,
                                                     normalize);
    SAL_CUDA_CHECK_LAUNCH(op);
  });
}

void second_order_pool_backward_cuda(ptr_t x, ptr_t lengths, ptr_t y, ptr_t norm, ptr_t dy,
                                     ptr_t dx, ptr_t mean, ptr_t acc, ptr_t sym, int64_t B,
                                     int64_t D, int64_t T, int scale_mode, bool center,
                                     bool normalize, int dtype, int device, ptr_t stream) {
  if (B <= 0 || D <= 0 || T <= 0) return;
  const char* op = "second_order_pool";
  DeviceGuard device_guard(device, op);
  cudaStream_t st = as_stream(stream);
  SAL_CUDA_CHECK(cudaMemsetAsync(as_ptr<double>(acc), 0, sizeof(double) * B, st), op);
  const int64_t* lens = as_ptr<const int64_t>(lengths);
  SAL_DISPATCH_FLOAT(dtype, op, [&] {
    const scalar_t* xp = as_ptr<const scalar_t>(x);
    const scalar_t* yp = as_ptr<const scalar_t>(y);
    const scalar_t* dyp = as_ptr<const scalar_t>(dy);
    scalar_t* sp = as_ptr<scalar_t>(sym);
    scalar_t* dxp = as_ptr<scalar_t>(dx);
    if (normalize) {
      dim3 g(grid_dim(ceil_div(D * D, kThreads * 8), 256), grid_dim(B, 65535));
      SAL_LAUNCH(g, kThreads, 0, st, dot_kernel<scalar_t>)(yp, dyp, as_ptr<double>(acc), B, D * D);
      SAL_CUDA_CHECK_LAUNCH(op);
    }
    scalar_t* mp = nullptr;
    if (center) {
      mp = as_ptr<scalar_t>(mean);
      SAL_LAUNCH(rows_grid(B * D, 8), 256, 0, st, row_mean_kernel<scalar_t>)(xp, lens, mp, B, D, T);
      SAL_CUDA_CHECK_LAUNCH(op);
    }
    const int64_t nb = ceil_div(D, 32);
    dim3 sg(grid_dim(nb, 1LL << 30), grid_dim(nb, 65535), grid_dim(B, 65535));
    SAL_LAUNCH(sg, 256, 0, st, sym_kernel<scalar_t>)(yp, dyp, as_ptr<const scalar_t>(norm),
                                             as_ptr<const double>(acc), lens, sp, B, D, T,
                                             scale_mode, normalize);
    SAL_CUDA_CHECK_LAUNCH(op);
    dim3 mg(grid_dim(ceil_div(T, kTile), 1LL << 30), grid_dim(ceil_div(D, kTile), 65535),
            grid_dim(B, 65535));
    SAL_LAUNCH(mg, kThreads, 0, st, sym_x_kernel<scalar_t>)(sp, xp, lens, mp, dxp, B, D, T);
    SAL_CUDA_CHECK_LAUNCH(op);
    if (center) {
      SAL_LAUNCH(rows_grid(B * D, 8), 256, 0, st, row_center_kernel<scalar_t>)(dxp, lens, B, D, T);
      SAL_CUDA_CHECK_LAUNCH(op);
    }
  });
}

}  // namespace sal
