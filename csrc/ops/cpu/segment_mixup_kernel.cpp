#include "ops/segment_mixup.h"

namespace sal {

static inline int64_t rolled_row(int64_t b, int64_t B, int64_t shift) {
  int64_t s = ((b - shift) % B + B) % B;
  return s;
}

void segment_mixup_cpu(ptr_t x_, ptr_t out_, int64_t B, int64_t inner, int64_t shift, double a,
                       double c, int dtype) {
  SAL_DISPATCH_FLOAT(dtype, "segment_mixup", [&] {
    const scalar_t* x = as_ptr<const scalar_t>(x_);
    scalar_t* out = as_ptr<scalar_t>(out_);
    const scalar_t sa = static_cast<scalar_t>(a), sc = static_cast<scalar_t>(c);
    parallel_for(B * inner, 1 << 16, [&](int64_t begin, int64_t end) {
      while (begin < end) {
        int64_t b = begin / inner, i0 = begin % inner;
        int64_t i1 = std::min(inner, i0 + (end - begin));
        const scalar_t* xs = x + b * inner;
        const scalar_t* xr = x + rolled_row(b, B, shift) * inner;
        scalar_t* o = out + b * inner;
        for (int64_t i = i0; i < i1; ++i) o[i] = sa * xs[i] + sc * xr[i];
        begin += i1 - i0;
      }
    });
  });
}

void mix_targets_cpu(ptr_t g_, ptr_t m_, ptr_t g_out_, ptr_t m_out_, int64_t B, int64_t inner,
                     int64_t shift, int dtype) {
  SAL_DISPATCH_FLOAT(dtype, "mix_targets", [&] {
    const scalar_t* g = as_ptr<const scalar_t>(g_);
    const scalar_t* m = as_ptr<const scalar_t>(m_);
    scalar_t* go = as_ptr<scalar_t>(g_out_);
    scalar_t* mo = as_ptr<scalar_t>(m_out_);
    parallel_for(B, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(inner, 1)),
                 [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        int64_t r = rolled_row(b, B, shift);
        for (int64_t i = 0; i < inner; ++i) {
          go[b * inner + i] = (g[b * inner + i] + g[r * inner + i]) >= scalar_t(1) ? 1 : 0;
          mo[b * inner + i] = (m[b * inner + i] + m[r * inner + i]) / scalar_t(2);
        }
      }
    });
  });
}

}  // namespace sal
