"""SAL training losses, as the reference train loops compute them.

THUMOS14: ``main_thumos.py`` + ``utils/loss.py`` of lizhilin-ustc/SAL; ActivityNet:
``main_SA13_1.py`` + ``core/loss_asl.py`` of lizhilin-ustc/SAL_ActivityNet. Per step
(T segments, k = T // r)::

    combined  = (softmax_C(cas) + a_flow + a_rgb) / 3          selection score only
    L_mil     = CE(mean of cas at the top-k of combined, y)     (ActivityNet: top T//4 of cas)
    L_bg      = KL(uniform || softmax(mean of cas_bg at top-k of softmax_C(cas_bg)))
    g         = 1 at the top-(k+17) steps of a (ActivityNet: top 40), for a video with >= 1
                label; times the confidence mask: top-(T//2) of sum_C relu(cas) (THUMOS only)
    m         = adaptive actionness mask (EMA of the max-softmax statistics, updated first)
    L_act     = GCE_mask(a_flow, g, m) + GCE_mask(a_rgb, g, m)
    L_mix     = same on a_*_aug with mix_targets(g, m)
    L_mc      = MSE(a_rgb, a_flow);  L_se = CE(sc) + CE(sc_flow) + CE(sc_rgb)
    total     = w_mil L_mil + w_mc L_mc + w_bg L_bg + w_act L_act + w_se L_se + w_mix L_mix
              (THUMOS 1, 5, 10, 1, 3, 1; ActivityNet 1, 20, 1, 1, 3, 1)

No gradient flows through any selection (top-k indices), the pseudo labels or the mask.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import ops


# -- elementary losses ------------------------------------------------------------------------
def soft_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Soft-label cross-entropy of the reference ``CrossEntropyLoss``.

    y = labels / sum(labels) + 1e-10 (per video; the 1e-10 is the reference's), then
    -mean_b sum_c y log_softmax(logits). A video without labels gives NaN, as there.
    """
    y = labels / labels.sum(dim=1, keepdim=True) + 1e-10
    return -(y * F.log_softmax(logits, dim=1)).sum(dim=1).mean(dim=0)


def gce_mask(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, q: float = 0.5) -> torch.Tensor:
    """Masked generalized cross-entropy (``GeneralizedCE_Mask``), p, g, m [B, T].

    mean_b sum_t (1 - (p + 1e-7)^q) / q * g m / (sum_t g m + 1e-7)
    + mean_b sum_t (1 - (1 - p + 1e-7)^q) / q * (1 - g) m / (sum_t (1 - g) m + 1e-7).
    """
    pos = g * m
    neg = (1 - g) * m
    first = (((1 - (p + 1e-7) ** q) / q) * pos).sum(1) / (pos.sum(1) + 1e-7)
    second = (((1 - (1 - p + 1e-7) ** q) / q) * neg).sum(1) / (neg.sum(1) + 1e-7)
    return first.mean() + second.mean()


def background_kl(cas_top_bg: torch.Tensor) -> torch.Tensor:
    """KL(uniform || softmax(cas_top_bg)), 'batchmean' (sum over classes, mean over videos).

    The reference takes log(softmax(.)); log_softmax is the same value, without underflow.
    """
    C = cas_top_bg.shape[1]
    target = torch.full_like(cas_top_bg, 1.0 / C)
    return F.kl_div(F.log_softmax(cas_top_bg, dim=1), target, reduction="batchmean")


def consistency_mse(a_rgb: torch.Tensor, a_flow: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the two actionness streams."""
    return F.mse_loss(a_rgb, a_flow)


# -- adaptive actionness mask ----------------------------------------------------------------
class AdaptiveActionnessMask(nn.Module):
    """Down-weights segments whose class confidence is below the running mean.

    p = max_C softmax(cas) per segment. ``update`` moves the running mean and unbiased
    variance of p over all B*T segments: mu <- m mu + (1 - m) mean(p), same for var
    (init mu = 1/C, var = 1). ``mask`` = exp(-min(p - mu, 0)^2 / (var_scale * var)).
    THUMOS: momentum 0.7, var_scale 2/4 = 0.5; ActivityNet: 0.99, 6.
    The statistics are float64 buffers (the reference keeps Python floats): they are in
    state_dict(), so checkpoints carry them. Under torchrun the mean and variance are those
    of every process's segments (``reduce_stats``), so every rank holds the same state.
    """

    def __init__(self, num_classes: int, momentum: float = 0.7, var_scale: float = 0.5):
        super().__init__()
        self.momentum = float(momentum)
        self.var_scale = float(var_scale)
        self.register_buffer("mu", torch.tensor(1.0 / num_classes, dtype=torch.float64))
        self.register_buffer("var", torch.tensor(1.0, dtype=torch.float64))
        # p [N] -> (mean, unbiased var) over every process's segments; set under torchrun
        # (sal_ext.distributed.global_mean_var), None: this batch's own statistics
        self.reduce_stats = None

    @torch.no_grad()
    def update(self, probs: torch.Tensor) -> None:
        """probs [N, C] (softmax over classes of every segment)."""
        p = probs.max(dim=-1).values
        m = self.momentum
        if self.reduce_stats is None:
            mean, var = p.mean().double(), torch.var(p, unbiased=True).double()
        else:
            mean, var = self.reduce_stats(p)
        self.mu.copy_(m * self.mu + (1 - m) * mean)
        self.var.copy_(m * self.var + (1 - m) * var)

    @torch.no_grad()
    def mask(self, probs: torch.Tensor) -> torch.Tensor:
        """probs [..., C] -> mask [...] in (0, 1], no gradient."""
        p = probs.max(dim=-1).values
        mu = self.mu.to(device=p.device, dtype=p.dtype)
        var = self.var.to(device=p.device, dtype=p.dtype)
        return torch.exp(-(torch.clamp(p - mu, max=0.0) ** 2) / (self.var_scale * var))

    @torch.no_grad()
    def forward(self, cas: torch.Tensor) -> torch.Tensor:
        """cas [B, T, C]: updates the statistics with softmax(cas), then returns mask [B, T]."""
        probs = torch.softmax(cas.detach(), dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        self.update(flat)
        return self.mask(flat).reshape(cas.shape[:2])


# -- pseudo labels ---------------------------------------------------------------------------
@torch.no_grad()
def pseudo_labels(a: torch.Tensor, cas: torch.Tensor, labels: torch.Tensor, *, topk: int,
                  confidence_topk: Optional[int], require_label: bool = True,
                  backend: Optional[str] = None) -> torch.Tensor:
    """Class-agnostic pseudo actionness labels g [B, T] in {0, 1}.

    g = 1 at the top-`topk` time steps of the fused actionness a [B, T] (for a video with at
    least one ground-truth class when require_label; the reference marks the same steps for
    every class, so the union is that set). With confidence_topk, g is multiplied by the
    confidence mask: the top-`confidence_topk` steps of sum_C relu(cas).
    k values above T are clipped to T.
    """
    B, T = a.shape
    g = ops.topk_mask(a.detach().reshape(B, T, 1).contiguous(), min(topk, T), backend=backend)[..., 0]
    if require_label:
        g = g * (labels.sum(dim=1, keepdim=True) > 0).to(g.dtype)
    if confidence_topk is not None:
        conf = torch.relu(cas.detach()).sum(dim=-1, keepdim=True).contiguous()
        g = g * ops.topk_mask(conf, min(confidence_topk, T), backend=backend)[..., 0]
    return g


# -- the whole objective ---------------------------------------------------------------------
LOSS_DEFAULTS = {
    "r": 8,                       # k = T // r
    "mil_select": "combined",     # "combined" (THUMOS) | "cas" (ActivityNet train loop)
    "mil_topk_divisor": None,     # None: r (THUMOS); 4 for ActivityNet
    "bg_topk_divisor": None,      # None: r; 8 for ActivityNet
    "select_weights": [1 / 3, 1 / 3, 1 / 3],   # combined = w0 softmax(cas) + w1 a_rgb + w2 a_flow
    "pseudo_topk": None,          # None: k + pseudo_extra (THUMOS); 40 for ActivityNet
    "pseudo_extra": 17,
    "pseudo_require_label": True, # mark only videos with >= 1 label (THUMOS); ActivityNet: False
    "confidence_mask": True,      # top-(T // 2) of sum relu(cas); False for ActivityNet
    "ema_momentum": 0.7,
    "var_scale": 0.5,             # mask denominator var_scale * var (2 * var / 4)
    "q": 0.5,
    "w_mil": 1.0, "w_mc": 5.0, "w_bg": 10.0, "w_act": 1.0, "w_se": 3.0, "w_mix": 1.0,
}


class SALLoss(nn.Module):
    """The SAL objective. cfg: the preset's "loss" dict (missing keys: LOSS_DEFAULTS) plus
    num_classes (from the top-level preset when the whole preset is given).

    forward(out, labels) with out = SAL.forward(x), labels [B, C] multi-hot ->
    (total, parts) where parts holds detached scalars mil, bg, act, mix, mc, se, total
    (unweighted parts; total is weighted) and the current mask statistics.
    The adaptive mask's statistics live in this module's state_dict().
    """

    def __init__(self, cfg: Mapping, num_classes: Optional[int] = None, backend: Optional[str] = None):
        super().__init__()
        if "loss" in cfg and isinstance(cfg["loss"], Mapping):
            num_classes = cfg.get("num_classes", num_classes)
            cfg = cfg["loss"]
        unknown = set(cfg) - set(LOSS_DEFAULTS)
        if unknown:
            raise ValueError(f"SALLoss: unknown loss keys {sorted(unknown)}")
        if num_classes is None:
            raise ValueError("SALLoss: `num_classes` is required")
        self.cfg = {**LOSS_DEFAULTS, **dict(cfg)}
        if self.cfg["mil_select"] not in ("combined", "cas"):
            raise ValueError(f"SALLoss: mil_select must be 'combined' or 'cas', got {self.cfg['mil_select']!r}")
        self.backend = backend
        self.mask = AdaptiveActionnessMask(num_classes, self.cfg["ema_momentum"], self.cfg["var_scale"])

    def topk_sizes(self, T: int) -> Dict[str, int]:
        c = self.cfg
        r = c["r"]
        k = max(1, T // r)
        mil = max(1, T // (c["mil_topk_divisor"] or r))
        bg = max(1, T // (c["bg_topk_divisor"] or r))
        pseudo = c["pseudo_topk"] if c["pseudo_topk"] is not None else k + c["pseudo_extra"]
        conf = max(1, T // 2) if c["confidence_mask"] else None
        return {"k": k, "mil": min(mil, T), "bg": min(bg, T), "pseudo": min(pseudo, T), "conf": conf}

    def forward(self, out: Mapping[str, torch.Tensor], labels: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
        c, be = self.cfg, self.backend
        cas, cas_bg = out["cas"], out["cas_bg"]
        a_rgb, a_flow = out["a_rgb"], out["a_flow"]
        B, T, C = cas.shape
        labels = labels.to(cas.dtype)
        ks = self.topk_sizes(T)

        # MIL on the top-k of the selection score (indices only: no gradient through it)
        if c["mil_select"] == "combined":
            w = c["select_weights"]
            with torch.no_grad():
                p = torch.softmax(cas, -1)
                if all(abs(v - 1 / 3) < 1e-9 for v in w):
                    # the reference's instance_selection_function, in its order of operations
                    select = (p + (a_flow.unsqueeze(-1) + a_rgb.unsqueeze(-1))) / 3
                else:
                    select = w[0] * p + w[1] * a_rgb.unsqueeze(-1) + w[2] * a_flow.unsqueeze(-1)
        else:
            select = cas.detach()
        cas_top, _ = ops.topk_mil(select.contiguous(), cas.contiguous(), k=ks["mil"], backend=be)
        l_mil = soft_ce(cas_top, labels)

        # background: top-k of softmax(cas_bg), KL to uniform
        with torch.no_grad():
            sel_bg = torch.softmax(cas_bg, -1).contiguous()
        cas_top_bg, _ = ops.topk_mil(sel_bg, cas_bg.contiguous(), k=ks["bg"], backend=be)
        l_bg = background_kl(cas_top_bg)

        # pseudo labels and adaptive mask (mask statistics updated first, then applied)
        g = pseudo_labels(out["a"], cas, labels, topk=ks["pseudo"], confidence_topk=ks["conf"],
                          require_label=c["pseudo_require_label"], backend=be)
        m = self.mask(cas)
        g_aug, m_aug = ops.mix_targets(g.contiguous(), m.contiguous(), backend=be)

        q = c["q"]
        l_act = gce_mask(a_flow, g, m, q) + gce_mask(a_rgb, g, m, q)
        l_mix = gce_mask(out["a_flow_aug"], g_aug, m_aug, q) + gce_mask(out["a_rgb_aug"], g_aug, m_aug, q)
        l_mc = consistency_mse(a_rgb, a_flow)
        l_se = soft_ce(out["sc"], labels) + soft_ce(out["sc_flow"], labels) + soft_ce(out["sc_rgb"], labels)

        total = (c["w_mil"] * l_mil + c["w_mc"] * l_mc + c["w_bg"] * l_bg + c["w_act"] * l_act
                 + c["w_se"] * l_se + c["w_mix"] * l_mix)
        parts = {"total": total.detach(), "mil": l_mil.detach(), "bg": l_bg.detach(),
                 "act": l_act.detach(), "mix": l_mix.detach(), "mc": l_mc.detach(),
                 "se": l_se.detach(), "mask_mu": self.mask.mu.detach().clone(),
                 "mask_var": self.mask.var.detach().clone()}
        return total, parts
