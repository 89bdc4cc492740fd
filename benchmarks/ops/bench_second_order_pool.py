"""second_order_pool: kernel vs the pure-torch reference (bmm + elementwise + F.normalize).

GFLOP/s uses the full-GEMM convention: 2*B*D^2*T per forward (what a plain bmm does; the
kernel does about half of it thanks to symmetry), 3x that for forward+backward (the
reference's autograd runs three bmm-sized products).
"""
import torch

from harness import Case
from sal_ext.ops import second_order_pool


def cases(device, quick):
    B, D, T = (4, 128, 100) if quick else (16, 512, 750)
    x = torch.randn(B, D, T, device=device).relu_()
    xg = x.clone().requires_grad_(True)
    dy = torch.randn(B, D * D, device=device)
    flops = 2.0 * B * D * D * T

    def fwd(backend):
        return lambda: second_order_pool(x, backend=backend)

    def fwd_bwd(backend):
        def run():
            xg.grad = None
            second_order_pool(xg, backend=backend).backward(dy)
        return run

    shape = f"B={B} D={D} T={T} f32"
    return [
        Case("second_order_pool fwd", shape, {"kernel": fwd("kernel"), "torch": fwd("torch")},
             extra={"GFLOP/s": flops}),
        Case("second_order_pool fwd+bwd", shape,
             {"kernel": fwd_bwd("kernel"), "torch": fwd_bwd("torch")},
             extra={"GFLOP/s": 3 * flops}),
    ]
