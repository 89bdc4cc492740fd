// second_order_pool: y[b] = normalize(ssqrt(s_b * X_b X_b^T)) for X_b = x[b] (D x T), where
//   X_b is restricted to its first lengths[b] steps (lengths == 0: all T) and, if `center`,
//   mean-centred over those steps; s_b = 1/n^2 (scale_mode 0, "sal") or 1/n (1, "mean"),
//   n = lengths[b] or T; ssqrt(g) = sign(g) * sqrt(|g| + eps); normalize: y / max(||y||, 1e-12).
// Forward writes y [B, D*D] and norm [B] (the L2 norm of the signed sqrt row, before clamping;
// the backward needs it). Backward: dx [B, D, T] from dy [B, D*D] and the saved y and norm.
// lengths: int64 [B] pointer or 0 (none); the Python front has checked 1 <= lengths <= T.
#pragma once
#include "common.h"

namespace sal {

void second_order_pool_forward_cpu(ptr_t x, ptr_t lengths, ptr_t y, ptr_t norm, int64_t B,
                                   int64_t D, int64_t T, int scale_mode, bool center, double eps,
                                   bool normalize, int dtype);
void second_order_pool_backward_cpu(ptr_t x, ptr_t lengths, ptr_t y, ptr_t norm, ptr_t dy,
                                    ptr_t dx, int64_t B, int64_t D, int64_t T, int scale_mode,
                                    bool center, bool normalize, int dtype);

#ifdef SAL_EXT_WITH_CUDA
// Workspaces (allocated by the caller): mean [B*D] of x's dtype (used only when center),
// acc [B] float64 (zero-filled by the callee), sym [B*D*D] of x's dtype (backward only).
void second_order_pool_forward_cuda(ptr_t x, ptr_t lengths, ptr_t y, ptr_t norm, ptr_t mean,
                                    ptr_t acc, int64_t B, int64_t D, int64_t T, int scale_mode,
                                    bool center, double eps, bool normalize, int dtype,
                                    int device, ptr_t stream);
void second_order_pool_backward_cuda(ptr_t x, ptr_t lengths, ptr_t y, ptr_t norm, ptr_t dy,
                                     ptr_t dx, ptr_t mean, ptr_t acc, ptr_t sym, int64_t B,
                                     int64_t D, int64_t T, int scale_mode, bool center,
                                     bool normalize, int dtype, int device, ptr_t stream);
#endif

}  // namespace sal
