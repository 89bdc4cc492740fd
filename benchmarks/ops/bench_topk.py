import torch

from harness import Case
from sal_ext.ops import topk_mask, topk_mil


def _plain_topk(score, value, k):
    """What the reference code does: torch.topk over time, gather, mean."""
    idx = torch.topk(score, k, dim=1).indices
    return torch.gather(value, 1, idx).mean(1), idx


def _plain_mask(score, k):
    idx = torch.topk(score, k, dim=1).indices
    return torch.zeros_like(score).scatter_(1, idx, 1.0)


def cases(device, quick):
    B, T, C = (4, 200, 20) if quick else (16, 750, 20)
    k = max(1, T // 8)
    score = torch.rand(B, T, C, device=device)
    value = torch.randn(B, T, C, device=device, requires_grad=True)
    g = torch.randn(B, C, device=device)

    def fwd_bwd(fn):
        def run():
            pooled = fn()[0]
            (grad,) = torch.autograd.grad(pooled, value, g)
            return grad
        return run

    def fwd(fn):
        def run():
            with torch.no_grad():
                return fn()
        return run

    mil = {
        "kernel": lambda: topk_mil(score, value, k=k, backend="kernel"),
        "torch": lambda: topk_mil(score, value, k=k, backend="torch"),
        "torch.topk": lambda: _plain_topk(score, value, k),
    }
    act = torch.rand(B, T, 1, device=device)
    km = min(T, k + 17)
    return [
        Case("topk_mil fwd", f"B={B} T={T} C={C} k={k}", {n: fwd(f) for n, f in mil.items()}),
        Case("topk_mil fwd+bwd", f"B={B} T={T} C={C} k={k}", {n: fwd_bwd(f) for n, f in mil.items()}),
        Case("topk_mask", f"B={B} T={T} C=1 k={km}",
             {"kernel": lambda: topk_mask(act, km, backend="kernel"),
              "torch": lambda: topk_mask(act, km, backend="torch"),
              "torch.topk": lambda: _plain_mask(act, km)}),
    ]
