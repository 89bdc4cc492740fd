// oic_proposals: SAL's proposal generator (outer-inner-contrast scores) for many columns at once.
//
// values [N, T, C] (float32/float64) holds one score column per (video n, class c). For each
// selected column p (pair_video[p], pair_class[p]) the column is upsampled to L positions
// (x_i = i * (1/upsample), linear interpolation/extrapolation exactly as scipy's interp1d
// computes it), and for each threshold every maximal run of positions with v >= thr and v > 0
// becomes a proposal [s, e] with score
//   inner - outer + gamma * video_scores[n, c]
// (inner = mean of v[s..e]; outer = mean over [os, s) u (e, oe], os = max(0, int(s - r*len)),
//  oe = min(L-1, int(e + r*len)); 0 when empty). If skip_first_only, a threshold whose only
// run is [0, 0] gives no proposal (the reference tests `positions.any()`).
//
// Two passes: oic_count fills counts[P, n_thr]; the caller lays out the output with
// offsets[P, n_thr] (any order) and oic_fill writes run k of (p, t) at offsets[p, t] + k
// (runs in ascending position). Thresholds arrive sorted ascending (thr_sorted[n_thr],
// float64) with thr_index[r] = the caller's index of sorted threshold r.
#pragma once
#include "common.h"

namespace sal {

void oic_count_cpu(ptr_t values, int64_t N, int64_t T, int64_t C, ptr_t pair_video,
                   ptr_t pair_class, int64_t P, ptr_t thr_sorted, ptr_t thr_index, int64_t n_thr,
                   int64_t upsample, int64_t L, bool skip_first_only, ptr_t counts, int dtype);

void oic_fill_cpu(ptr_t values, int64_t N, int64_t T, int64_t C, ptr_t pair_video,
                  ptr_t pair_class, int64_t P, ptr_t thr_sorted, ptr_t thr_index, int64_t n_thr,
                  int64_t upsample, int64_t L, bool skip_first_only, ptr_t offsets,
                  ptr_t video_scores, double outer_ratio, double gamma, ptr_t out_score,
                  ptr_t out_start, ptr_t out_end, ptr_t out_pair, ptr_t out_thr, int dtype);

}  // namespace sal
