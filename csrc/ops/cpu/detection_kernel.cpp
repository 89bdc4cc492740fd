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

namespace {
struct ScoreIdx {
  double score;
  int64_t idx;  // position in the class's input order
};
// Matching candidates of one class: for the k-th prediction (score order), the ground truths
// of its video with tIoU >= the smallest threshold (class-local positions) and their tIoU,
// as CSR rows in the official scan order (descending tIoU; ties: later ground truth first).
struct ClassWork {
  std::vector<int64_t> offset;  // [n_pred + 1]
  std::vector<int32_t> gt_pos;
  std::vector<double> iou;
};
}  // namespace

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
  if (G >= (int64_t(1) << 31)) fail("detection_ap", "too many ground-truth segments (>= 2^31)");

  std::vector<int64_t> pstart, porder, gstart, gorder;
  bucket_by_label(pl, P, C, pstart, porder);
  bucket_by_label(gl, G, C, gstart, gorder);

  // Phase 1, per class: predictions by descending score, equal scores later-input-first (the
  // official `argsort()[::-1]` with a stable argsort); ground truth by (video, input order);
  // then the tIoU of each prediction with the ground truth of its video, once for all
  // thresholds.
  const double min_thr = *std::min_element(thr, thr + T);
  std::vector<ClassWork> work(C);
  parallel_for(C, 1, [&](int64_t c0, int64_t c1) {
    std::vector<ScoreIdx> order;
    std::vector<int64_t> gvid, lvid;
    std::vector<double> lseg;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t pb = pstart[c], np_ = pstart[c + 1] - pb;
      const int64_t gb = gstart[c], ng = gstart[c + 1] - gb;
      ClassWork& w = work[c];
      if (np_ == 0 || ng == 0) continue;
      std::sort(gorder.begin() + gb, gorder.begin() + gb + ng,
                [&](int64_t x, int64_t y) { return gv[x] < gv[y] || (gv[x] == gv[y] && x < y); });
      gvid.resize(ng);
      for (int64_t q = 0; q < ng; ++q) gvid[q] = gv[gorder[gb + q]];
      // Gather the class's predictions (ascending input index: a streaming read), so that the
      // scan in score order below touches only this compact copy.
      order.resize(np_);
      lvid.resize(np_);
      lseg.resize(2 * np_);
      for (int64_t k = 0; k < np_; ++k) {
        const int64_t i = porder[pb + k];
        order[k] = {ps[i], k};  // local k ascends with the input index
        lvid[k] = pv[i];
        lseg[2 * k] = pseg[2 * i];
        lseg[2 * k + 1] = pseg[2 * i + 1];
      }
      std::sort(order.begin(), order.end(), [](const ScoreIdx& x, const ScoreIdx& y) {
        return x.score > y.score || (x.score == y.score && x.idx > y.idx);
      });
      w.offset.resize(np_ + 1);
      w.offset[0] = 0;
      w.gt_pos.clear();
      w.iou.clear();
      for (int64_t k = 0; k < np_; ++k) {
        const int64_t i = order[k].idx, v = lvid[i];
        const double s = lseg[2 * i], e = lseg[2 * i + 1];
        const size_t row = w.gt_pos.size();
        int64_t q = std::lower_bound(gvid.begin(), gvid.end(), v) - gvid.begin();
        for (; q < ng && gvid[q] == v; ++q) {
          const int64_t g = gorder[gb + q];
          const double iou = tiou<double>(s, e, gseg[2 * g], gseg[2 * g + 1]);
          if (!(iou >= min_thr)) continue;  // matches at no threshold
          // insertion into the row, kept in the official order: descending tIoU, equal
          // tIoU -> the later ground truth first (descending argsort, stable)
          w.gt_pos.push_back(int32_t(q));
          w.iou.push_back(iou);
          size_t r = w.gt_pos.size() - 1;
          while (r > row && w.iou[r - 1] <= iou) {  // q grows: on ties the new one goes first
            w.gt_pos[r] = w.gt_pos[r - 1];
            w.iou[r] = w.iou[r - 1];
            --r;
          }
          w.gt_pos[r] = int32_t(q);
          w.iou[r] = iou;
        }
        w.offset[k + 1] = int64_t(w.gt_pos.size());
      }
    }
  });

  // Phase 2, per (threshold, class): the greedy matching scan, cumulative TP/FP, interpolated AP.
  parallel_for(T * C, 1, [&](int64_t w0, int64_t w1) {
    std::vector<uint8_t> locked, is_tp;
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t t = w / C, c = w % C;
      const double th = thr[t];
      const int64_t np_ = pstart[c + 1] - pstart[c];
      const int64_t ng = gstart[c + 1] - gstart[c];
      double& out = ap[t * C + c];
      if (ng == 0) {  // AP is undefined without ground truth
        out = std::numeric_limits<double>::quiet_NaN();
        continue;
      }
      if (np_ == 0) {
        out = 0.0;
        continue;
      }
      const ClassWork& cw = work[c];
      locked.assign(ng, 0);
      is_tp.assign(np_, 0);
      int64_t tp = 0;
      for (int64_t k = 0; k < np_; ++k) {
        // The official scan: candidates in descending tIoU; stop at the first below th,
        // take the first not yet matched.
        int64_t best = -1;
        for (int64_t r = cw.offset[k]; r < cw.offset[k + 1]; ++r) {
          if (cw.iou[r] < th) break;
          if (!locked[cw.gt_pos[r]]) {
            best = cw.gt_pos[r];
            break;
          }
        }
        if (best >= 0) {
          locked[best] = 1;
          is_tp[k] = 1;
          ++tp;
        }
      }
      // Interpolated AP (VOC 2011 / ActivityNet): precision made monotone from the right
      // (with a trailing 0), summed where recall changes, i.e. at the true positives. The
      // precision after k + 1 predictions is tp_k / (k + 1), as the official tp / (tp + fp).
      const double npos = double(ng);
      double run = 0.0, sum = 0.0;
      for (int64_t k = np_ - 1; k >= 0; --k) {
        run = std::max(run, double(tp) / double(k + 1));
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
