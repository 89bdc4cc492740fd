// CPU nms_1d: one sort, then every label group independently (dynamic scheduling over
// sal::parallel_for workers). All arithmetic in double. See csrc/ops/nms.h.
#include <cmath>
#include <cstring>
#include <type_traits>
#include <limits>
#include <numeric>

#include "ops/nms.h"

namespace sal {
namespace {

// One group, gathered in its processing order (descending score, ties by the method's rule).
struct Group {
  std::vector<double> s, e, len, score;
  std::vector<int64_t> idx;
  // start index: positions sorted by start, their starts, the longest length. IoU > 0 needs an
  // overlap (plus_one: a near-overlap within 1), so only starts in
  // [s_i - lmax - pad, e_i + pad] can reach a positive IoU with proposal i.
  std::vector<int64_t> by_start;
  std::vector<double> starts;
  double lmax = 0.0;
  void resize(int64_t n) {
    s.resize(n); e.resize(n); len.resize(n); score.resize(n); idx.resize(n);
  }
  void build_start_index(int64_t n) {
    by_start.resize(n);
    std::iota(by_start.begin(), by_start.end(), int64_t(0));
    std::sort(by_start.begin(), by_start.end(), [&](int64_t a, int64_t b) { return s[a] < s[b]; });
    starts.resize(n);
    lmax = 0.0;
    for (int64_t k = 0; k < n; ++k) {
      starts[k] = s[by_start[k]];
      lmax = std::max(lmax, e[k] - s[k]);
    }
  }
  // [begin, end) range of by_start that holds every proposal whose IoU with i can reach
  // `thr` (> 0). Intervals [s, e) (plus_one: [s, e + 1)) with IoU >= thr > 0 overlap, and then
  // union - inter = |ds| + |de| <= (1 - thr) union <= (1 - thr) / thr * min(len), so
  // |s_j - s_i| <= (1 - thr) / thr * len_i. thr == 0 (hard: IoU > 0) only needs an overlap:
  // s_j in [s_i - lmax - pad, e_i + pad].
  std::pair<int64_t, int64_t> window(int64_t i, double thr, bool plus_one) const {
    const double pad = plus_one ? 1.0 : 0.0;
    // generous margin against rounding (the exact IoU decides; the window only has to include)
    const double margin = 1e-7 * (1.0 + std::fabs(s[i]) + std::fabs(e[i]) + lmax + pad);
    double lo, hi;
    if (thr > 0.0) {
      const double reach = (1.0 - std::min(thr, 1.0)) / thr * len[i] * (1.0 + 1e-7);
      lo = s[i] - reach - margin;
      hi = s[i] + reach + margin;
    } else {
      lo = s[i] - lmax - pad - margin;
      hi = e[i] + pad + margin;
    }
    const int64_t b = std::lower_bound(starts.begin(), starts.end(), lo) - starts.begin();
    const int64_t f = std::upper_bound(starts.begin(), starts.end(), hi) - starts.begin();
    return {b, f};
  }
};

// Group order: descending score, ties by the initial order (ascending input index; sal: the
// caller lays the keys out in descending index order). Stable LSD radix sort on the score bits
// (8-bit digits, passes where every key shares the digit skipped); std::sort on tiny groups.
// Keys: the score's bits made order-preserving (float scores: 32-bit keys, double: 64-bit).
template <typename K>
struct RKey {
  K key;         // ascending key = descending score
  uint32_t idx;  // input index (< 2^31, checked by the front)
};

inline uint32_t descending_key(float x) {
  x = x + 0.0f;  // -0.0 -> +0.0: both compare equal
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u = (u >> 31) ? ~u : (u | (uint32_t(1) << 31));  // order-preserving for ascending x
  return ~u;
}

inline uint64_t descending_key(double x) {
  x = x + 0.0;
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  u = (u >> 63) ? ~u : (u | (uint64_t(1) << 63));
  return ~u;
}

// Stable LSD radix sort by key (8-bit digits; all histograms in one pass; digits that every
// key shares are skipped); stable std::sort on tiny groups.
template <typename K>
void sort_keys(std::vector<RKey<K>>& a, std::vector<RKey<K>>& tmp) {
  const size_t n = a.size();
  if (n < 64) {
    std::stable_sort(a.begin(), a.end(), [](const RKey<K>& x, const RKey<K>& y) { return x.key < y.key; });
    return;
  }
  constexpr int kDigits = sizeof(K);
  uint32_t cnt[kDigits][256];
  std::memset(cnt, 0, sizeof cnt);
  for (size_t k = 0; k < n; ++k) {
    const K key = a[k].key;
    for (int d = 0; d < kDigits; ++d) ++cnt[d][(key >> (8 * d)) & 255];
  }
  tmp.resize(n);
  for (int d = 0; d < kDigits; ++d) {
    const int shift = 8 * d;
    uint32_t* c = cnt[d];
    if (c[(a[0].key >> shift) & 255] == n) continue;  // all share this digit
    uint32_t sum = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t v = c[b];
      c[b] = sum;
      sum += v;
    }
    for (size_t k = 0; k < n; ++k) tmp[c[(a[k].key >> shift) & 255]++] = a[k];
    a.swap(tmp);
  }
}

struct Params {
  int method;
  double thr, sigma, min_score;
  int64_t max_keep;  // < 0: no limit
  bool plus_one;
  int windowed;      // start index: 0 never, 1 for groups > 1024, 2 always
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

// The plain scans are branch-free in their inner loop (hits are unpredictable): every
// candidate is written to both lists and the right counter advances.
template <typename scalar_t>
void run_hard(const Group& g, int64_t n, const Params& p, Sink<scalar_t>& out,
              std::vector<int64_t>& alive) {
  // sorted by descending score: proposals below min_score are a suffix
  int64_t m = 0;
  while (m < n && g.score[m] >= p.min_score) ++m;
  alive.resize(m);
  std::iota(alive.begin(), alive.end(), int64_t(0));
  int64_t* a = alive.data();
  while (m > 0 && !out.full()) {
    const int64_t i = a[0];
    out.push(g.idx[i], g.score[i]);
    int64_t w = 0;
    for (int64_t r = 1; r < m; ++r) {
      const int64_t j = a[r];
      a[w] = j;
      w += !(iou_at(g, i, j, p.plus_one) > p.thr);
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
  decayed.resize(n);  // (position, IoU with its suppressor), in suppression order
  int64_t* a = alive.data();
  std::pair<int64_t, double>* dec = decayed.data();
  int64_t m = n, d = 0;
  while (m > 0) {
    const int64_t i = a[0];
    kept.push_back(i);
    int64_t w = 0;
    for (int64_t r = 1; r < m; ++r) {
      const int64_t j = a[r];
      const double v = iou_at(g, i, j, p.plus_one);
      const bool hit = v >= p.thr;
      a[w] = j;
      dec[d] = {j, v};
      w += !hit;
      d += hit;
    }
    m = w;
  }
  for (int64_t i : kept) {
    if (out.full()) return;
    if (g.score[i] >= p.min_score) out.push(g.idx[i], g.score[i]);
  }
  for (int64_t k = 0; k < d; ++k) {
    if (out.full()) return;
    const double v = dec[k].second;
    const double s = g.score[dec[k].first] * std::exp(-(v * v) / p.sigma);
    if (s >= p.min_score) out.push(g.idx[dec[k].first], s);
  }
}

// Greedy with the start index (hard with thr >= 0, sal with thr > 0: a hit needs IoU > 0).
// Same result as run_hard / run_sal: hits are visited in start order, then put back in queue
// (score) order before the sal decays are appended.
template <typename scalar_t, bool kSal>
void run_greedy_windowed(Group& g, int64_t n, const Params& p, Sink<scalar_t>& out,
                         std::vector<char>& alive, std::vector<int64_t>& kept,
                         std::vector<int64_t>& hits,
                         std::vector<std::pair<int64_t, double>>& decayed) {
  g.build_start_index(n);
  alive.assign(n, 1);
  kept.clear();
  decayed.clear();
  const int64_t stop = kSal || p.max_keep < 0 ? n : std::min(n, p.max_keep);
  int64_t cur = 0;
  while (true) {
    while (cur < n && !alive[cur]) ++cur;
    if (cur >= n) break;
    const int64_t i = cur++;
    if (!kSal && (g.score[i] < p.min_score || static_cast<int64_t>(kept.size()) >= stop)) break;
    kept.push_back(i);
    alive[i] = 0;
    const auto w = g.window(i, p.thr, p.plus_one);
    hits.clear();
    for (int64_t k = w.first; k < w.second; ++k) {
      const int64_t j = g.by_start[k];
      if (!alive[j]) continue;
      const double v = iou_at(g, i, j, p.plus_one);
      if (kSal ? v >= p.thr : v > p.thr) {
        alive[j] = 0;
        if (kSal) hits.push_back(j);
      }
    }
    if (kSal) {
      std::sort(hits.begin(), hits.end());
      for (int64_t j : hits) {
        const double v = iou_at(g, i, j, p.plus_one);
        decayed.emplace_back(j, g.score[j] * std::exp(-(v * v) / p.sigma));
      }
    }
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

// Iterative Soft-NMS with a lazy max-heap and the start index: selection = highest current
// score, ties -> lower input index; a decay only touches proposals with IoU > 0 (gaussian:
// exp(-0) == 1; linear: a factor (1 - 0) == 1), and pushes the new score; stale heap entries
// (score no longer current, or proposal gone) are skipped. Same result as run_soft.
struct HeapEntry {
  double score;
  int64_t idx, pos;
};
struct HeapLess {  // a ranks below b
  bool operator()(const HeapEntry& a, const HeapEntry& b) const {
    return a.score < b.score || (a.score == b.score && a.idx > b.idx);
  }
};

template <typename scalar_t>
void run_soft_heap(Group& g, int64_t n, const Params& p, Sink<scalar_t>& out,
                   std::vector<char>& alive, std::vector<double>& cur,
                   std::vector<HeapEntry>& heap) {
  g.build_start_index(n);
  cur.assign(g.score.begin(), g.score.begin() + n);
  alive.assign(n, 0);
  heap.clear();
  int64_t n_alive = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (cur[j] >= p.min_score) {
      alive[j] = 1;
      ++n_alive;
      heap.push_back({cur[j], g.idx[j], j});
    }
  }
  std::make_heap(heap.begin(), heap.end(), HeapLess());
  const bool gaussian = p.method == kNmsGaussian;
  // linear only changes IoU > thr (thr > 0: the tighter window); gaussian any IoU > 0
  const double wthr = gaussian ? 0.0 : std::max(p.thr, 0.0);
  while (!heap.empty() && !out.full()) {
    if (static_cast<int64_t>(heap.size()) > 4 * n_alive + 64) {
      // too many stale entries: rebuild from the live ones (keeps memory O(n))
      heap.clear();
      for (int64_t j = 0; j < n; ++j)
        if (alive[j]) heap.push_back({cur[j], g.idx[j], j});
      std::make_heap(heap.begin(), heap.end(), HeapLess());
      if (heap.empty()) break;
    }
    std::pop_heap(heap.begin(), heap.end(), HeapLess());
    const HeapEntry top = heap.back();
    heap.pop_back();
    const int64_t i = top.pos;
    if (!alive[i] || top.score != cur[i]) continue;  // stale
    out.push(g.idx[i], cur[i]);
    alive[i] = 0;
    --n_alive;
    const auto w = g.window(i, wthr, p.plus_one);
    for (int64_t k = w.first; k < w.second; ++k) {
      const int64_t j = g.by_start[k];
      if (!alive[j]) continue;
      const double v = iou_at(g, i, j, p.plus_one);
      double c = cur[j];
      if (gaussian) {
        if (v > 0.0) c *= std::exp(-(v * v) / p.sigma);
      } else if (v > p.thr) {
        c *= (1.0 - v);
      }
      if (c == cur[j]) continue;
      cur[j] = c;
      if (c < p.min_score) {
        alive[j] = 0;
        --n_alive;
      } else {
        heap.push_back({c, g.idx[j], j});
        std::push_heap(heap.begin(), heap.end(), HeapLess());
      }
    }
  }
}

// Iterative Soft-NMS (linear / gaussian): re-rank after every decay; ties -> lower input index.
// The live proposals are kept compacted in structure-of-arrays form (swap-remove: their order
// is irrelevant, ties use the input index). A decay changes a score only where IoU > 0
// (gaussian: exp(-0) == 1; linear: v > thr with v == 0 multiplies by (1 - 0) == 1), and IoU > 0
// needs inter > 0 (then the union is > 0), so the division and exp run for overlapping pairs
// only; the IoU itself is computed with iou_at's exact operation order.
struct SoftSoa {
  std::vector<double> s, e, len, cur;
  std::vector<int64_t> idx, hit;
};

template <typename scalar_t>
void run_soft(const Group& g, int64_t n, const Params& p, Sink<scalar_t>& out, SoftSoa& w) {
  w.s.resize(n); w.e.resize(n); w.len.resize(n); w.cur.resize(n); w.idx.resize(n); w.hit.resize(n);
  double* S = w.s.data();
  double* E = w.e.data();
  double* L = w.len.data();
  double* CUR = w.cur.data();
  int64_t* ID = w.idx.data();
  int64_t m = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (g.score[j] >= p.min_score) {
      S[m] = g.s[j]; E[m] = g.e[j]; L[m] = g.len[j]; CUR[m] = g.score[j]; ID[m] = g.idx[j];
      ++m;
    }
  }
  int64_t best = -1;
  for (int64_t r = 0; r < m; ++r)
    if (best < 0 || CUR[r] > CUR[best] || (CUR[r] == CUR[best] && ID[r] < ID[best])) best = r;
  const bool gaussian = p.method == kNmsGaussian;
  const double pad = p.plus_one ? 1.0 : 0.0;
  const double thr = p.thr, sigma = p.sigma, min_score = p.min_score;
  int64_t* H = w.hit.data();
  while (m > 0 && !out.full()) {
    out.push(ID[best], CUR[best]);
    const double si = S[best], ei = E[best], li = L[best];
    --m;  // swap-remove the selected one
    S[best] = S[m]; E[best] = E[m]; L[best] = L[m]; CUR[best] = CUR[m]; ID[best] = ID[m];
    // 1. overlapping positions (branch-free)
    int64_t h = 0;
    for (int64_t r = 0; r < m; ++r) {
      const double inter = std::max(0.0, (std::min(ei, E[r]) - std::max(si, S[r])) + pad);
      H[h] = r;
      h += inter > 0.0;
    }
    // 2. decay them
    bool dropped = false;
    for (int64_t k = 0; k < h; ++k) {
      const int64_t r = H[k];
      const double inter = std::max(0.0, (std::min(ei, E[r]) - std::max(si, S[r])) + pad);
      const double v = inter / ((li + L[r]) - inter);
      double c = CUR[r];
      if (gaussian) {
        if (v > 0.0) c *= std::exp(-(v * v) / sigma);
      } else if (v > thr) {
        c *= (1.0 - v);
      }
      CUR[r] = c;
      dropped |= c < min_score;
    }
    // 3. drop the ones below min_score (only decayed ones can be)
    if (dropped) {
      int64_t q = 0;
      for (int64_t r = 0; r < m; ++r) {
        if (CUR[r] < min_score) continue;
        S[q] = S[r]; E[q] = E[r]; L[q] = L[r]; CUR[q] = CUR[r]; ID[q] = ID[r];
        ++q;
      }
      m = q;
    }
    // 4. the next selection
    best = -1;
    double bc = 0.0;
    int64_t bid = 0;
    for (int64_t r = 0; r < m; ++r) {
      const double c = CUR[r];
      if (best < 0 || c > bc || (c == bc && ID[r] < bid)) {
        best = r;
        bc = c;
        bid = ID[r];
      }
    }
  }
}

template <typename scalar_t>
int64_t nms_impl(const scalar_t* seg, const scalar_t* sc, const int64_t* labels, int64_t N,
                 const Params& p, int64_t* out_idx, scalar_t* out_sc) {
  if (N == 0) return 0;
  // 1. group by label (input order within a label). starts[gi]: the group's first output slot
  // (groups in ascending label order); its members are order[starts[gi] ...], or, when
  // `first` is set, the contiguous input range first[gi] + [0, size).
  std::vector<int64_t> order;
  std::vector<int64_t> starts{0};
  std::vector<int64_t> first;
  if (labels == nullptr) {
    first.push_back(0);
  } else {
    // Usual case: each label is one contiguous run (e.g. video-major, classes in any order):
    // the groups are the runs in label order, no permutation. Otherwise a stable sort.
    std::vector<std::pair<int64_t, int64_t>> runs;  // (label, first position)
    for (int64_t k = 0; k < N; ++k)
      if (k == 0 || labels[k] != labels[k - 1]) runs.emplace_back(labels[k], k);
    const bool was_sorted = std::is_sorted(runs.begin(), runs.end());
    if (!was_sorted) std::sort(runs.begin(), runs.end());
    bool distinct = true;
    for (size_t r = 1; r < runs.size() && distinct; ++r) distinct = runs[r].first != runs[r - 1].first;
    if (distinct) {
      first.reserve(runs.size());
      starts.reserve(runs.size() + 1);
      int64_t acc = 0;
      for (auto& run : runs) {
        int64_t k = run.second + 1;
        while (k < N && labels[k] == run.first) ++k;
        first.push_back(run.second);
        acc += k - run.second;
        starts.push_back(acc);
      }
      starts.pop_back();
    } else {
      order.resize(N);
      std::iota(order.begin(), order.end(), int64_t(0));
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return labels[a] < labels[b]; });
      for (int64_t k = 1; k < N; ++k)
        if (labels[order[k]] != labels[order[k - 1]]) starts.push_back(k);
    }
  }
  starts.push_back(N);
  const int64_t G = static_cast<int64_t>(starts.size()) - 1;
  std::vector<int64_t> counts(G, 0);
  const bool sal_ties = p.method == kNmsSal;

  using Key = std::conditional_t<sizeof(scalar_t) == 4, uint32_t, uint64_t>;
  struct Scratch {
    Group g;
    std::vector<int64_t> a, b, c;
    std::vector<char> flags;
    std::vector<std::pair<int64_t, double>> d;
    std::vector<double> cur;
    std::vector<HeapEntry> heap;
    SoftSoa soft;
    std::vector<RKey<Key>> keys, keys_tmp;
  };
  auto process = [&](int64_t gi, Scratch& w) {
    Group& g = w.g;
    const int64_t off = starts[gi], n = starts[gi + 1] - off;
    const int64_t* ord = first.empty() ? order.data() + off : nullptr;
    const int64_t base = first.empty() ? 0 : first[gi];
    // 2. within the group: descending score; ties lower index first (sal: higher first).
    // `ord` holds the group in ascending input index; a stable sort keeps that for ties.
    auto& keys = w.keys;
    keys.resize(n);
    if (ord) {
      for (int64_t k = 0; k < n; ++k) {
        const int64_t q = ord[sal_ties ? n - 1 - k : k];
        keys[k] = {descending_key(sc[q]), static_cast<uint32_t>(q)};
      }
    } else {
      for (int64_t k = 0; k < n; ++k) {
        const int64_t q = base + (sal_ties ? n - 1 - k : k);
        keys[k] = {descending_key(sc[q]), static_cast<uint32_t>(q)};
      }
    }
    sort_keys(keys, w.keys_tmp);
    g.resize(n);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t q = static_cast<int64_t>(keys[k].idx);
      g.s[k] = static_cast<double>(seg[2 * q]);
      g.e[k] = static_cast<double>(seg[2 * q + 1]);
      g.len[k] = p.plus_one ? (g.e[k] - g.s[k]) + 1.0 : g.e[k] - g.s[k];
      g.score[k] = static_cast<double>(sc[q]);
      g.idx[k] = q;
    }
    Sink<scalar_t> out{out_idx + off, out_sc + off, 0, p.max_keep < 0 ? n : std::min(n, p.max_keep)};
    // The start index prunes the IoU scans; it needs "a hit implies IoU > 0", which fails for
    // hard with thr < 0 and sal with thr <= 0 (everything is suppressed there): plain scans.
    // The index costs a sort and binary searches: on small groups (THUMOS: ~300 per class) the
    // plain scans are faster, so windowed mode 1 uses it above 1024 proposals only; mode 0
    // never, mode 2 always (the tests compare them).
    const bool windowed = p.windowed == 2 || (p.windowed == 1 && n > 1024);
    switch (p.method) {
      case kNmsHard:
        if (windowed && p.thr >= 0.0) run_greedy_windowed<scalar_t, false>(g, n, p, out, w.flags, w.b, w.c, w.d);
        else run_hard(g, n, p, out, w.a);
        break;
      case kNmsSal:
        if (windowed && p.thr > 0.0) run_greedy_windowed<scalar_t, true>(g, n, p, out, w.flags, w.b, w.c, w.d);
        else run_sal(g, n, p, out, w.a, w.b, w.d);
        break;
      default:
        if (windowed) run_soft_heap(g, n, p, out, w.flags, w.cur, w.heap);
        else run_soft(g, n, p, out, w.soft);
        break;
    }
    counts[gi] = out.count;
  };

  // 3. groups in parallel, pulled one at a time (sizes vary a lot)
  std::atomic<int64_t> next{0};
  const int64_t workers = N < 4096 ? 1 : std::min<int64_t>(get_num_threads(), G);
  parallel_for(workers, 1, [&](int64_t w0, int64_t w1) {
    Scratch scratch;
    for (int64_t w = w0; w < w1; ++w) {
      for (int64_t gi = next.fetch_add(1); gi < G; gi = next.fetch_add(1)) process(gi, scratch);
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
                   bool plus_one, int windowed, ptr_t out_idx, ptr_t out_scores, int dtype) {
  if (method < kNmsHard || method > kNmsSal) fail("nms_1d", "unknown method code " + std::to_string(method));
  if (N < 0 || N >= (int64_t(1) << 31)) fail("nms_1d", "N must be in [0, 2^31)");
  Params p{method, iou_threshold, sigma, min_score, max_keep, plus_one, windowed};
  return SAL_DISPATCH_FLOAT(dtype, "nms_1d", [&] {
    return nms_impl<scalar_t>(as_ptr<const scalar_t>(segments), as_ptr<const scalar_t>(scores),
                              labels ? as_ptr<const int64_t>(labels) : nullptr, N, p,
                              as_ptr<int64_t>(out_idx), as_ptr<scalar_t>(out_scores));
  });
}

}  // namespace sal
