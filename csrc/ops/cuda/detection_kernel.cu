#include "cuda_common.h"
#include "ops/detection.h"

namespace sal {
namespace {

// One thread per output element (grid-stride); the same tiou() as the CPU kernel.
template <typename scalar_t>
__global__ void segment_iou_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                                   scalar_t* __restrict__ out, int64_t N, int64_t M) {
  const int64_t n = N * M;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = idx / M, j = idx - i * M;
    out[idx] = tiou<scalar_t>(a[2 * i], a[2 * i + 1], b[2 * j], b[2 * j + 1]);
  }
}

}  // namespace

void segment_iou_cuda(ptr_t a, ptr_t b, ptr_t out, int64_t N, int64_t M, int dtype, int device,
                      ptr_t stream) {
  if (N == 0 || M == 0) return;
  DeviceGuard device_guard(device, "segment_iou");
  const int threads = 256;
  const int blocks = (int)std::min<int64_t>(ceil_div(N * M, threads), 65535LL * 8);
  SAL_DISPATCH_FLOAT(dtype, "segment_iou", [&] {
    SAL_LAUNCH(blocks, threads, 0, as_stream(stream), segment_iou_kernel<scalar_t>)(
        as_ptr<const scalar_t>(a), as_ptr<const scalar_t>(b), as_ptr<scalar_t>(out), N, M);
  });
  SAL_CUDA_CHECK_LAUNCH("segment_iou");
}

}  // namespace sal
