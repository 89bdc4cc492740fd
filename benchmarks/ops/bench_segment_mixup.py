import torch

from harness import Case
from sal_ext.ops import mix_targets, segment_mixup


def cases(device, quick):
    B, D, T = (4, 256, 100) if quick else (16, 1024, 750)
    x = torch.randn(B, D, T, device=device)
    g = (torch.rand(B, 1, T, device=device) > 0.5).float()
    m = torch.rand(B, 1, T, device=device)
    moved = 3 * x.numel() * x.element_size()  # read x twice (own + rolled row), write once
    return [
        Case("segment_mixup fwd", f"B={B} D={D} T={T}",
             {"kernel": lambda: segment_mixup(x, backend="kernel"),
              "torch": lambda: segment_mixup(x, backend="torch")},
             extra={"GB/s": moved}),
        Case("mix_targets", f"B={B} T={T}",
             {"kernel": lambda: mix_targets(g, m, backend="kernel"),
              "torch": lambda: mix_targets(g, m, backend="torch")}),
    ]
