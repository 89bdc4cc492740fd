// topk_mil / topk_mask: per (b, c) column of score [B, T, C] (time stride C), select the k
// time steps with the highest score among the first n_b = lengths[b] (or T) steps. Order:
// higher score first, ties by lower time index (a strict total order, so the selection and the
// index output are deterministic on every backend; -0.0 equals +0.0; NaN is rejected by the
// Python front).
//
//   k_b      = kvec ? kvec[b] : kmax           (kvec: int64 [B], lengths: int64 [B]; 0 = absent)
//   pooled   [B, C]       = mean of value[b, t, c] over the selected t           (topk_mil)
//   indices  [B, kmax, C] = the selected t in descending order, rows >= k_b = -1  (topk_mil)
//   mask     [B, T, C]    = 1 at the selected t, 0 elsewhere (score's dtype)      (topk_mask)
//
// The caller guarantees 1 <= k_b <= n_b <= T and k_b <= kmax.
#pragma once
#include "common.h"

namespace sal {

// The CPU kernels also count the NaN scores (all B*T*C of them) while gathering and return
// that count (outputs are unspecified when it is not 0: the Python front then raises).
int64_t topk_mil_cpu(ptr_t score, ptr_t value, ptr_t kvec, ptr_t lengths, ptr_t pooled,
                     ptr_t indices, int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype);
int64_t topk_mask_cpu(ptr_t score, ptr_t kvec, ptr_t lengths, ptr_t mask, int64_t B, int64_t T,
                      int64_t C, int64_t kmax, int dtype);

// Backward of topk_mil w.r.t. value: grad_value [B, T, C] (fully written) = grad_pooled[b, c]
// / k_b at t = indices[b, j, c] (j < kmax, t >= 0), 0 elsewhere.
void topk_mil_backward_cpu(ptr_t grad_pooled, ptr_t indices, ptr_t kvec, ptr_t grad_value,
                           int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype);

#ifdef SAL_EXT_WITH_CUDA
// True when a column (T keys + kmax selected indices) does not fit the kernel's shared memory:
// then the caller passes global workspaces ws_keys ([B*C, T] of 4-byte keys for float32,
// 8-byte keys for float64) and ws_sel (int32 [B*C, kmax]); otherwise both are 0.
bool topk_needs_workspace_cuda(int64_t T, int64_t kmax, int dtype);
// nan_flag: device int32 [1], zeroed here (stream-ordered) and set to 1 by the kernel when any
// of the B*T*C scores is NaN (outputs are then unspecified: the Python front raises).
void topk_mil_cuda(ptr_t score, ptr_t value, ptr_t kvec, ptr_t lengths, ptr_t pooled,
                   ptr_t indices, int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype,
                   ptr_t ws_keys, ptr_t ws_sel, ptr_t nan_flag, int device, ptr_t stream);
void topk_mask_cuda(ptr_t score, ptr_t kvec, ptr_t lengths, ptr_t mask, int64_t B, int64_t T,
                    int64_t C, int64_t kmax, int dtype, ptr_t ws_keys, ptr_t ws_sel,
                    ptr_t nan_flag, int device, ptr_t stream);
void topk_mil_backward_cuda(ptr_t grad_pooled, ptr_t indices, ptr_t kvec, ptr_t grad_value,
                            int64_t B, int64_t T, int64_t C, int64_t kmax, int dtype, int device,
                            ptr_t stream);
#endif

}  // namespace sal
