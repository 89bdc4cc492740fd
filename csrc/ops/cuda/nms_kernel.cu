// CUDA nms_1d. The caller (sal_ext/ops/nms.py) sorts on the device with torch (label asc, score
// desc, ties per method) and passes group offsets; every kernel here works on one group's
// contiguous range [offsets[g], offsets[g+1]) of the sorted arrays. All arithmetic in double.
//   hard:            IoU bitmask (64 x 64 tiles, as torchvision's nms_kernel.cu, per group),
//                    then one block per group scans the mask sequentially;
//                    without a mask workspace (huge groups) the greedy block kernel below.
//   sal:             greedy block kernel: one block per group, sequential over kept proposals,
//                    block-parallel over the rest; suppressed ones are compacted in order with
//                    a warp-ballot block scan.
//   linear/gaussian: one block per group, block argmax after every decay.
#include <climits>
#include <cmath>

#include "cuda_common.h"
#include "ops/nms.h"

namespace sal {
namespace {

constexpr int kMaskThreads = 64;  // one mask tile = 64 rows x 64 columns
constexpr int kScanThreads = 128;
constexpr int kThreads = 256;     // greedy / soft block kernels (multiple of 32)
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ double seg_len(double s, double e, bool plus_one) {
  return plus_one ? (e - s) + 1.0 : e - s;
}

// Same operation order as the CPU kernel (and the SAL reference when plus_one).
__device__ __forceinline__ double iou_1d(double s1, double e1, double l1, double s2, double e2,
                                         double l2, bool plus_one) {
  const double lo = fmax(s1, s2), hi = fmin(e1, e2);
  if (plus_one) {
    const double inter = fmax(0.0, (hi - lo) + 1.0);
    return inter / ((l1 + l2) - inter);
  }
  const double inter = fmax(0.0, hi - lo);
  const double uni = (l1 + l2) - inter;
  return uni > 0.0 ? inter / uni : 0.0;
}

// ---- hard NMS: IoU bitmask -------------------------------------------------------------------
// blockIdx.x is a tile id over all groups (group g owns tiles [tile_offsets[g], tile_offsets[g+1])
// = nb*nb tiles, nb = ceil(n/64)); tile (rb, cb) with cb >= rb writes mask word
// mask[mask_offsets[g] + i*nb + cb] for its rows i: bit k set when IoU(i, cb*64+k) > thr and
// cb*64+k > i. Tiles below the diagonal are never read by the scan and write nothing.
template <typename scalar_t>
__global__ void __launch_bounds__(kMaskThreads)
iou_mask_kernel(const scalar_t* __restrict__ seg, const int64_t* __restrict__ offsets,
                const int64_t* __restrict__ tile_offsets, const int64_t* __restrict__ mask_offsets,
                int64_t G, double thr, bool plus_one, unsigned long long* __restrict__ mask) {
  const int64_t tile = blockIdx.x;
  int64_t lo = 0, hi = G - 1;  // largest g with tile_offsets[g] <= tile
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (tile_offsets[mid] <= tile) lo = mid; else hi = mid - 1;
  }
  const int64_t g = lo;
  const int64_t off = offsets[g], n = offsets[g + 1] - off;
  const int64_t nb = (n + kMaskThreads - 1) / kMaskThreads;
  const int64_t t = tile - tile_offsets[g];
  const int64_t rb = t / nb, cb = t - rb * nb;
  if (cb < rb) return;  // uniform over the block
  const int row_size = (int)min(n - rb * kMaskThreads, (int64_t)kMaskThreads);
  const int col_size = (int)min(n - cb * kMaskThreads, (int64_t)kMaskThreads);
  __shared__ double cs[kMaskThreads], ce[kMaskThreads], cl[kMaskThreads];
  if ((int)threadIdx.x < col_size) {
    const int64_t q = off + cb * kMaskThreads + threadIdx.x;
    const double s = (double)seg[2 * q], e = (double)seg[2 * q + 1];
    cs[threadIdx.x] = s;
    ce[threadIdx.x] = e;
    cl[threadIdx.x] = seg_len(s, e, plus_one);
  }
  __syncthreads();
  if ((int)threadIdx.x < row_size) {
    const int64_t i = rb * kMaskThreads + threadIdx.x;  // local row
    const double s = (double)seg[2 * (off + i)], e = (double)seg[2 * (off + i) + 1];
    const double l = seg_len(s, e, plus_one);
    unsigned long long bits = 0;
    const int start = (rb == cb) ? (int)threadIdx.x + 1 : 0;
    for (int k = start; k < col_size; ++k) {
      if (iou_1d(s, e, l, cs[k], ce[k], cl[k], plus_one) > thr) bits |= 1ULL << k;
    }
    mask[mask_offsets[g] + i * nb + cb] = bits;
  }
}

// One block per group: sequential greedy scan over the group's mask rows.
template <typename scalar_t>
__global__ void __launch_bounds__(kScanThreads)
hard_scan_kernel(const scalar_t* __restrict__ sc, const int64_t* __restrict__ sorted_idx,
                 const int64_t* __restrict__ offsets, const unsigned long long* __restrict__ mask,
                 const int64_t* __restrict__ mask_offsets, double min_score, int64_t max_keep,
                 int64_t* __restrict__ out_idx, scalar_t* __restrict__ out_sc,
                 int64_t* __restrict__ counts) {
  SAL_EXTERN_SHARED(unsigned long long, removed);  // nb words of this group
  const int64_t g = blockIdx.x;
  const int64_t off = offsets[g], n = offsets[g + 1] - off;
  const int64_t nb = (n + kMaskThreads - 1) / kMaskThreads;
  for (int64_t w = threadIdx.x; w < nb; w += blockDim.x) removed[w] = 0ULL;
  __syncthreads();
  const unsigned long long* m = mask + mask_offsets[g];
  const int64_t limit = max_keep < 0 ? n : min(n, max_keep);
  int64_t count = 0;  // identical in every thread
  for (int64_t i = 0; i < n && count < limit; ++i) {
    if ((removed[i >> 6] >> (i & 63)) & 1ULL) continue;  // same value in every thread
    const scalar_t s = sc[off + i];
    if ((double)s < min_score) break;  // sorted by descending score: the rest is below too
    if (threadIdx.x == 0) {
      out_idx[off + count] = sorted_idx[off + i];
      out_sc[off + count] = s;
    }
    ++count;
    __syncthreads();  // every thread has read removed[i >> 6] before it changes
    const unsigned long long* row = m + i * nb;
    for (int64_t w = (i >> 6) + threadIdx.x; w < nb; w += blockDim.x) removed[w] |= row[w];
    __syncthreads();
  }
  if (threadIdx.x == 0) counts[g] = count;
}

// ---- greedy block kernel: sal (one-pass decay) and hard without a mask --------------------------
template <typename scalar_t, bool kSal>
__global__ void __launch_bounds__(kThreads)
greedy_block_kernel(const scalar_t* __restrict__ seg, const scalar_t* __restrict__ sc,
                    const int64_t* __restrict__ sorted_idx, const int64_t* __restrict__ offsets,
                    double thr, double sigma, double min_score, int64_t max_keep, bool plus_one,
                    int64_t* __restrict__ out_idx, scalar_t* __restrict__ out_sc,
                    int64_t* __restrict__ counts, int64_t* __restrict__ ws_pos,
                    double* __restrict__ ws_score, double* __restrict__ out_sc64,
                    int* __restrict__ ws_state) {
  __shared__ int warp_counts[kWarps];
  const int64_t g = blockIdx.x;
  const int64_t off = offsets[g], n = offsets[g + 1] - off;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int* state = ws_state + off;  // 0: in the queue; 1: kept or suppressed
  for (int64_t j = tid; j < n; j += kThreads) state[j] = 0;
  __syncthreads();
  // sal: the kernel runs to the end (the caller applies min_score / max_keep); hard stops early.
  const int64_t limit = (kSal || max_keep < 0) ? n : min(n, max_keep);
  int64_t K = 0, S = 0;  // kept / suppressed so far (identical in every thread)
  int64_t cur = 0;
  while (true) {
    while (cur < n && state[cur] != 0) ++cur;  // next proposal still in the queue
    if (cur >= n || K >= limit) break;
    const int64_t i = cur;
    const scalar_t si_score = sc[off + i];
    if (!kSal && (double)si_score < min_score) break;
    if (tid == 0) {
      out_idx[off + K] = sorted_idx[off + i];
      out_sc[off + K] = si_score;
      if (kSal) out_sc64[off + K] = (double)si_score;
    }
    ++K;
    const double s = (double)seg[2 * (off + i)], e = (double)seg[2 * (off + i) + 1];
    const double l = seg_len(s, e, plus_one);
    for (int64_t base = i + 1; base < n; base += kThreads) {  // uniform trip count
      const int64_t j = base + tid;
      bool hit = false;
      double v = 0.0;
      if (j < n && state[j] == 0) {
        const double s2 = (double)seg[2 * (off + j)], e2 = (double)seg[2 * (off + j) + 1];
        v = iou_1d(s, e, l, s2, e2, seg_len(s2, e2, plus_one), plus_one);
        hit = kSal ? (v >= thr) : (v > thr);
      }
      if (kSal) {
        // ordered compaction of this tile's suppressed proposals into ws_pos / ws_score
        const unsigned ballot = __ballot_sync(kFull, hit);
        if (lane == 0) warp_counts[warp] = __popc(ballot);
        __syncthreads();
        int before = 0, total = 0;
        for (int w = 0; w < kWarps; ++w) {
          const int c = warp_counts[w];
          if (w < warp) before += c;
          total += c;
        }
        if (hit) {
          const int64_t slot = off + S + before + __popc(ballot & ((1u << lane) - 1u));
          ws_pos[slot] = j;
          ws_score[slot] = (double)sc[off + j] * exp(-(v * v) / sigma);
          state[j] = 1;
        }
        S += total;
        __syncthreads();  // warp_counts is reused by the next tile
      } else if (hit) {
        state[j] = 1;
      }
    }
    cur = i + 1;
    __syncthreads();  // state writes visible before the next queue scan
  }
  if (kSal) {  // decayed ones after all kept ones, in the order they were suppressed
    for (int64_t q = tid; q < S; q += kThreads) {
      out_idx[off + K + q] = sorted_idx[off + ws_pos[off + q]];
      out_sc[off + K + q] = (scalar_t)ws_score[off + q];
      out_sc64[off + K + q] = ws_score[off + q];  // the caller filters min_score in double
    }
  }
  if (tid == 0) counts[g] = K + S;
}

// ---- iterative Soft-NMS: block argmax after every decay -----------------------------------------
// (value, input index, position); position < 0 = none. Higher value wins, then lower index.
__device__ __forceinline__ bool ranks_before(double v1, int64_t i1, int64_t p1, double v2,
                                             int64_t i2, int64_t p2) {
  if (p1 < 0) return false;
  if (p2 < 0) return true;
  return v1 > v2 || (v1 == v2 && i1 < i2);
}

__device__ __forceinline__ void warp_argmax(double& v, int64_t& idx, int64_t& pos) {
  for (int o = 16; o > 0; o >>= 1) {
    const double v2 = __shfl_down_sync(kFull, v, o);
    const long long i2 = __shfl_down_sync(kFull, (long long)idx, o);
    const long long p2 = __shfl_down_sync(kFull, (long long)pos, o);
    if (ranks_before(v2, i2, p2, v, idx, pos)) {
      v = v2;
      idx = i2;
      pos = p2;
    }
  }
}

// Block-wide argmax; every thread gets the result. Contains __syncthreads (call uniformly).
__device__ void block_argmax(double& v, int64_t& idx, int64_t& pos) {
  __shared__ double sv[kWarps];
  __shared__ int64_t si[kWarps], sp[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  warp_argmax(v, idx, pos);
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = idx;
    sp[warp] = pos;
  }
  __syncthreads();
  if (warp == 0) {
    v = lane < kWarps ? sv[lane] : 0.0;
    idx = lane < kWarps ? si[lane] : 0;
    pos = lane < kWarps ? sp[lane] : -1;
    warp_argmax(v, idx, pos);
    __syncwarp();  // every lane has read its sv[lane] before lane 0 overwrites sv[0]
    if (lane == 0) {
      sv[0] = v;
      si[0] = idx;
      sp[0] = pos;
    }
  }
  __syncthreads();
  v = sv[0];
  idx = si[0];
  pos = sp[0];
  __syncthreads();  // everyone has read slot 0 before the next call overwrites it
}

// Thread t owns positions t, t + kThreads, ... of its group: only the owner touches cur / state.
template <typename scalar_t, bool kGauss>
__global__ void __launch_bounds__(kThreads)
soft_block_kernel(const scalar_t* __restrict__ seg, const scalar_t* __restrict__ sc,
                  const int64_t* __restrict__ sorted_idx, const int64_t* __restrict__ offsets,
                  double thr, double sigma, double min_score, int64_t max_keep, bool plus_one,
                  int64_t* __restrict__ out_idx, scalar_t* __restrict__ out_sc,
                  int64_t* __restrict__ counts, double* __restrict__ ws_score,
                  int* __restrict__ ws_state) {
  const int64_t g = blockIdx.x;
  const int64_t off = offsets[g], n = offsets[g + 1] - off;
  const int tid = threadIdx.x;
  double* cur = ws_score + off;
  int* state = ws_state + off;  // 0: alive; 1: selected or dropped
  double bv = 0.0;
  int64_t bi = 0, bp = -1;
  for (int64_t j = tid; j < n; j += kThreads) {
    const double c = (double)sc[off + j];
    cur[j] = c;
    const bool alive = c >= min_score;
    state[j] = alive ? 0 : 1;
    const int64_t ij = sorted_idx[off + j];
    if (alive && ranks_before(c, ij, j, bv, bi, bp)) {
      bv = c;
      bi = ij;
      bp = j;
    }
  }
  block_argmax(bv, bi, bp);
  const int64_t limit = max_keep < 0 ? n : min(n, max_keep);
  int64_t count = 0;
  while (bp >= 0 && count < limit) {  // bp, count identical in every thread
    const int64_t i = bp;
    if (tid == 0) {
      out_idx[off + count] = bi;
      out_sc[off + count] = (scalar_t)bv;
    }
    ++count;
    const double s = (double)seg[2 * (off + i)], e = (double)seg[2 * (off + i) + 1];
    const double l = seg_len(s, e, plus_one);
    bv = 0.0;
    bi = 0;
    bp = -1;
    for (int64_t j = tid; j < n; j += kThreads) {
      if (state[j] != 0) continue;
      if (j == i) {
        state[j] = 1;
        continue;
      }
      const double s2 = (double)seg[2 * (off + j)], e2 = (double)seg[2 * (off + j) + 1];
      const double v = iou_1d(s, e, l, s2, e2, seg_len(s2, e2, plus_one), plus_one);
      double c = cur[j];
      if (kGauss) {
        if (v > 0.0) c *= exp(-(v * v) / sigma);
      } else if (v > thr) {
        c *= (1.0 - v);
      }
      cur[j] = c;
      if (c < min_score) {
        state[j] = 1;
        continue;
      }
      const int64_t ij = sorted_idx[off + j];
      if (ranks_before(c, ij, j, bv, bi, bp)) {
        bv = c;
        bi = ij;
        bp = j;
      }
    }
    block_argmax(bv, bi, bp);
  }
  if (tid == 0) counts[g] = count;
}

}  // namespace

void nms_1d_cuda(ptr_t sorted_segments, ptr_t sorted_scores, ptr_t sorted_idx, ptr_t offsets,
                 int64_t G, int64_t N, int64_t max_group, int method, double iou_threshold,
                 double sigma, double min_score, int64_t max_keep, bool plus_one, ptr_t out_idx,
                 ptr_t out_scores, ptr_t counts, ptr_t ws_pos, ptr_t ws_score, ptr_t ws_state,
                 ptr_t mask, ptr_t mask_offsets, ptr_t tile_offsets, int64_t total_tiles,
                 int dtype, int device, ptr_t stream) {
  const char* op = "nms_1d";
  if (method < kNmsHard || method > kNmsSal) fail(op, "unknown method code " + std::to_string(method));
  if (N <= 0 || G <= 0) return;
  if (G > INT_MAX) fail(op, "too many groups for one launch");
  DeviceGuard device_guard(device, op);
  cudaStream_t st = as_stream(stream);
  const int64_t* off = as_ptr<const int64_t>(offsets);
  const int64_t* sidx = as_ptr<const int64_t>(sorted_idx);
  int64_t* oidx = as_ptr<int64_t>(out_idx);
  int64_t* cnt = as_ptr<int64_t>(counts);
  SAL_DISPATCH_FLOAT(dtype, op, [&] {
    const scalar_t* seg = as_ptr<const scalar_t>(sorted_segments);
    const scalar_t* sc = as_ptr<const scalar_t>(sorted_scores);
    scalar_t* osc = as_ptr<scalar_t>(out_scores);
    if (method == kNmsHard && mask != 0) {
      if (total_tiles <= 0 || total_tiles > INT_MAX) fail(op, "bad tile count");
      const int64_t max_nb = (max_group + kMaskThreads - 1) / kMaskThreads;
      const size_t shared = (size_t)max_nb * sizeof(unsigned long long);
      if (shared > 48 * 1024) fail(op, "group too large for the bitmask path");
      auto* m = as_ptr<unsigned long long>(mask);
      const int64_t* moff = as_ptr<const int64_t>(mask_offsets);
      SAL_LAUNCH((unsigned)total_tiles, kMaskThreads, 0, st, iou_mask_kernel<scalar_t>)(
          seg, off, as_ptr<const int64_t>(tile_offsets), moff, G, iou_threshold, plus_one, m);
      SAL_CUDA_CHECK_LAUNCH(op);
      SAL_LAUNCH((unsigned)G, kScanThreads, shared, st, hard_scan_kernel<scalar_t>)(
          sc, sidx, off, m, moff, min_score, max_keep, oidx, osc, cnt);
      SAL_CUDA_CHECK_LAUNCH(op);
    } else if (method == kNmsHard || method == kNmsSal) {
      // sal: ws_score holds 2N doubles, the second half the output scores in double
      double* sc64 = method == kNmsSal ? as_ptr<double>(ws_score) + N : nullptr;
      auto kernel = method == kNmsSal ? greedy_block_kernel<scalar_t, true>
                                      : greedy_block_kernel<scalar_t, false>;
      SAL_LAUNCH((unsigned)G, kThreads, 0, st, kernel)(seg, sc, sidx, off, iou_threshold, sigma,
                                               min_score, max_keep, plus_one, oidx, osc, cnt,
                                               as_ptr<int64_t>(ws_pos), as_ptr<double>(ws_score),
                                               sc64, as_ptr<int>(ws_state));
      SAL_CUDA_CHECK_LAUNCH(op);
    } else {
      auto kernel = method == kNmsGaussian ? soft_block_kernel<scalar_t, true>
                                           : soft_block_kernel<scalar_t, false>;
      SAL_LAUNCH((unsigned)G, kThreads, 0, st, kernel)(seg, sc, sidx, off, iou_threshold, sigma,
                                               min_score, max_keep, plus_one, oidx, osc, cnt,
                                               as_ptr<double>(ws_score), as_ptr<int>(ws_state));
      SAL_CUDA_CHECK_LAUNCH(op);
    }
  });
}

}  // namespace sal
