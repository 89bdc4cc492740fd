// CPU nms_1d: one sort, then every label group independently (dynamic scheduling over
// sal::parallel_for workers). All arithmetic in double. See csrc/ops/nms.h.
#include <cmath>
#include <limits>
#include <numeric>

#include "ops/nms.h"

namespace sal {
namespace {

// One group, gathered in its processing order (descending score, ties by the method's rule).
struct Group {
  std::vector<double> s, e, len, score;
  std::vector<int64_t> idx;
  void resize(int64_t n) {
    s.resize(n); e.resize(n); len.resize(n); score.resize(n); idx.resize(n);
  }
};

struct Params {
  int method;
  double thr, sigma, min_score;
  int64_t max_keep;  // < 0: no limit
  bool plus_one;
};

// IoU of positions a and b of a group. Operation order follows the SAL reference exactly in the
// plus_one case (len = (e - s) + 1, inter = max(0, (min e - max s) + 1), iou = inter /
// ((len_a + len_b) - inter)); without plus_one two zero-length segments have IoU 0.
inline double iou_at(const Group& g, int64_t a, int64_t b, bool plus_one) {
  const double lo = std::max(g.s[a], g.s[b]);
  const double hi = std::min(g.e[a], g.e[b]);
  if (plus_one) {
    const double inter = std::max(0.0, (hi - lo) + 1.0);
    return inter / ((g.len[a] + g.len[b]) - inter);
  }
  const double inter = std::max(0.0, hi - lo);
  const double uni = (g.len[a] + g.len[b]) - inter;
  return uni > 0.0 ? inter / uni : 0.0;
}

// Output sink for one group: writes (input index, score) at out[base + count].
template <typename scalar_t>
struct Sink {
  int64_t* idx;
  scalar_t* score;
  int64_t count = 0;
  int64_t limit;  // max outputs (max_keep or n)
  bool full() const { return count >= limit; }
  void push(int64_t i, double s) {
    idx[count] = i;
    score[count] = static_cast<scalar_t>(s);
    ++count;
  }
};

template <typename scalar_t>
void run_hard(const Group& g, int64_t n, const Params& p, Sink<scalar_t>& out,
              std::vector<int64_t>& alive) {
  // sorted by descending score: proposals below min_score are a suffix
  int64_t m = 0;
  while (m < n && g.score[m] >= p.min_score) ++m;
  alive.resize(m);
  std::iota(alive.begin(), alive.end(), int64_t(0));
  while (m > 0 && !out.full()) {
    const int64_t i = alive[0];
    out.push(g.idx[i], g.score[i]);
    int64_t w = 0;
    for (int64_t r = 1; r < m; ++r) {
      const int64_t j = alive[r];
      if (!(iou_at(g, i, j, p.plus_one) > p.thr)) alive[w++] = j;
    }
    m = w;
  }
}

template <typename scalar_t>
void run_sal(const Group& g, int64_t n, const Params& p, Sink<scalar_t>& out,
             std::vector<int64_t>& alive, std::vector<int64_t>& kept,
             std::vector<std::pair<int64_t, double>>& decayed) {
  alive.resize(n);
  std::iota(alive.begin(), alive.end(), int64_t(0));
  kept.clear();
  decayed.clear();
  int64_t m = n;
  while (m > 0) {
    const int64_t i = alive[0];
    kept.push_back(i);
    int64_t w = 0;
    for (int64_t r = 1; r < m; ++r) {
      const int64_t j = alive[r];
      const double v = iou_at(g, i, j, p.plus_one);
      if (v >= p.thr) {
        decayed.emplace_back(j, g.score[j] * std::exp(-(v * v) / p.sigma));
      } else {
        alive[w++] = j;
      }
    }
    m = w;
  }
  for (int64_t i : kept) {
    if (out.full()) return;
    if (g.score[i] >= p.min_score) out.push(g.idx[i], g.score[i]);
  }
  for (auto& d : decayed) {
    if (out.full()) return;
    if (d.second >= p.min_score) out.push(g.idx[d.first], d.second);
  }
}

// Iterative Soft-NMS (linear / gaussian): re-rank after every decay; ties -> lower input index.
template <typename scalar_t>
void run_soft(const Group& g, int64_t n, const Params& p, Sink<scalar_t>& out,
              std::vector<int64_t>& alive, std::vector<double>& cur) {
  cur.assign(g.score.begin(), g.score.begin() + n);
  alive.clear();
  for (int64_t j = 0; j < n; ++j)
    if (cur[j] >= p.min_score) alive.push_back(j);
  int64_t m = static_cast<int64_t>(alive.size());
  auto better = [&](int64_t a, int64_t b) {  // a ranks before b
    return cur[a] > cur[b] || (cur[a] == cur[b] && g.idx[a] < g.idx[b]);
  };
  int64_t best = -1;  // position in `alive`
  for (int64_t r = 0; r < m; ++r)
    if (best < 0 || better(alive[r], alive[best])) best = r;
  const bool gaussian = p.method == kNmsGaussian;
  while (m > 0 && !out.full()) {
    const int64_t i = alive[best];
    out.push(g.idx[i], cur[i]);
    alive[best] = alive[--m];  // order of `alive` is irrelevant: ties use the input index
    best = -1;
    int64_t r = 0;
    while (r < m) {
      const int64_t j = alive[r];
      const double v = iou_at(g, i, j, p.plus_one);
      if (gaussian) {
        if (v > 0.0) cur[j] *= std::exp(-(v * v) / p.sigma);  // exp(-0) == 1 exactly
      } else if (v > p.thr) {
        cur[j] *= (1.0 - v);
      }
      if (cur[j] < p.min_score) {
        alive[r] = alive[--m];
        continue;
      }
      if (best < 0 || better(j, alive[best])) best = r;
      ++r;
    }
  }
}

template <typename scalar_t>
int64_t nms_impl(const scalar_t* seg, const scalar_t* sc, const int64_t* labels, int64_t N,
                 const Params& p, int64_t* out_idx, scalar_t* out_sc) {
  if (N == 0) return 0;
  // 1. order by label (stable: input order within a label), then group boundaries
  std::vector<int64_t> order(N);
  std::iota(order.begin(), order.end(), int64_t(0));
  std::vector<int64_t> starts{0};
  if (labels != nullptr) {
    if (!std::is_sorted(labels, labels + N)) {
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return labels[a] < labels[b]; });
    }
    for (int64_t k = 1; k < N; ++k)
      if (labels[order[k]] != labels[order[k - 1]]) starts.push_back(k);
  }
  starts.push_back(N);
  const int64_t G = static_cast<int64_t>(starts.size()) - 1;
  std::vector<int64_t> counts(G, 0);
  const bool sal_ties = p.method == kNmsSal;

  auto process = [&](int64_t gi, Group& g, std::vector<int64_t>& a, std::vector<int64_t>& b,
                     std::vector<std::pair<int64_t, double>>& d, std::vector<double>& cur) {
    const int64_t off = starts[gi], n = starts[gi + 1] - off;
    int64_t* ord = order.data() + off;
    // 2. within the group: descending score; ties lower index first (sal: higher first)
    std::sort(ord, ord + n, [&](int64_t x, int64_t y) {
      if (sc[x] != sc[y]) return sc[x] > sc[y];
      return sal_ties ? x > y : x < y;
    });
    g.resize(n);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t q = ord[k];
      g.s[k] = static_cast<double>(seg[2 * q]);
      g.e[k] = static_cast<double>(seg[2 * q + 1]);
      g.len[k] = p.plus_one ? (g.e[k] - g.s[k]) + 1.0 : g.e[k] - g.s[k];
      g.score[k] = static_cast<double>(sc[q]);
      g.idx[k] = q;
    }
    Sink<scalar_t> out{out_idx + off, out_sc + off, 0, p.max_keep < 0 ? n : std::min(n, p.max_keep)};
    switch (p.method) {
      case kNmsHard: run_hard(g, n, p, out, a); break;
      case kNmsSal: run_sal(g, n, p, out, a, b, d); break;
      default: run_soft(g, n, p, out, a, cur); break;
    }
    counts[gi] = out.count;
  };

  // 3. groups in parallel, pulled one at a time (sizes vary a lot)
  std::atomic<int64_t> next{0};
  const int64_t workers = N < 4096 ? 1 : std::min<int64_t>(get_num_threads(), G);
  parallel_for(workers, 1, [&](int64_t w0, int64_t w1) {
    Group g;
    std::vector<int64_t> a, b;
    std::vector<std::pair<int64_t, double>> d;
    std::vector<double> cur;
    for (int64_t w = w0; w < w1; ++w) {
      for (int64_t gi = next.fetch_add(1); gi < G; gi = next.fetch_add(1)) process(gi, g, a, b, d, cur);
    }
  });

  // 4. compact: group gi's outputs sit at [starts[gi], starts[gi] + counts[gi])
  int64_t M = 0;
  for (int64_t gi = 0; gi < G; ++gi) {
    const int64_t off = starts[gi], c = counts[gi];
    if (M != off) {
      std::copy(out_idx + off, out_idx + off + c, out_idx + M);
      std::copy(out_sc + off, out_sc + off + c, out_sc + M);
    }
    M += c;
  }
  return M;
}

}  // namespace

int64_t nms_1d_cpu(ptr_t segments, ptr_t scores, ptr_t labels, int64_t N, int method,
                   double iou_threshold, double sigma, double min_score, int64_t max_keep,
                   bool plus_one, ptr_t out_idx, ptr_t out_scores, int dtype) {
  if (method < kNmsHard || method > kNmsSal) fail("nms_1d", "unknown method code " + std::to_string(method));
  if (N < 0) fail("nms_1d", "negative N");
  Params p{method, iou_threshold, sigma, min_score, max_keep, plus_one};
  return SAL_DISPATCH_FLOAT(dtype, "nms_1d", [&] {
    return nms_impl<scalar_t>(as_ptr<const scalar_t>(segments), as_ptr<const scalar_t>(scores),
                              labels ? as_ptr<const int64_t>(labels) : nullptr, N, p,
                              as_ptr<int64_t>(out_idx), as_ptr<scalar_t>(out_scores));
  });
}

}  // namespace sal
