// CPU top-k selection per (b, c) column: gather the column once (time stride C) into a scratch
// buffer of packed (score, index) keys ordered by (score desc, index asc), nth_element for the
// k best, then sort only those k for the index output. Columns run in parallel.
#include <cstring>

#include "ops/topk.h"

namespace sal {
namespace {

// Order-preserving unsigned images of floats (-0.0 is mapped like +0.0; NaN never arrives).
inline uint32_t ordered_bits(float x) {
  if (x == 0.0f) x = 0.0f;
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline uint64_t ordered_bits(double x) {
  if (x == 0.0) x = 0.0;
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

// float32: one 64-bit key, score bits high, inverted index low: larger key = better.
struct PackedF {
  using item = uint64_t;
  static item make(float s, int64_t t) {
    return (uint64_t(ordered_bits(s)) << 32) | uint64_t(0xFFFFFFFFu - uint32_t(t));
  }
  static int64_t index(item x) { return int64_t(0xFFFFFFFFu - uint32_t(x & 0xFFFFFFFFu)); }
  struct better {
    bool operator()(item a, item b) const { return a > b; }
  };
};

// float64: (score bits, index) pairs.
struct PackedD {
  struct item {
    uint64_t key;
    uint32_t t;
  };
  static item make(double s, int64_t t) { return {ordered_bits(s), uint32_t(t)}; }
  static int64_t index(const item& x) { return int64_t(x.t); }
  struct better {
    bool operator()(const item& a, const item& b) const {
      return a.key > b.key || (a.key == b.key && a.t < b.t);
    }
  };
};

template <typename scalar_t> struct PackFor;
template <> struct PackFor<float> { using type = PackedF; };
template <> struct PackFor<double> { using type = PackedD; };

// Selects the k best of the column (b, c) into items[0, k); sorted there when `sorted`.
// Counts the NaN scores of the whole column (all T steps) into `nans`.
template <typename scalar_t, typename P>
int64_t select_column(const scalar_t* score, const int64_t* kvec, const int64_t* lengths,
                      int64_t b, int64_t c, int64_t T, int64_t C, int64_t kmax, bool sorted,
                      std::vector<typename P::item>& items, int64_t& nans) {
  const int64_t n = lengths ? std::min<int64_t>(std::max<int64_t>(lengths[b], 1), T) : T;
  const int64_t k = std::min<int64_t>(std::max<int64_t>(kvec ? kvec[b] : kmax, 1), n);
  items.resize(n);
  const scalar_t* col = score + b * T * C + c;
  int64_t bad = 0;
  for (int64_t t = 0; t < n; ++t) {
    const scalar_t s = col[t * C];
    bad += (s != s);
    items[t] = P::make(s, t);
  }
  for (int64_t t = n; t < T; ++t) bad += (col[t * C] != col[t * C]);
  nans += bad;
  if (bad) return 0;  // the caller discards everything: the front raises ValueError
  typename P::better better;
  if (k < n) std::nth_element(items.begin(), items.begin() + k, items.end(), better);
  if (sorted) std::sort(items.begin(), items.begin() + k, better);
  return k;
}

int64_t grain_for(int64_t T) { return std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(T, 1)); }

void check_sizes(const char* op, int64_t T, int64_t kmax) {
  if (T >= (int64_t(1) << 31)) fail(op, "T must be < 2^31");
  if (kmax < 1 || kmax > T) fail(op, "kmax must be in 1..T");
}

}  // namespace

int64_t topk_mil_cpu(ptr_t score_, ptr_t value_, ptr_t kvec_, ptr_t lengths_, ptr_t pooled_,
                     ptr_t indices_, int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype) {
  if (B * C == 0) return 0;
  std::atomic<int64_t> nan_count{0};
  check_sizes("topk_mil", T, kmax);
  SAL_DISPATCH_FLOAT(dtype, "topk_mil", [&] {
    using P = typename PackFor<scalar_t>::type;
    const scalar_t* score = as_ptr<const scalar_t>(score_);
    const scalar_t* value = as_ptr<const scalar_t>(value_);
    const int64_t* kvec = as_ptr<const int64_t>(kvec_);
    const int64_t* lengths = as_ptr<const int64_t>(lengths_);
    scalar_t* pooled = as_ptr<scalar_t>(pooled_);
    int64_t* indices = as_ptr<int64_t>(indices_);
    parallel_for(B * C, grain_for(T), [&](int64_t begin, int64_t end) {
      std::vector<typename P::item> items;
      items.reserve(T);
      int64_t nans = 0;
      for (int64_t col = begin; col < end; ++col) {
        const int64_t b = col / C, c = col % C;
        const int64_t k = select_column<scalar_t, P>(score, kvec, lengths, b, c, T, C, kmax, true, items, nans);
        const scalar_t* vcol = value + b * T * C + c;
        int64_t* icol = indices + b * kmax * C + c;
        double sum = 0.0;
        for (int64_t j = 0; j < k; ++j) {
          const int64_t t = P::index(items[j]);
          icol[j * C] = t;
          sum += double(vcol[t * C]);
        }
        for (int64_t j = k; j < kmax; ++j) icol[j * C] = -1;
        pooled[b * C + c] = scalar_t(sum / double(k));
      }
      nan_count += nans;
    });
  });
  return nan_count.load();
}

int64_t topk_mask_cpu(ptr_t score_, ptr_t kvec_, ptr_t lengths_, ptr_t mask_, int64_t B,
                      int64_t T, int64_t C, int64_t kmax, int dtype) {
  if (B * C == 0) return 0;
  std::atomic<int64_t> nan_count{0};
  check_sizes("topk_mask", T, kmax);
  SAL_DISPATCH_FLOAT(dtype, "topk_mask", [&] {
    using P = typename PackFor<scalar_t>::type;
    const scalar_t* score = as_ptr<const scalar_t>(score_);
    const int64_t* kvec = as_ptr<const int64_t>(kvec_);
    const int64_t* lengths = as_ptr<const int64_t>(lengths_);
    scalar_t* mask = as_ptr<scalar_t>(mask_);
    parallel_for(B * C, grain_for(T), [&](int64_t begin, int64_t end) {
      std::vector<typename P::item> items;
      items.reserve(T);
      int64_t nans = 0;
      for (int64_t col = begin; col < end; ++col) {
        const int64_t b = col / C, c = col % C;
        const int64_t k = select_column<scalar_t, P>(score, kvec, lengths, b, c, T, C, kmax, false, items, nans);
        scalar_t* mcol = mask + b * T * C + c;
        for (int64_t t = 0; t < T; ++t) mcol[t * C] = scalar_t(0);
        for (int64_t j = 0; j < k; ++j) mcol[P::index(items[j]) * C] = scalar_t(1);
      }
      nan_count += nans;
    });
  });
  return nan_count.load();
}

void topk_mil_backward_cpu(ptr_t grad_pooled_, ptr_t indices_, ptr_t kvec_, ptr_t grad_value_,
                           int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype) {
  if (B * T * C == 0) return;
  SAL_DISPATCH_FLOAT(dtype, "topk_mil", [&] {
    const scalar_t* g = as_ptr<const scalar_t>(grad_pooled_);
    const int64_t* indices = as_ptr<const int64_t>(indices_);
    const int64_t* kvec = as_ptr<const int64_t>(kvec_);
    scalar_t* gv = as_ptr<scalar_t>(grad_value_);
    parallel_for(B, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(T * C, 1)),
                 [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        scalar_t* row = gv + b * T * C;
        std::fill(row, row + T * C, scalar_t(0));
        const scalar_t k = scalar_t(kvec ? kvec[b] : kmax);
        const int64_t* idx = indices + b * kmax * C;
        for (int64_t j = 0; j < kmax; ++j) {
          for (int64_t c = 0; c < C; ++c) {
            const int64_t t = idx[j * C + c];
            if (t >= 0 && t < T) row[t * C + c] = g[b * C + c] / k;
          }
        }
      }
    });
  });
}

}  // namespace sal
