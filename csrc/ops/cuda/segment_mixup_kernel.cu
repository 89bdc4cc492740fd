// segment_mixup / mix_targets on CUDA: elementwise over x viewed as [B, inner] with the rolled
// row of the same offset. A 2-D grid (y: rows, grid-stride; x: columns of the row, grid-stride)
// avoids a 64-bit division per element; rows are read and written as 16-byte vectors (float4 /
// double2) when `inner` is a multiple of the vector width and every pointer is 16-byte aligned,
// otherwise element by element. Same results as the scalar formula (same operations per element).
#include "cuda_common.h"
#include "ops/segment_mixup.h"

namespace sal {
namespace {

__device__ inline int64_t rolled_row(int64_t b, int64_t B, int64_t shift) {
  return ((b - shift) % B + B) % B;
}

// A vector of W scalars moved as one 16-byte access (W = 1: plain scalar).
template <typename scalar_t, int W> struct Vec;
template <typename scalar_t> struct Vec<scalar_t, 1> {
  using type = scalar_t;
  template <typename F> __device__ static type map(type u, type w, F f) { return f(u, w); }
};
template <> struct Vec<float, 4> {
  using type = float4;
  template <typename F> __device__ static type map(type u, type w, F f) {
    return make_float4(f(u.x, w.x), f(u.y, w.y), f(u.z, w.z), f(u.w, w.w));
  }
};
template <> struct Vec<double, 2> {
  using type = double2;
  template <typename F> __device__ static type map(type u, type w, F f) {
    return make_double2(f(u.x, w.x), f(u.y, w.y));
  }
};

template <typename scalar_t, int W>
__global__ void mixup_kernel(const typename Vec<scalar_t, W>::type* __restrict__ x,
                             typename Vec<scalar_t, W>::type* __restrict__ out, int64_t B,
                             int64_t inner_v, int64_t shift, scalar_t a, scalar_t c) {
  using V = Vec<scalar_t, W>;
  const auto f = [a, c](scalar_t u, scalar_t w) { return a * u + c * w; };
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const typename V::type* xs = x + b * inner_v;
    const typename V::type* xr = x + rolled_row(b, B, shift) * inner_v;
    typename V::type* o = out + b * inner_v;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < inner_v;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      o[i] = V::map(xs[i], xr[i], f);
    }
  }
}

template <typename scalar_t, int W>
__global__ void mix_targets_kernel(const typename Vec<scalar_t, W>::type* __restrict__ g,
                                   const typename Vec<scalar_t, W>::type* __restrict__ m,
                                   typename Vec<scalar_t, W>::type* __restrict__ go,
                                   typename Vec<scalar_t, W>::type* __restrict__ mo, int64_t B,
                                   int64_t inner_v, int64_t shift) {
  using V = Vec<scalar_t, W>;
  const auto fg = [](scalar_t u, scalar_t w) {
    return (u + w) >= scalar_t(1) ? scalar_t(1) : scalar_t(0);
  };
  const auto fm = [](scalar_t u, scalar_t w) { return (u + w) / scalar_t(2); };
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int64_t s = b * inner_v, r = rolled_row(b, B, shift) * inner_v;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < inner_v;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      go[s + i] = V::map(g[s + i], g[r + i], fg);
      mo[s + i] = V::map(m[s + i], m[r + i], fm);
    }
  }
}

constexpr int kThreads = 256;

// Grid for B rows of inner_v vectors: y over rows (<= 65535, grid-stride beyond), x over a
// row's vectors, the total capped near 65535 * 8 blocks (grid-stride loops cover the rest).
dim3 grid_for(int64_t B, int64_t inner_v) {
  const int64_t gy = std::min<int64_t>(std::max<int64_t>(B, 1), 65535);
  const int64_t want_x = std::max<int64_t>(ceil_div(inner_v, kThreads), 1);
  const int64_t gx = std::min<int64_t>(want_x, std::max<int64_t>((65535LL * 8) / gy, 1));
  return dim3(static_cast<unsigned int>(gx), static_cast<unsigned int>(gy), 1);
}

inline bool aligned16(ptr_t p) { return (p & 15u) == 0; }

// Vector width usable for these pointers and row length (16 bytes per access), else 1.
template <typename scalar_t>
constexpr int kVecWidth = 16 / static_cast<int>(sizeof(scalar_t));

template <typename scalar_t>
bool can_vectorise(int64_t inner, std::initializer_list<ptr_t> ptrs) {
  if (inner % kVecWidth<scalar_t> != 0) return false;
  for (ptr_t p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

}  // namespace

void segment_mixup_cuda(ptr_t x, ptr_t out, int64_t B, int64_t inner, int64_t shift, double a,
                        double c, int dtype, int device, ptr_t stream) {
  if (B * inner == 0) return;
  DeviceGuard device_guard(device, "segment_mixup");
  SAL_DISPATCH_FLOAT(dtype, "segment_mixup", [&] {
    constexpr int W = kVecWidth<scalar_t>;
    using VW = typename Vec<scalar_t, W>::type;
    if (can_vectorise<scalar_t>(inner, {x, out})) {
      const int64_t inner_v = inner / W;
      SAL_LAUNCH(grid_for(B, inner_v), kThreads, 0, as_stream(stream), mixup_kernel<scalar_t, W>)(
          as_ptr<const VW>(x), as_ptr<VW>(out), B, inner_v, shift, (scalar_t)a, (scalar_t)c);
    } else {
      SAL_LAUNCH(grid_for(B, inner), kThreads, 0, as_stream(stream), mixup_kernel<scalar_t, 1>)(
          as_ptr<const scalar_t>(x), as_ptr<scalar_t>(out), B, inner, shift, (scalar_t)a,
          (scalar_t)c);
    }
  });
  SAL_CUDA_CHECK_LAUNCH("segment_mixup");
}

void mix_targets_cuda(ptr_t g, ptr_t m, ptr_t g_out, ptr_t m_out, int64_t B, int64_t inner,
                      int64_t shift, int dtype, int device, ptr_t stream) {
  if (B * inner == 0) return;
  DeviceGuard device_guard(device, "mix_targets");
  SAL_DISPATCH_FLOAT(dtype, "mix_targets", [&] {
    constexpr int W = kVecWidth<scalar_t>;
    using VW = typename Vec<scalar_t, W>::type;
    if (can_vectorise<scalar_t>(inner, {g, m, g_out, m_out})) {
      const int64_t inner_v = inner / W;
      SAL_LAUNCH(grid_for(B, inner_v), kThreads, 0, as_stream(stream), mix_targets_kernel<scalar_t, W>)(
          as_ptr<const VW>(g), as_ptr<const VW>(m), as_ptr<VW>(g_out), as_ptr<VW>(m_out), B,
          inner_v, shift);
    } else {
      SAL_LAUNCH(grid_for(B, inner), kThreads, 0, as_stream(stream), mix_targets_kernel<scalar_t, 1>)(
          as_ptr<const scalar_t>(g), as_ptr<const scalar_t>(m), as_ptr<scalar_t>(g_out),
          as_ptr<scalar_t>(m_out), B, inner, shift);
    }
  });
  SAL_CUDA_CHECK_LAUNCH("mix_targets");
}

}  // namespace sal
