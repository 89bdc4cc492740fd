// CPU kernel of oic_proposals (see ops/oic_proposals.h). One column per task, parallel over
// columns; per column O(L + runs * n_thr): one sweep computes the upsampled values, their
// prefix sums and a "level" (how many sorted thresholds each value reaches), a second sweep
// turns level changes into runs, so every inner/outer mean is O(1).
//
// Bit-exactness with the reference (numpy + scipy interp1d) needs every product and sum
// rounded separately: no fused multiply-add contraction in this file.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>

#include "ops/oic_proposals.h"

namespace sal {
namespace {

// The column (n, c) of values [N, T, C] upsampled at x_i = i * step, i in [0, L), as
// scipy.interpolate.interp1d(arange(T), y, kind="linear", fill_value="extrapolate") computes
// it for y of dtype scalar_t: slope = float(y[hi] - y[lo]) (in scalar_t) / 1,
// v = slope * (x - lo) + y[lo] in float64, hi = clip(ceil(x), 1, T - 1) (searchsorted left).
// T == 1 (which interp1d rejects) gives the constant column.
template <typename scalar_t>
inline void upsample_column(const scalar_t* col, int64_t T, int64_t C, double step, int64_t L,
                            double* v) {
  if (T == 1) {
    const double y0 = static_cast<double>(col[0]);
    for (int64_t i = 0; i < L; ++i) v[i] = y0;
    return;
  }
  for (int64_t i = 0; i < L; ++i) {
    const double x = static_cast<double>(i) * step;
    int64_t hi = static_cast<int64_t>(std::ceil(x));
    hi = std::min<int64_t>(std::max<int64_t>(hi, 1), T - 1);
    const int64_t lo = hi - 1;
    const scalar_t ylo = col[lo * C], yhi = col[hi * C];
    const scalar_t diff = static_cast<scalar_t>(yhi - ylo);
    const double slope = static_cast<double>(diff);
    const double dx = x - static_cast<double>(lo);
    const double prod = slope * dx;
    v[i] = prod + static_cast<double>(ylo);
  }
}

// Number of sorted thresholds the value reaches: v >= thr and v > 0 (the reference zeroes the
// values below the threshold, then keeps the positive ones).
inline int64_t level_of(double v, const double* thr, int64_t n_thr) {
  if (!(v > 0.0)) return 0;
  int64_t l = 0;
  while (l < n_thr && thr[l] <= v) ++l;
  return l;
}

// Calls emit(rank, s, e) for every run of every threshold rank, in ascending end position,
// then applies the "only run is [0, 0]" rule through `counts` (runs per rank, filled here).
template <typename Emit>
inline void sweep_runs(const uint8_t* lev, int64_t L, int64_t n_thr, int64_t* open, Emit&& emit) {
  int64_t prev = 0;
  for (int64_t i = 0; i < L; ++i) {
    const int64_t l = lev[i];
    if (l > prev) {
      for (int64_t r = prev; r < l; ++r) open[r] = i;
    } else if (l < prev) {
      for (int64_t r = l; r < prev; ++r) emit(r, open[r], i - 1);
    }
    prev = l;
  }
  for (int64_t r = 0; r < prev; ++r) emit(r, open[r], L - 1);
}

struct Shape {
  int64_t N, T, C, P, n_thr, upsample, L;
};

template <typename scalar_t, typename PerColumn>
void for_columns(const scalar_t* values, const Shape& sh, const int64_t* pv, const int64_t* pc,
                 const double* thr, bool with_prefix, PerColumn&& per_column) {
  const double step = 1.0 / static_cast<double>(sh.upsample);
  const int64_t L = sh.L;
  // ~L*10 flops per column: a handful of columns per task is enough to amortise a thread.
  parallel_for(sh.P, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(L, 1)),
               [&](int64_t p0, int64_t p1) {
    std::vector<double> v(L), prefix(with_prefix ? L + 1 : 0);
    std::vector<uint8_t> lev(L);
    std::vector<int64_t> open(sh.n_thr), count(sh.n_thr);
    for (int64_t p = p0; p < p1; ++p) {
      const scalar_t* col = values + pv[p] * sh.T * sh.C + pc[p];
      upsample_column(col, sh.T, sh.C, step, L, v.data());
      if (with_prefix) {
        double acc = 0.0;
        prefix[0] = 0.0;
        for (int64_t i = 0; i < L; ++i) {
          acc += v[i];
          prefix[i + 1] = acc;
        }
      }
      for (int64_t i = 0; i < L; ++i) lev[i] = static_cast<uint8_t>(level_of(v[i], thr, sh.n_thr));
      std::fill(count.begin(), count.end(), 0);
      sweep_runs(lev.data(), L, sh.n_thr, open.data(),
                 [&](int64_t r, int64_t, int64_t) { ++count[r]; });
      per_column(p, v.data(), prefix.data(), lev.data(), open.data(), count.data());
    }
  });
}

// True when rank r's only run is [0, 0] (given count[r] == 1).
inline bool only_first(const uint8_t* lev, int64_t L, int64_t r) {
  return lev[0] > r && (L == 1 || lev[1] <= r);
}

void check_shape(const Shape& sh, const char* op) {
  if (sh.n_thr > 255) fail(op, "at most 255 thresholds are supported");
  if (sh.upsample < 1 || sh.L < 1 || sh.T < 1) fail(op, "bad sizes");
}

}  // namespace

void oic_count_cpu(ptr_t values, int64_t N, int64_t T, int64_t C, ptr_t pair_video,
                   ptr_t pair_class, int64_t P, ptr_t thr_sorted, ptr_t thr_index, int64_t n_thr,
                   int64_t upsample, int64_t L, bool skip_first_only, ptr_t counts_, int dtype) {
  const Shape sh{N, T, C, P, n_thr, upsample, L};
  check_shape(sh, "oic_proposals");
  const int64_t* tix = as_ptr<const int64_t>(thr_index);
  int64_t* counts = as_ptr<int64_t>(counts_);
  SAL_DISPATCH_FLOAT(dtype, "oic_proposals", [&] {
    for_columns(as_ptr<const scalar_t>(values), sh, as_ptr<const int64_t>(pair_video),
                as_ptr<const int64_t>(pair_class), as_ptr<const double>(thr_sorted), false,
                [&](int64_t p, const double*, const double*, const uint8_t* lev, int64_t*,
                    const int64_t* count) {
      for (int64_t r = 0; r < n_thr; ++r) {
        int64_t c = count[r];
        if (skip_first_only && c == 1 && only_first(lev, L, r)) c = 0;
        counts[p * n_thr + tix[r]] = c;
      }
    });
  });
}

void oic_fill_cpu(ptr_t values, int64_t N, int64_t T, int64_t C, ptr_t pair_video,
                  ptr_t pair_class, int64_t P, ptr_t thr_sorted, ptr_t thr_index, int64_t n_thr,
                  int64_t upsample, int64_t L, bool skip_first_only, ptr_t offsets_,
                  ptr_t video_scores, double outer_ratio, double gamma, ptr_t out_score,
                  ptr_t out_start, ptr_t out_end, ptr_t out_pair, ptr_t out_thr, int dtype) {
  const Shape sh{N, T, C, P, n_thr, upsample, L};
  check_shape(sh, "oic_proposals");
  const int64_t* pv = as_ptr<const int64_t>(pair_video);
  const int64_t* pc = as_ptr<const int64_t>(pair_class);
  const int64_t* tix = as_ptr<const int64_t>(thr_index);
  const int64_t* offsets = as_ptr<const int64_t>(offsets_);
  const double* vs = as_ptr<const double>(video_scores);
  double* o_score = as_ptr<double>(out_score);
  int64_t* o_start = as_ptr<int64_t>(out_start);
  int64_t* o_end = as_ptr<int64_t>(out_end);
  int64_t* o_pair = as_ptr<int64_t>(out_pair);
  int64_t* o_thr = as_ptr<int64_t>(out_thr);
  const double Lm1 = static_cast<double>(L - 1);
  SAL_DISPATCH_FLOAT(dtype, "oic_proposals", [&] {
    for_columns(as_ptr<const scalar_t>(values), sh, pv, pc, as_ptr<const double>(thr_sorted),
                true,
                [&](int64_t p, const double*, const double* prefix, const uint8_t* lev,
                    int64_t* open, const int64_t* count) {
      const double bonus = gamma * vs[pv[p] * C + pc[p]];
      std::vector<int64_t> written(n_thr, 0);
      sweep_runs(lev, L, n_thr, open, [&](int64_t r, int64_t s, int64_t e) {
        if (skip_first_only && count[r] == 1 && e == 0) return;  // only run is [0, 0]
        const int64_t len = e - s + 1;
        const double inner = (prefix[e + 1] - prefix[s]) / static_cast<double>(len);
        const double reach = outer_ratio * static_cast<double>(len);
        // int() truncates toward zero, then max(0, .) / min(L - 1, .): as the reference.
        const double lo = static_cast<double>(s) - reach;
        const double hi = static_cast<double>(e) + reach;
        const int64_t os = lo <= 0.0 ? 0 : static_cast<int64_t>(lo);
        const int64_t oe = hi >= Lm1 ? L - 1 : static_cast<int64_t>(hi);
        const int64_t n_left = std::max<int64_t>(s - os, 0);
        const int64_t n_right = std::max<int64_t>(oe - e, 0);
        double outer = 0.0;
        if (n_left + n_right > 0) {
          double sum = 0.0;
          if (n_left) sum += prefix[s] - prefix[os];
          if (n_right) sum += prefix[oe + 1] - prefix[e + 1];
          outer = sum / static_cast<double>(n_left + n_right);
        }
        const int64_t t = tix[r];
        const int64_t w = offsets[p * n_thr + t] + written[r]++;
        o_score[w] = (inner - outer) + bonus;
        o_start[w] = s;
        o_end[w] = e + 1;
        o_pair[w] = p;
        o_thr[w] = t;
      });
    });
  });
}

}  // namespace sal
