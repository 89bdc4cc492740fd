// CPU kernel of oic_proposals (see ops/oic_proposals.h). Parallel over columns.
//
// The upsampled column is piecewise linear: all positions i with the same interpolation
// interval lo (a "segment", ~upsample positions) share slope d and offset y[lo], and
// v_i = fl(fl(d * dx_i) + y[lo]) with dx_i = x_i - lo increasing, so v (and the threshold
// level of v) is monotone inside a segment. Hence, per column and without materialising the
// L = T * upsample values:
//   * counting runs needs the levels at the two ends of every segment only: O(T);
//   * run boundaries are found by binary search inside the segments where the level changes,
//     evaluating v exactly as the reference does (so the positions are bit-exact);
//   * every inner/outer mean is O(1) from closed-form prefix sums:
//     sum_{k in segment, k < i} v_k = d * sum(dx) + n * y[lo] (position tables shared by all
//     columns of a call), ~1e-15 relative to the reference's np.mean.
// Total O(T + runs * log(upsample)) per column instead of O(T * upsample).
//
// Bit-exactness of the positions needs every product and sum rounded separately: no fused
// multiply-add contraction in this file.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <atomic>
#include <cmath>

#include "ops/oic_proposals.h"

namespace sal {
namespace {

// Upsampling as scipy.interpolate.interp1d(arange(T), y, kind="linear",
// fill_value="extrapolate") computes it at x_i = i * step for y of dtype scalar_t:
//   hi = clip(ceil(x), 1, T - 1) (searchsorted left), lo = hi - 1,
//   slope = double(scalar_t(y[hi] - y[lo])) (the difference rounded in y's dtype; / 1),
//   v = slope * (x - lo) + y[lo] in float64.
// T == 1 (which interp1d rejects) gives a constant column (slope 0).
struct Table {
  int64_t T, L, S;                 // S segments (max(T - 1, 1))
  std::vector<int32_t> lo;         // [L] segment of position i
  std::vector<double> dx;          // [L] x_i - lo_i
  std::vector<double> H;           // [L] sum of dx over the segment's positions <= i
  std::vector<int64_t> begin;      // [S + 1] first position of each segment; begin[S] = L

  Table(int64_t T_, int64_t L_, double step) : T(T_), L(L_), S(std::max<int64_t>(T_ - 1, 1)),
                                               lo(L_), dx(L_), H(L_), begin(S + 1, L_) {
    for (int64_t i = 0; i < L; ++i) {
      const double x = static_cast<double>(i) * step;
      int64_t hi = static_cast<int64_t>(std::ceil(x));
      hi = std::min<int64_t>(std::max<int64_t>(hi, 1), S);
      lo[i] = static_cast<int32_t>(hi - 1);
      dx[i] = x - static_cast<double>(hi - 1);
    }
    for (int64_t i = L - 1; i >= 0; --i) begin[lo[i]] = i;
    for (int64_t j = S - 1; j >= 0; --j) begin[j] = std::min(begin[j], begin[j + 1]);
    double acc = 0.0;
    for (int64_t i = 0; i < L; ++i) {
      if (i == begin[lo[i]]) acc = 0.0;
      acc += dx[i];
      H[i] = acc;
    }
  }
};

// Number of sorted thresholds the value reaches: v >= thr and v > 0 (the reference zeroes the
// values below the threshold, then keeps the positive ones). Monotone in v.
inline int64_t level_of(double v, const double* thr, int64_t n_thr) {
  int64_t l = 0;
  for (int64_t r = 0; r < n_thr; ++r) l += thr[r] <= v;
  return v > 0.0 ? l : 0;
}

// One column: per-segment slope/offset and segment prefix sums (per-thread buffers).
struct Column {
  const Table* tb;
  const double* thr;
  int64_t n_thr;
  double* d;   // [S]
  double* y;   // [S]
  double* SP;  // [S + 1] sum of v over the segments before j

  template <typename scalar_t>
  void load(const scalar_t* col, int64_t C, bool with_prefix) {
    const int64_t T = tb->T, S = tb->S;
    if (T == 1) {
      d[0] = 0.0;
      y[0] = static_cast<double>(col[0]);
    } else {
      for (int64_t j = 0; j < S; ++j) {
        const scalar_t a = col[j * C], b = col[(j + 1) * C];
        d[j] = static_cast<double>(static_cast<scalar_t>(b - a));
        y[j] = static_cast<double>(a);
      }
    }
    if (!with_prefix) return;
    double acc = 0.0;
    for (int64_t j = 0; j < S; ++j) {
      SP[j] = acc;
      const int64_t b = tb->begin[j], e = tb->begin[j + 1];
      if (e > b) {
        const double part = d[j] * tb->H[e - 1];
        acc += part + static_cast<double>(e - b) * y[j];
      }
    }
    SP[S] = acc;
  }

  // The reference's upsampled value at position i, bit-exact.
  double value(int64_t i) const {
    const int32_t j = tb->lo[i];
    const double prod = d[j] * tb->dx[i];
    return prod + y[j];
  }
  int64_t level(int64_t i) const { return level_of(value(i), thr, n_thr); }

  // Sum of v over positions [0, i), i in [0, L].
  double prefix(int64_t i) const {
    if (i >= tb->L) return SP[tb->S];
    const int32_t j = tb->lo[i];
    const int64_t b = tb->begin[j];
    double r = SP[j];
    if (i > b) {
      const double part = d[j] * tb->H[i - 1];
      r += part + static_cast<double>(i - b) * y[j];
    }
    return r;
  }

  // First position p in [a, b] with pred(p) (pred monotone false -> true, pred(b) true).
  template <typename Pred>
  static int64_t first_true(int64_t a, int64_t b, Pred&& pred) {
    while (a < b) {
      const int64_t m = a + (b - a) / 2;
      if (pred(m)) b = m; else a = m + 1;
    }
    return b;
  }

  // Calls open(r, p) / close(r, e) for every run of every threshold rank r, in ascending
  // position per rank. exact = false skips locating positions inside segments (counting).
  template <typename Open, typename Close>
  void runs(bool exact, Open&& open, Close&& close) const {
    int64_t prev = 0;
    for (int64_t j = 0; j < tb->S; ++j) {
      const int64_t b = tb->begin[j], e = tb->begin[j + 1] - 1;
      if (e < b) continue;  // empty segment
      const int64_t lb = level(b);
      if (lb > prev) {
        for (int64_t r = prev; r < lb; ++r) open(r, b);
      } else if (lb < prev) {
        for (int64_t r = lb; r < prev; ++r) close(r, b - 1);
      }
      prev = lb;
      if (e == b) continue;
      const int64_t le = level(e);  // monotone inside the segment: one change per rank at most
      if (le > prev) {
        for (int64_t r = prev; r < le; ++r) {
          const int64_t p = exact ? first_true(b + 1, e, [&](int64_t q) { return level(q) > r; }) : e;
          open(r, p);
        }
      } else if (le < prev) {
        for (int64_t r = le; r < prev; ++r) {
          const int64_t p = exact ? first_true(b + 1, e, [&](int64_t q) { return level(q) <= r; }) : e;
          close(r, p - 1);
        }
      }
      prev = le;
    }
    for (int64_t r = 0; r < prev; ++r) close(r, tb->L - 1);
  }

  // Runs per rank, with the reference's `positions.any()` rule: a rank whose only run is
  // [0, 0] has none.
  void count_runs(bool skip_first_only, int64_t* count) const {
    std::fill(count, count + n_thr, 0);
    runs(false, [](int64_t, int64_t) {}, [&](int64_t r, int64_t) { ++count[r]; });
    if (!skip_first_only) return;
    const int64_t l0 = level(0), l1 = tb->L > 1 ? level(1) : 0;
    for (int64_t r = 0; r < n_thr; ++r)
      if (count[r] == 1 && l0 > r && l1 <= r) count[r] = 0;
  }
};

struct Shape {
  int64_t N, T, C, P, n_thr, upsample, L;
};

template <typename scalar_t, typename PerColumn>
void for_columns(const scalar_t* values, const Shape& sh, const int64_t* pv, const int64_t* pc,
                 const double* thr, bool with_prefix, PerColumn&& per_column) {
  const Table tb(sh.T, sh.L, 1.0 / static_cast<double>(sh.upsample));
  // chunks of columns pulled dynamically by the workers (the machine is shared: a static split
  // waits for the slowest thread)
  const int64_t chunk = std::max<int64_t>(1, 4096 / std::max<int64_t>(sh.T, 1));
  const int64_t n_chunks = (sh.P + chunk - 1) / chunk;
  const int64_t workers = std::min<int64_t>(get_num_threads(), n_chunks);
  std::atomic<int64_t> next{0};
  parallel_for(workers, 1, [&](int64_t w0, int64_t w1) {
    std::vector<double> d(tb.S), y(tb.S), SP(tb.S + 1);
    std::vector<int64_t> count(sh.n_thr), open(sh.n_thr), written(sh.n_thr);
    Column col{&tb, thr, sh.n_thr, d.data(), y.data(), SP.data()};
    for (int64_t w = w0; w < w1; ++w) {
      for (int64_t c = next.fetch_add(1); c < n_chunks; c = next.fetch_add(1)) {
        const int64_t p1 = std::min(sh.P, (c + 1) * chunk);
        for (int64_t p = c * chunk; p < p1; ++p) {
          col.load(values + pv[p] * sh.T * sh.C + pc[p], sh.C, with_prefix);
          per_column(p, col, count.data(), open.data(), written.data());
        }
      }
    }
  });
}

void check_shape(const Shape& sh, const char* op) {
  if (sh.upsample < 1 || sh.L < 1 || sh.T < 1) fail(op, "bad sizes");
  if (sh.L >= (int64_t(1) << 31)) fail(op, "too many upsampled positions (T * upsample >= 2**31)");
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
                [&](int64_t p, const Column& col, int64_t* count, int64_t*, int64_t*) {
      col.count_runs(skip_first_only, count);
      for (int64_t r = 0; r < n_thr; ++r) counts[p * n_thr + tix[r]] = count[r];
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
    for_columns(as_ptr<const scalar_t>(values), sh, pv, pc, as_ptr<const double>(thr_sorted), true,
                [&](int64_t p, const Column& col, int64_t* count, int64_t* open, int64_t* written) {
      // `count` holds 1 for a rank whose first run is a deferred [0, 0] (skip_first_only: a
      // rank whose only run is [0, 0] yields nothing; written on the rank's second run)
      std::fill(written, written + n_thr, 0);
      std::fill(count, count + n_thr, 0);
      const double bonus = gamma * vs[pv[p] * C + pc[p]];
      auto emit = [&](int64_t r, int64_t s, int64_t e) {
        const int64_t len = e - s + 1;
        const double inner = (col.prefix(e + 1) - col.prefix(s)) / static_cast<double>(len);
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
          if (n_left) sum += col.prefix(s) - col.prefix(os);
          if (n_right) sum += col.prefix(oe + 1) - col.prefix(e + 1);
          outer = sum / static_cast<double>(n_left + n_right);
        }
        const int64_t t = tix[r];
        const int64_t w = offsets[p * n_thr + t] + written[r]++;
        o_score[w] = (inner - outer) + bonus;
        o_start[w] = s;
        o_end[w] = e + 1;
        o_pair[w] = p;
        o_thr[w] = t;
      };
      col.runs(true, [&](int64_t r, int64_t s) { open[r] = s; }, [&](int64_t r, int64_t e) {
        const int64_t s = open[r];
        if (skip_first_only && s == 0 && e == 0) {  // always the rank's first run
          count[r] = 1;
          return;
        }
        if (count[r]) {
          count[r] = 0;
          emit(r, 0, 0);
        }
        emit(r, s, e);
      });
    });
  });
}

}  // namespace sal
