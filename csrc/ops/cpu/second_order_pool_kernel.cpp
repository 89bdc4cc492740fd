// CPU kernels of second_order_pool (see ops/second_order_pool.h for the contract).
//
// Forward: the Gram matrix X X^T is computed on the upper-triangular kTB x kTB tiles only
// (i <= j), each mirrored, with a register-blocked micro-kernel (MR x NR accumulators, NR = three
// native vectors) over panels packed so that the inner loop is contiguous in T; the epilogue
// applies the scale and the signed square root, writes both mirror tiles and returns the tile's
// sum of squares; a last pass divides each row by its clamped norm. Work items (a whole video,
// or one row of tiles of a video when there are few videos) are handed out dynamically to
// sal::parallel_for workers; per-item partial sums are reduced in a fixed order (deterministic).
// Backward: Gs = s * (G + G^T) with G = dL/dg (built while packing, from y, dy and the norm),
// then dX = Gs X with the same micro-kernel, masked / mean-corrected as autograd of the reference.
// Accumulation is in the input type (float for float32, double for float64).
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/second_order_pool.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace sal {
namespace {

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr int kRegs = 32;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
constexpr int kRegs = 16;
#else
constexpr int kVecBytes = 16;
constexpr int kRegs = 16;
#endif
constexpr int kNV = 3;        // B vectors per micro-kernel row: NR = 3 native vectors
constexpr int kTB = 96;       // output tile: a multiple of every NR and MR below
constexpr int64_t kKC = 256;  // K block: a KC x NR micro-panel of B stays in L1

template <typename S>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(kVecBytes)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(kVecBytes)));
};

// MR x NR register block: MR * kNV accumulators + kNV B vectors + 1 broadcast fit the
// register file (AVX-512: 8 x 3 zmm; AVX/SSE: 4 x 3, or 3 x 3 where NR = 6). MR divides NR,
// so an MR-row block never straddles an NR-row group of the packed layout.
template <typename S>
struct Micro {
  using V = typename VecOf<S>::type;
  static constexpr int L = kVecBytes / (int)sizeof(S);
  static constexpr int NR = kNV * L;
  static constexpr int MR = kRegs >= 32 ? 8 : (NR % 4 == 0 ? 4 : 3);
  static_assert(NR % MR == 0 && kTB % NR == 0, "tile sizes");

  static inline V load(const S* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static inline void store(S* p, V v) { std::memcpy(p, &v, sizeof(V)); }

  // c[r * ldc + j] (+)= sum_k a[k * lda + r] * b[k * NR + j] for r < MR, j < NR.
  static inline void run(int64_t K, const S* __restrict a, int64_t lda, const S* __restrict b,
                         S* __restrict c, int64_t ldc, bool add) {
    V acc[MR][kNV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[r][v] = V{};
    for (int64_t k = 0; k < K; ++k) {
      V bv[kNV];
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) bv[v] = load(b + k * NR + v * L);
      const S* ak = a + k * lda;
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const V ar = ak[r] - V{};  // broadcast (x - 0 folds to x; x + 0 would not)
#pragma GCC unroll 4
        for (int v = 0; v < kNV; ++v) acc[r][v] += ar * bv[v];
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      S* cr = c + r * ldc;
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) {
        if (add)
          store(cr + v * L, load(cr + v * L) + acc[r][v]);
        else
          store(cr + v * L, acc[r][v]);
      }
    }
  }
};

// sign(g) * sqrt(|g| + eps) with sign(0) = 0, written without branches so that it vectorises
// (scalar version for tails; vsigned_sqrt below is the vector one).
template <typename S>
inline S signed_sqrt(S g, S eps) {
  const S h = std::sqrt(std::abs(g) + eps);
  const S sh = g < S(0) ? -h : h;
  return g == S(0) ? S(0) : sh;
}

// Vector sqrt (the masked AVX-512 forms avoid a GCC 12 false -Wmaybe-uninitialized; GCC keeps a scalar libm call for errno otherwise, -fno-math-errno is not set).
template <typename V>
inline V vsqrt(V v) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) {
    if constexpr (sizeof(v[0]) == 4) return (V)_mm512_mask_sqrt_ps((__m512)v, (__mmask16)0xFFFF, (__m512)v);
    else return (V)_mm512_mask_sqrt_pd((__m512d)v, (__mmask8)0xFF, (__m512d)v);
  }
#endif
#if defined(__AVX__)
  if constexpr (sizeof(V) == 32) {
    if constexpr (sizeof(v[0]) == 4) return (V)_mm256_sqrt_ps((__m256)v);
    else return (V)_mm256_sqrt_pd((__m256d)v);
  }
#endif
#if defined(__SSE2__)
  if constexpr (sizeof(V) == 16) {
    if constexpr (sizeof(v[0]) == 4) return (V)_mm_sqrt_ps((__m128)v);
    else return (V)_mm_sqrt_pd((__m128d)v);
  }
#endif
  V r = v;
  for (int l = 0; l < (int)(sizeof(V) / sizeof(v[0])); ++l) r[l] = std::sqrt(v[l]);
  return r;
}

template <typename V, typename S>
inline V vsigned_sqrt(V g, S eps) {
  const V zero = V{};
  const V a = g < zero ? -g : g;
  const V h = vsqrt(a + eps);
  const V sh = g < zero ? -h : h;
  return g == zero ? zero : sh;
}

template <typename S>
S row_mean(const S* row, int64_t len) {
  double sum = 0;
  for (int64_t t = 0; t < len; ++t) sum += row[t];
  return static_cast<S>(sum / static_cast<double>(len));
}

// Packs rows [r0, r0 + kTB) of one video (row stride T), its first `len` steps, minus `mean`
// (null: none; indexed by row - r0) into groups of W rows laid out [group][t][W]; rows >= D
// become zeros. Blocked over t so the written lines stay in L1 while the W rows are read.
template <typename S>
void pack_rows(const S* xb, int64_t D, int64_t T, int64_t r0, int64_t len, const S* mean, int W,
               S* out) {
  constexpr int64_t kTBlk = 32;
  for (int g = 0; g < kTB / W; ++g) {
    S* og = out + (int64_t)g * len * W;
    for (int64_t t0 = 0; t0 < len; t0 += kTBlk) {
      const int64_t t1 = std::min(len, t0 + kTBlk);
      for (int w = 0; w < W; ++w) {
        const int64_t row = r0 + g * W + w;
        if (row >= D) {
          for (int64_t t = t0; t < t1; ++t) og[t * W + w] = S(0);
          continue;
        }
        const S* xr = xb + row * T;
        const S m = mean ? mean[g * W + w] : S(0);
        for (int64_t t = t0; t < t1; ++t) og[t * W + w] = xr[t] - m;
      }
    }
  }
}

// sum_i a[i] * b[i] accumulated in float64, 8 lanes at a time (vectorised; a plain loop would
// stay scalar without -ffast-math).
typedef double F64x8 __attribute__((vector_size(64)));
typedef float F32x8 __attribute__((vector_size(32)));
template <typename S>
double dot_f64(const S* a, const S* b, int64_t n) {
  using In = typename std::conditional<std::is_same<S, float>::value, F32x8, F64x8>::type;
  F64x8 acc0 = {}, acc1 = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    In a0, b0, a1, b1;
    std::memcpy(&a0, a + i, sizeof(In));
    std::memcpy(&b0, b + i, sizeof(In));
    std::memcpy(&a1, a + i + 8, sizeof(In));
    std::memcpy(&b1, b + i + 8, sizeof(In));
    acc0 += __builtin_convertvector(a0, F64x8) * __builtin_convertvector(b0, F64x8);
    acc1 += __builtin_convertvector(a1, F64x8) * __builtin_convertvector(b1, F64x8);
  }
  double sum = 0;
  for (int l = 0; l < 8; ++l) sum += acc0[l] + acc1[l];
  for (; i < n; ++i) sum += (double)a[i] * (double)b[i];
  return sum;
}

// Runs body(task) for task in [0, n) on get_num_threads() workers taking tasks dynamically;
// init() builds each worker's scratch state passed to body.
// `work` (about the multiply-adds of the whole call) keeps small calls on the calling thread.
template <typename Init, typename Body>
void dynamic_for(int64_t n, int64_t work, Init init, Body body) {
  std::atomic<int64_t> next{0};
  const int64_t workers = work < (1 << 24) ? 1 : std::min<int64_t>(get_num_threads(), n);
  parallel_for(workers, 1, [&](int64_t, int64_t) {
    auto state = init();
    for (;;) {
      const int64_t task = next.fetch_add(1);
      if (task >= n) break;
      body(task, state);
    }
  });
}

template <typename S>
S scale_of(int scale_mode, int64_t len) {
  const S n = static_cast<S>(len);
  return scale_mode == 0 ? S(1) / (n * n) : S(1) / n;
}

template <typename S>
void forward_impl(const S* x, const int64_t* lengths, S* y, S* norm, int64_t B, int64_t D,
                  int64_t T, int scale_mode, bool center, S eps, bool normalize) {
  using M = Micro<S>;
  constexpr int MR = M::MR, NR = M::NR;
  const int64_t nT = (D + kTB - 1) / kTB;
  const int64_t DD = D * D;
  std::vector<double> partial(B * nT, 0.0);

  // Work item: one video (when there are enough of them to keep the workers busy) or one row
  // of tiles (b, I; the tiles (I, J >= I)). Each worker keeps the whole video packed in the NR
  // layout [row group][t][NR] and repacks it only when its video changes (so with whole videos
  // as items every video is packed once); both operands of the micro-kernel read that one
  // layout (B: NR rows, A: MR rows at stride NR).
  struct Scratch {
    std::vector<S> bp, ct, mean;
    int64_t packed_b = -1;
  };
  const bool whole = B >= 4 * get_num_threads();
  const int64_t items_per_b = whole ? 1 : nT, rows_per_item = whole ? nT : 1;
  dynamic_for(
      B * items_per_b, B * D * D * T / 2,
      [&] {
        return Scratch{std::vector<S>(nT * kTB * T),
                       std::vector<S>(kTB * kTB), std::vector<S>(nT * kTB, S(0)), -1};
      },
      [&](int64_t task, Scratch& sc) {
        const int64_t b = task / items_per_b, I0 = (task % items_per_b) * rows_per_item;
        const int64_t len = lengths ? lengths[b] : T;
        const S* xb = x + b * D * T;
        S* bp = sc.bp.data();
        S* ct = sc.ct.data();
        const S* mean = center ? sc.mean.data() : nullptr;
        if (sc.packed_b != b) {
          if (center)
            for (int64_t r = 0; r < D; ++r) sc.mean[r] = row_mean(xb + r * T, len);
          for (int64_t J = 0; J < nT; ++J)
            pack_rows(xb, D, T, J * kTB, len, mean ? mean + J * kTB : nullptr, NR,
                      bp + J * kTB * len);
          sc.packed_b = b;
        }
        for (int64_t I = I0; I < std::min(nT, I0 + rows_per_item); ++I) {
          const int64_t i0 = I * kTB, ri = std::min<int64_t>(kTB, D - i0);
          const S s = scale_of<S>(scale_mode, len);
          const S e = eps;
          S* yb = y + b * DD;
          double total = 0;
          for (int64_t J = I; J < nT; ++J) {
            const int64_t j0 = J * kTB, rj = std::min<int64_t>(kTB, D - j0);
            const bool diag = I == J;
            const S* bJ = bp + J * kTB * len;
            const S* aI = bp + I * kTB * len;  // the I rows, read MR at a time (stride NR)
            for (int64_t k0 = 0; k0 < len; k0 += kKC) {
              const int64_t kc = std::min(kKC, len - k0);
              for (int64_t h = 0; h * NR < rj; ++h) {
                for (int64_t g = 0; g * MR < ri; ++g) {
                  if (diag && g * MR >= (h + 1) * NR) break;  // block entirely below the diagonal
                  M::run(kc, aI + (g * MR / NR) * len * NR + (g * MR) % NR + k0 * NR, NR,
                         bJ + h * len * NR + k0 * NR, ct + g * MR * kTB + h * NR, kTB, k0 > 0);
                }
              }
            }
            // epilogue: scale, signed sqrt, both mirror tiles, sum of squares
            for (int64_t i = 0; i < ri; ++i) {
              S* __restrict ci = ct + i * kTB;
              S* __restrict yrow = yb + (i0 + i) * D + j0;
              const int64_t jb = diag ? i : 0;
              using V = typename M::V;
              constexpr int L = M::L;
              V vss = V{};
              int64_t j = jb;
              for (; j + L <= rj; j += L) {
                const V h = vsigned_sqrt(M::load(ci + j) * s, e);
                M::store(ci + j, h);
                M::store(yrow + j, h);
                vss += h * h;
              }
              S rowss = 0;
              for (; j < rj; ++j) {
                const S h = signed_sqrt(ci[j] * s, e);
                ci[j] = h;
                yrow[j] = h;
                rowss += h * h;
              }
              for (int l = 0; l < L; ++l) rowss += vss[l];
              double t = 2.0 * (double)rowss;
              if (diag) t -= (double)ci[i] * (double)ci[i];
              total += t;
            }
            for (int64_t j = 0; j < rj; ++j) {
              S* yrow = yb + (j0 + j) * D + i0;
              const int64_t ie = diag ? j : ri;
              for (int64_t i = 0; i < ie; ++i) yrow[i] = ct[i * kTB + j];
            }
          }
          partial[b * nT + I] = total;
        }
      });

  // norms, then the scale pass
  std::vector<S> den(B);
  for (int64_t b = 0; b < B; ++b) {
    double ss = 0;
    for (int64_t p = 0; p < nT; ++p) ss += partial[b * nT + p];
    norm[b] = static_cast<S>(std::sqrt(ss));
    den[b] = std::max(norm[b], S(1e-12));
  }
  if (!normalize) return;
  const int64_t chunk = 1 << 15, nch = (DD + chunk - 1) / chunk;
  parallel_for(B * nch, 8, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b = c / nch, lo = (c % nch) * chunk, hi = std::min(DD, lo + chunk);
      S* yb = y + b * DD;
      const S d = den[b];
      for (int64_t i = lo; i < hi; ++i) yb[i] = yb[i] / d;
    }
  });
}

template <typename S>
void backward_impl(const S* x, const int64_t* lengths, const S* y, const S* norm, const S* dy,
                   S* dx, int64_t B, int64_t D, int64_t T, int scale_mode, bool center,
                   bool normalize) {
  using M = Micro<S>;
  constexpr int MR = M::MR, NR = M::NR;
  const int64_t DD = D * D;
  const int64_t nT = (D + kTB - 1) / kTB;

  // per video: <y, dy> and the channel means
  std::vector<double> dot(B, 0.0);
  std::vector<S> means(center ? B * D : 0);
  parallel_for(B, std::max<int64_t>(1, (1 << 18) / (D * D + D * T)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t len = lengths ? lengths[b] : T;
      if (normalize) {
        dot[b] = dot_f64(y + b * DD, dy + b * DD, DD);
      }
      if (center)
        for (int64_t k = 0; k < D; ++k) means[b * D + k] = row_mean(x + (b * D + k) * T, len);
    }
  });

  // Work item: the rows [i0, i0 + RB) of one video's dX, RB = all rows (whole videos, when there
  // are enough videos to keep the workers busy: every X strip is then packed once) or kTB.
  struct Scratch {
    std::vector<S> ap, bs, cs, qr, qc;
  };
  const bool whole = B >= 4 * get_num_threads();
  const int64_t items_per_b = whole ? 1 : nT, RB = whole ? nT * kTB : kTB;
  dynamic_for(
      B * items_per_b, B * D * D * T,
      [&] {
        return Scratch{std::vector<S>(RB * D), std::vector<S>(D * NR), std::vector<S>(RB * NR),
                       std::vector<S>(RB * D), std::vector<S>(D * RB)};
      },
      [&](int64_t task, Scratch& sc) {
        const int64_t b = task / items_per_b;
        const int64_t len = lengths ? lengths[b] : T;
        const int64_t i0 = (task % items_per_b) * RB, ri = std::min<int64_t>(RB, D - i0);
        const S* xb = x + b * D * T;
        const S* yb = y + b * DD;
        const S* db = dy + b * DD;
        const S* mb = center ? means.data() + b * D : nullptr;
        // y = ghat / den; dL/dghat = (dy - y <y,dy>) / den (the projection only when the norm was
        // not clamped); dL/dg = dL/dghat * 0.5 / |ghat| (0 where ghat == 0, i.e. g == 0).
        const S nb = norm[b];
        const S den = normalize ? std::max(nb, S(1e-12)) : S(1);
        const S proj = (normalize && nb >= S(1e-12)) ? static_cast<S>(dot[b]) : S(0);
        const S coef = scale_of<S>(scale_mode, len) * S(0.5) / (den * den);
        // q(i, k) = (dy - y * proj) / |y|, 0 where y == 0; branch-free so that it vectorises
        auto q_row = [proj](const S* __restrict yr, const S* __restrict dr, S* __restrict out,
                            int64_t n) {
          for (int64_t k = 0; k < n; ++k) {
            const S yv = yr[k];
            const S d = yv != S(0) ? std::abs(yv) : S(1);
            const S v = (dr[k] - yv * proj) / d;
            out[k] = yv != S(0) ? v : S(0);
          }
        };
        S* qr = sc.qr.data();  // [RB][D]: q(i, k) for the block's rows i
        S* qc = sc.qc.data();  // [D][RB]: q(k, i) for the block's columns i
        for (int64_t ii = 0; ii < ri; ++ii)
          q_row(yb + (i0 + ii) * D, db + (i0 + ii) * D, qr + ii * D, D);
        for (int64_t k = 0; k < D; ++k) q_row(yb + k * D + i0, db + k * D + i0, qc + k * RB, ri);
        // A panels [g][k][MR] of Gs[i, k] = coef * (q(i, k) + q(k, i)); rows i >= D are zero
        S* ap = sc.ap.data();
        for (int64_t g = 0; g * MR < ri; ++g) {
          S* ag = ap + g * D * MR;
          for (int64_t k = 0; k < D; ++k) {
            for (int r = 0; r < MR; ++r) {
              const int64_t ii = g * MR + r;
              ag[k * MR + r] = ii < ri ? coef * (qr[ii * D + k] + qc[k * RB + ii]) : S(0);
            }
          }
        }
        // dX[i, t] = sum_k Gs[i, k] Xc[k, t], one NR-wide strip of t at a time
        S* bs = sc.bs.data();
        S* cs = sc.cs.data();
        for (int64_t t0 = 0; t0 < len; t0 += NR) {
          const int64_t w = std::min<int64_t>(NR, len - t0);
          for (int64_t k = 0; k < D; ++k) {
            const S* xr = xb + k * T + t0;
            const S m = mb ? mb[k] : S(0);
            S* dst = bs + k * NR;
            for (int64_t c = 0; c < w; ++c) dst[c] = xr[c] - m;
            for (int64_t c = w; c < NR; ++c) dst[c] = S(0);
          }
          for (int64_t k0 = 0; k0 < D; k0 += kKC) {
            const int64_t kc = std::min(kKC, D - k0);
            for (int64_t g = 0; g * MR < ri; ++g)
              M::run(kc, ap + g * D * MR + k0 * MR, MR, bs + k0 * NR, cs + g * MR * NR, NR,
                     k0 > 0);
          }
          for (int64_t ii = 0; ii < ri; ++ii) {
            S* dr = dx + (b * D + i0 + ii) * T + t0;
            const S* cr = cs + ii * NR;
            for (int64_t c = 0; c < w; ++c) dr[c] = cr[c];
          }
        }
        for (int64_t ii = 0; ii < ri; ++ii) {
          S* dr = dx + (b * D + i0 + ii) * T;
          if (center) {  // gradient through the mean subtraction
            const S m = row_mean(dr, len);
            for (int64_t t = 0; t < len; ++t) dr[t] -= m;
          }
          for (int64_t t = len; t < T; ++t) dr[t] = S(0);
        }
      });
}

}  // namespace

void second_order_pool_forward_cpu(ptr_t x, ptr_t lengths, ptr_t y, ptr_t norm, int64_t B,
                                   int64_t D, int64_t T, int scale_mode, bool center, double eps,
                                   bool normalize, int dtype) {
  if (B <= 0 || D <= 0 || T <= 0) return;
  SAL_DISPATCH_FLOAT(dtype, "second_order_pool", [&] {
    forward_impl<scalar_t>(as_ptr<const scalar_t>(x), as_ptr<const int64_t>(lengths),
                           as_ptr<scalar_t>(y), as_ptr<scalar_t>(norm), B, D, T, scale_mode, center,
                           static_cast<scalar_t>(eps), normalize);
  });
}

void second_order_pool_backward_cpu(ptr_t x, ptr_t lengths, ptr_t y, ptr_t norm, ptr_t dy,
                                    ptr_t dx, int64_t B, int64_t D, int64_t T, int scale_mode,
                                    bool center, bool normalize, int dtype) {
  if (B <= 0 || D <= 0 || T <= 0) return;
  SAL_DISPATCH_FLOAT(dtype, "second_order_pool", [&] {
    backward_impl<scalar_t>(as_ptr<const scalar_t>(x), as_ptr<const int64_t>(lengths),
                            as_ptr<const scalar_t>(y), as_ptr<const scalar_t>(norm),
                            as_ptr<const scalar_t>(dy), as_ptr<scalar_t>(dx), B, D, T, scale_mode,
                            center, normalize);
  });
}

}  // namespace sal
