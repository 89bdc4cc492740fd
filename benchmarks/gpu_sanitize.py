"""Runs every op's CUDA kernel once on small, awkward inputs (for compute-sanitizer)."""
import torch

from sal_ext import ops

dev = torch.device("cuda")
torch.manual_seed(0)
for B, D, T in [(1, 1, 1), (2, 17, 33), (3, 65, 130)]:
    x = torch.rand(B, D, T, device=dev, dtype=torch.float64, requires_grad=True)
    ops.second_order_pool(x, backend="kernel").sum().backward()
    ops.segment_mixup(x, backend="kernel").sum().backward()
for B, T, C in [(1, 1, 1), (2, 93, 3), (2, 1500, 20)]:
    s = torch.rand(B, T, C, device=dev)
    ops.topk_mil(s, k=max(1, T // 8), backend="kernel")
    ops.topk_mask(s, k=max(1, T // 8), backend="kernel")
for N in [0, 1, 100, 3000]:
    st = torch.rand(N, device=dev) * 100
    seg = torch.stack([st, st + torch.rand(N, device=dev) * 10], 1)
    sc = torch.rand(N, device=dev)
    lab = torch.randint(0, 5, (N,), device=dev)
    for method in ("hard", "linear", "gaussian", "sal"):
        ops.nms_1d(seg, sc, lab, iou_threshold=0.4, method=method, backend="kernel")
    ops.segment_iou(seg, seg, backend="kernel")
torch.cuda.synchronize()
print("sanitize script done")
