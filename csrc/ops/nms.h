// nms_1d: 1-D (temporal) non-maximum suppression, per label group, four methods:
//   hard     greedy by descending score; drop every proposal with IoU > iou_threshold.
//   linear   iterative Soft-NMS: pick the best, score *= (1 - iou) where iou > iou_threshold,
//            re-rank after every decay.
//   gaussian iterative Soft-NMS with score *= exp(-iou^2 / sigma), re-rank after every decay.
//   sal      the SAL reference's one-pass variant: greedy by descending score, every remaining
//            proposal with IoU >= iou_threshold leaves the queue, its score decays once by
//            exp(-iou^2 / sigma) and it is appended after all kept ones.
// All arithmetic is in double whatever the input dtype. Ties: lower input index first
// (sal: higher input index first, as the reference's argsort()[::-1]).
// See sal_ext/ops/nms.py for the full contract.
#pragma once
#include "common.h"

namespace sal {

enum NmsMethod : int { kNmsHard = 0, kNmsLinear = 1, kNmsGaussian = 2, kNmsSal = 3 };

// CPU: sorts internally (label, then score, then index), runs every label group independently
// (in parallel), applies min_score and max_keep (per group; max_keep < 0: no limit) and writes
// the outputs compacted, groups in ascending label order: out_idx int64 [N], out_scores
// (input dtype) [N]. Returns the number of outputs M. labels: int64 [N] or 0 (one group).
// windowed: prune IoU scans with a per-group start index (and a lazy heap for the iterative
// Soft-NMS): 0 never (plain O(n^2) scans), 1 for groups above 1024 proposals, 2 always.
// All give identical results.
int64_t nms_1d_cpu(ptr_t segments, ptr_t scores, ptr_t labels, int64_t N, int method,
                   double iou_threshold, double sigma, double min_score, int64_t max_keep,
                   bool plus_one, int windowed, ptr_t out_idx, ptr_t out_scores, int dtype);

#ifdef SAL_EXT_WITH_CUDA
// CUDA: inputs already sorted by the caller (label asc, score desc, ties as above) and grouped:
// group g is positions [offsets[g], offsets[g+1]) (offsets int64 [G+1] on the device, host copy
// of the largest group size in max_group). sorted_idx int64 [N] maps positions to input
// indices. Group g writes its outputs, in output order, to out_idx / out_scores at positions
// [offsets[g], offsets[g] + counts[g]) (counts int64 [G]); the caller compacts and applies
// min_score / max_keep (the kernel only uses them to stop early).
// Workspace (caller-allocated, N elements each): ws_pos int64, ws_score double, ws_state int32;
// for sal ws_score has 2N doubles: [N + offsets[g], ...) receives group g's output scores in
// double (the caller filters min_score on them, as the CPU kernel does, not on the rounded ones).
// hard: when mask != 0 it is a uint64 workspace of mask_words = sum_g n_g * ceil(n_g / 64) words
// and mask_offsets int64 [G+1] its per-group prefix sums; tile_offsets int64 [G+1] the prefix
// sums of ceil(n_g / 64)^2 (the IoU tiles); total_tiles its last value. mask == 0: the one
// block per group kernel is used for hard too.
void nms_1d_cuda(ptr_t sorted_segments, ptr_t sorted_scores, ptr_t sorted_idx, ptr_t offsets,
                 int64_t G, int64_t N, int64_t max_group, int method, double iou_threshold,
                 double sigma, double min_score, int64_t max_keep, bool plus_one, ptr_t out_idx,
                 ptr_t out_scores, ptr_t counts, ptr_t ws_pos, ptr_t ws_score, ptr_t ws_state,
                 ptr_t mask, ptr_t mask_offsets, ptr_t tile_offsets, int64_t total_tiles,
                 int dtype, int device, ptr_t stream);
#endif

}  // namespace sal
