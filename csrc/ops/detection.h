// Detection metrics: temporal IoU of [start, end] segments and ActivityNet detection AP.
//
// segment_iou: out[i, j] = tIoU(a[i], b[j]) with inter = max(0, min(e) - max(s)) and
//   union = (len_a + len_b) - inter (no +1, the official ActivityNet arithmetic);
//   union == 0 (two zero-length segments) gives 0, never NaN.
// detection_ap: the ActivityNet detection protocol (eval_detection.py,
//   compute_average_precision_detection) for every (tIoU threshold, class) pair; segments
//   and scores are float64 here (the Python front converts), CPU only (see detection.py).
#pragma once
#include "common.h"

namespace sal {

void segment_iou_cpu(ptr_t a, ptr_t b, ptr_t out, int64_t N, int64_t M, int dtype);

// ap: float64 [n_tiou, num_classes]; NaN for a class without ground truth.
void detection_ap_cpu(ptr_t pred_video, ptr_t pred_label, ptr_t pred_score, ptr_t pred_segments,
                      int64_t P, ptr_t gt_video, ptr_t gt_label, ptr_t gt_segments, int64_t G,
                      ptr_t tiou_thresholds, int64_t n_tiou, int64_t num_classes, ptr_t ap);

#ifdef SAL_EXT_WITH_CUDA
void segment_iou_cuda(ptr_t a, ptr_t b, ptr_t out, int64_t N, int64_t M, int dtype, int device,
                      ptr_t stream);
#endif

// The one tIoU formula every kernel uses (host and device).
template <typename T>
#ifdef __CUDACC__
__host__ __device__
#endif
inline T tiou(T s1, T e1, T s2, T e2) {
  T lo = s1 > s2 ? s1 : s2;
  T hi = e1 < e2 ? e1 : e2;
  T inter = hi - lo;
  if (!(inter > T(0))) inter = T(0);
  T uni = ((e1 - s1) + (e2 - s2)) - inter;
  // uni == 0 only for two zero-length segments, where inter == 0: 0 / 1 = 0 (never NaN);
  // the division always runs on a safe value, so loops over this vectorise.
  return inter / (uni > T(0) ? uni : T(1));
}

}  // namespace sal
