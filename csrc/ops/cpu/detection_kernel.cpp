#include <cmath>
#include <limits>

#include "ops/detection.h"

namespace sal {

void segment_iou_cpu(ptr_t a_, ptr_t b_, ptr_t out_, int64_t N, int64_t M, int dtype) {
  if (N == 0 || M == 0) return;
  SAL_DISPATCH_FLOAT(dtype, "segment_iou", [&] {
    const scalar_t* a = as_ptr<const scalar_t>(a_);
    const scalar_t* b = as_ptr<const scalar_t>(b_);
    scalar_t* out = as_ptr<scalar_t>(out_);
    parallel_for(N, std::max<int64_t>(1, (1 << 15) / M), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const scalar_t s = a[2 * i], e = a[2 * i + 1];
        scalar_t* o = out + i * M;
        for (int64_t j = 0; j < M; ++j) o[j] = tiou<scalar_t>(s, e, b[2 * j], b[2 * j + 1]);
      }
    });
  });
}

// Buckets the indices 0..n-1 by label (counting sort, stable: input order kept per class).
static void bucket_by_label(const int64_t* label, int64_t n, int64_t C, std::vector<int64_t>& start,
                            std::vector<int64_t>& order) {
  start.assign(C + 1, 0);
  order.resize(n);
  for (int64_t i = 0; i < n; ++i) ++start[label[i] + 1];
  for (int64_t c = 0; c < C; ++c) start[c + 1] += start[c];
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i) order[fill[label[i]]++] = i;
}

void detection_ap_cpu(ptr_t pred_video_, ptr_t pred_label_, ptr_t pred_score_, ptr_t pred_seg_,
                      int64_t P, ptr_t gt_video_, ptr_t gt_label_, ptr_t gt_seg_, int64_t G,
                      ptr_t thr_, int64_t T, int64_t C, ptr_t ap_) {
  const int64_t* pv = as_ptr<const int64_t>(pred_video_);
  const int64_t* pl = as_ptr<const int64_t>(pred_label_);
  const double* ps = as_ptr<const double>(pred_score_);
  const double* pseg = as_ptr<const double>(pred_seg_);
  const int64_t* gv = as_ptr<const int64_t>(gt_video_);
  const int64_t* gl = as_ptr<const int64_t>(gt_label_);
  const double* gseg = as_ptr<const double>(gt_seg_);
  const double* thr = as_ptr<const double>(thr_);
  double* ap = as_ptr<double>(ap_);
  if (C <= 0 || T <= 0) return;

  std::vector<int64_t> pstart, porder, gstart, gorder;
  bucket_by_label(pl, P, C, pstart, porder);
  bucket_by_label(gl, G, C, gstart, gorder);

  // Per class: predictions by descending score, equal scores later-input-first (the official
  // `argsort()[::-1]` with a stable argsort); ground truth by (video, input order).
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      std::sort(porder.begin() + pstart[c], porder.begin() + pstart[c + 1],
                [&](int64_t x, int64_t y) { return ps[x] > ps[y] || (ps[x] == ps[y] && x > y); });
      std::sort(gorder.begin() + gstart[c], gorder.begin() + gstart[c + 1],
                [&](int64_t x, int64_t y) { return gv[x] < gv[y] || (gv[x] == gv[y] && x < y); });
    }
  });

  // Per (threshold, class): the greedy matching scan, cumulative TP/FP, interpolated AP.
  parallel_for(T * C, 1, [&](int64_t w0, int64_t w1) {
    std::vector<uint8_t> locked, is_tp;
    std::vector<double> prec;
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t t = w / C, c = w % C;
      const double th = thr[t];
      const int64_t pb = pstart[c], np_ = pstart[c + 1] - pb;
      const int64_t gb = gstart[c], ng = gstart[c + 1] - gb;
      double& out = ap[t * C + c];
      if (ng == 0) {  // AP is undefined without ground truth
        out = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      if (np_ == 0) {
        out = 0.0;
        continue;
      }
      locked.assign(ng, 0);
      is_tp.assign(np_, 0);
      prec.resize(np_);
      const int64_t* g_first = gorder.data() + gb;
      const int64_t* g_last = g_first + ng;
      int64_t tp = 0, fp = 0;
      for (int64_t k = 0; k < np_; ++k) {
        const int64_t i = porder[pb + k];
        const int64_t v = pv[i];
        const double s = pseg[2 * i], e = pseg[2 * i + 1];
        const int64_t* lo = std::lower_bound(g_first, g_last, v,
                                             [&](int64_t g, int64_t vid) { return gv[g] < vid; });
        // Best unmatched ground truth: highest tIoU >= th, equal tIoU -> later ground truth
        // (the official descending argsort order, stable).
        int64_t best = -1;
        double best_iou = -1.0;
        for (const int64_t* q = lo; q != g_last && gv[*q] == v; ++q) {
          const int64_t qi = q - g_first;
          if (locked[qi]) continue;
          const double iou = tiou<double>(s, e, gseg[2 * *q], gseg[2 * *q + 1]);
          if (iou >= th && iou >= best_iou) {
            best = qi;
            best_iou = iou;
          }
        }
        if (best >= 0) {
          locked[best] = 1;
          is_tp[k] = 1;
          ++tp;
        } else {
          ++fp;
        }
        prec[k] = double(tp) / double(tp + fp);
      }
      // Interpolated AP (VOC 2011 / ActivityNet): precision made monotone from the right
      // (with a trailing 0), summed where recall changes, i.e. at the true positives.
      const double npos = double(ng);
      double run = 0.0, sum = 0.0;
      for (int64_t k = np_ - 1; k >= 0; --k) {
        run = std::max(run, prec[k]);
        if (is_tp[k]) {
          sum += (double(tp) / npos - double(tp - 1) / npos) * run;
          --tp;
        }
      }
      out = sum;
    }
  });
}

}  // namespace sal
