#include "cuda_common.h"
#include "ops/segment_mixup.h"

namespace sal {
namespace {

__device__ inline int64_t rolled_row(int64_t b, int64_t B, int64_t shift) {
  return ((b - shift) % B + B) % B;
}

template <typename scalar_t>
__global__ void mixup_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, int64_t B,
                             int64_t inner, int64_t shift, scalar_t a, scalar_t c) {
  const int64_t n = B * inner;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n;
       idx += (int64_t)gridDim.x * blockDim.x) {
    int64_t b = idx / inner, i = idx - b * inner;
    out[idx] = a * x[idx] + c * x[rolled_row(b, B, shift) * inner + i];
  }
}

template <typename scalar_t>
__global__ void mix_targets_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ m,
                                   scalar_t* __restrict__ go, scalar_t* __restrict__ mo, int64_t B,
                                   int64_t inner, int64_t shift) {
  const int64_t n = B * inner;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n;
       idx += (int64_t)gridDim.x * blockDim.x) {
    int64_t b = idx / inner, i = idx - b * inner;
    int64_t r = rolled_row(b, B, shift) * inner + i;
    go[idx] = (g[idx] + g[r]) >= scalar_t(1) ? scalar_t(1) : scalar_t(0);
    mo[idx] = (m[idx] + m[r]) / scalar_t(2);
  }
}

int grid_for(int64_t n, int threads) {
  return (int)std::min<int64_t>(std::max<int64_t>(ceil_div(n, threads), 1), 65535LL * 8);
}

}  // namespace

void segment_mixup_cuda(ptr_t x, ptr_t out, int64_t B, int64_t inner, int64_t shift, double a,
                        double c, int dtype, int device, ptr_t stream) {
  if (B * inner == 0) return;
  set_device(device, "segment_mixup");
  const int threads = 256;
  SAL_DISPATCH_FLOAT(dtype, "segment_mixup", [&] {
    mixup_kernel<scalar_t><<<grid_for(B * inner, threads), threads, 0, as_stream(stream)>>>(
        as_ptr<const scalar_t>(x), as_ptr<scalar_t>(out), B, inner, shift, (scalar_t)a,
        (scalar_t)c);
  });
  SAL_CUDA_CHECK_LAUNCH("segment_mixup");
}

void mix_targets_cuda(ptr_t g, ptr_t m, ptr_t g_out, ptr_t m_out, int64_t B, int64_t inner,
                      int64_t shift, int dtype, int device, ptr_t stream) {
  if (B * inner == 0) return;
  set_device(device, "mix_targets");
  const int threads = 256;
  SAL_DISPATCH_FLOAT(dtype, "mix_targets", [&] {
    mix_targets_kernel<scalar_t><<<grid_for(B * inner, threads), threads, 0, as_stream(stream)>>>(
        as_ptr<const scalar_t>(g), as_ptr<const scalar_t>(m), as_ptr<scalar_t>(g_out),
        as_ptr<scalar_t>(m_out), B, inner, shift);
  });
  SAL_CUDA_CHECK_LAUNCH("mix_targets");
}

}  // namespace sal
