// segment_mixup: out[b, i] = a * x[b, i] + c * x[(b - shift) mod B, i]   (x viewed as [B, inner])
// (the reference: a = c = 1, shift = 1; backward = same op with shift -> -shift).
// mix_targets: gt_out = 1[g + roll(g) >= 1], mask_out = (m + roll(m)) / 2 in one pass.
#pragma once
#include "common.h"

namespace sal {

void segment_mixup_cpu(ptr_t x, ptr_t out, int64_t B, int64_t inner, int64_t shift, double a,
                       double c, int dtype);
void mix_targets_cpu(ptr_t g, ptr_t m, ptr_t g_out, ptr_t m_out, int64_t B, int64_t inner,
                     int64_t shift, int dtype);

#ifdef SAL_EXT_WITH_CUDA
void segment_mixup_cuda(ptr_t x, ptr_t out, int64_t B, int64_t inner, int64_t shift, double a,
                        double c, int dtype, int device, ptr_t stream);
void mix_targets_cuda(ptr_t g, ptr_t m, ptr_t g_out, ptr_t m_out, int64_t B, int64_t inner,
                      int64_t shift, int dtype, int device, ptr_t stream);
#endif

}  // namespace sal
