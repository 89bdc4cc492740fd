"""The SAL network (multilevel semantic + adaptive actionness learning), in plain PyTorch.

Module structure and parameter names follow the authors' reference (``models/model_x4.py``
of lizhilin-ustc/SAL): ``encoder.0``, ``action_rgb.0``, ``action_flow.0``, ``cls.0``,
``cls_rgb.0``, ``cls_flow.0``, ``fc``, ``fc1``; submodules are created in the reference's
order, so one seed gives the reference's initialisation.

What loads with :func:`load_reference_state_dict`:
  * a THUMOS14 reference checkpoint (``torch.save(net.state_dict())``, e.g. ``CAS_Only.pkl``)
    -- it also loads directly with ``model.load_state_dict(sd)``;
  * the same wrapped by ``nn.DataParallel`` (keys prefixed ``module.``);
  * an ActivityNet reference checkpoint (lizhilin-ustc/SAL_ActivityNet names the encoder
    ``base_module``; it is renamed to ``encoder``; build the model with encoder_kernel=7);
  * a dict holding the state dict under ``"model"`` or ``"state_dict"`` (our own checkpoints
    store it under ``"model"``).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
import torch.nn as nn

from . import ops


def _pool(x: torch.Tensor, backend: Optional[str]) -> torch.Tensor:
    """Second-order pooling P(X) of the reference (G / T^2, signed sqrt, L2 norm)."""
    return ops.second_order_pool(x.contiguous(), scale="sal", center=False, eps=1e-5,
                                 normalize=True, backend=backend)


class SAL(nn.Module):
    """SAL for two-stream features [B, T, in_dim] (RGB first, flow second).

    Args:
        in_dim: feature size (RGB + flow; 2048 for I3D).
        num_classes: number of action classes C.
        hidden: embedding size (512 in the paper; fc and fc1 have hidden^2 inputs).
        encoder_kernel: temporal kernel of the encoder convolution (3 THUMOS, 7 ActivityNet).
        fusion_lambda: actionness a = (1 - lambda) * a_flow + lambda * a_rgb
            (0.1 THUMOS; 0.3 ActivityNet, where a = 0.7 flow + 0.3 rgb).
        dropout: dropout after every convolution + ReLU.
        backend: "auto" | "kernel" | "torch" | None, passed to the sal_ext.ops calls.
    """

    def __init__(self, in_dim: int = 2048, num_classes: int = 20, hidden: int = 512,
                 encoder_kernel: int = 3, fusion_lambda: float = 0.1, dropout: float = 0.5,
                 backend: Optional[str] = None):
        super().__init__()
        if in_dim % 2:
            raise ValueError(f"SAL: `in_dim` must be even (RGB + flow halves), got {in_dim}")
        if encoder_kernel % 2 != 1:
            raise ValueError(f"SAL: `encoder_kernel` must be odd, got {encoder_kernel}")
        self.in_dim, self.num_classes, self.hidden = in_dim, num_classes, hidden
        self.fusion_lambda = float(fusion_lambda)
        self.backend = backend
        half = in_dim // 2

        def block(cin, k):
            return nn.Sequential(nn.Conv1d(cin, hidden, kernel_size=k, padding=k // 2),
                                 nn.ReLU(), nn.Dropout(dropout))

        # creation order = the reference's (same RNG draws at init)
        self.encoder = block(in_dim, encoder_kernel)
        self.action_rgb = block(half, 3)
        self.action_flow = block(half, 3)
        self.cls = nn.Sequential(nn.Conv1d(hidden, num_classes, kernel_size=1))
        self.cls_rgb = nn.Sequential(nn.Conv1d(hidden, 1, kernel_size=1))
        self.cls_flow = nn.Sequential(nn.Conv1d(hidden, 1, kernel_size=1))
        self.fc = nn.Linear(hidden * hidden, num_classes)
        self.fc1 = nn.Linear(hidden * hidden, hidden)
        nn.init.kaiming_normal_(self.fc1.weight)
        nn.init.zeros_(self.fc1.bias)

    # -- pieces ---------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[2] != self.in_dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"SAL: `x` must be [B, T, {self.in_dim}], got {shape}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"SAL: `x` must have B >= 1 and T >= 1, got {tuple(x.shape)}")

    def _actionness(self, feats: torch.Tensor, which: str):
        """feats [B, in_dim/2, T] -> (embedding [B, hidden, T], actionness [B, 1, T])."""
        emb = getattr(self, "action_" + which)(feats)
        return emb, torch.sigmoid(getattr(self, "cls_" + which)(emb))

    def _fuse(self, a_flow: torch.Tensor, a_rgb: torch.Tensor) -> torch.Tensor:
        return (1 - self.fusion_lambda) * a_flow + self.fusion_lambda * a_rgb

    def _semantic_cas(self, inp: torch.Tensor, action: torch.Tensor):
        """Encoder, second-order pooling, semantic propagation, CAS.

        Returns (cas [B,T,C], pooled P(emb) [B, hidden^2])."""
        emb = self.encoder(inp)                                   # [B, H, T]
        pooled = _pool(emb, self.backend)                         # [B, H^2]
        semantic = self.fc1(pooled).unsqueeze(-1)                 # [B, H, 1]
        # channel-wise actionness x semantic, exactly the reference's einsum
        emb = emb + torch.einsum("bkt,bdk->bdt", action, semantic)
        cas = self.cls(emb).permute(0, 2, 1)                      # [B, T, C]
        return cas, pooled

    # -- training forward -----------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """x [B, T, in_dim] -> dict of every output the SAL losses need.

        cas, cas_bg [B,T,C]; a_rgb, a_flow, a_rgb_aug, a_flow_aug, a [B,T];
        sc, sc_rgb, sc_flow [B,C] (second-order video logits of the fused / RGB / flow
        embeddings). The *_aug actionness comes from segment mix-up: every video summed
        with the previous one of the batch.
        """
        self._check(x)
        half = self.in_dim // 2
        x = x.contiguous()
        x_aug = ops.segment_mixup(x, 1, backend=self.backend)   # x + roll(x, 1, 0)
        inp, inp_aug = x.permute(0, 2, 1), x_aug.permute(0, 2, 1)
        rgb, flow = inp[:, :half], inp[:, half:]
        rgb_aug, flow_aug = inp_aug[:, :half], inp_aug[:, half:]

        # same order of dropout draws as the reference
        emb_flow, a_flow = self._actionness(flow, "flow")
        emb_rgb, a_rgb = self._actionness(rgb, "rgb")
        _, a_flow_aug = self._actionness(flow_aug, "flow")
        _, a_rgb_aug = self._actionness(rgb_aug, "rgb")
        action = self._fuse(a_flow, a_rgb)                        # [B, 1, T]

        cas, pooled = self._semantic_cas(inp, action)
        sc = self.fc(pooled)
        sc_rgb = self.fc(_pool(emb_rgb, self.backend))
        sc_flow = self.fc(_pool(emb_flow, self.backend))
        cas_bg = cas * (1 - action).permute(0, 2, 1)
        return {
            "cas": cas, "cas_bg": cas_bg,
            "a_rgb": a_rgb.squeeze(1), "a_flow": a_flow.squeeze(1),
            "a_rgb_aug": a_rgb_aug.squeeze(1), "a_flow_aug": a_flow_aug.squeeze(1),
            "a": action.squeeze(1),
            "sc": sc, "sc_rgb": sc_rgb, "sc_flow": sc_flow,
        }

    # -- inference path -------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Inference outputs only: cas [B,T,C], a_rgb, a_flow [B,T], sc [B,C].

        Skips the mix-up branches and the RGB/flow pooled heads (about a third of the
        convolution work and two of the three H^2 poolings). Same values as forward() in
        eval mode. Call model.eval() first (dropout), as for any inference.
        """
        self._check(x)
        half = self.in_dim // 2
        inp = x.contiguous().permute(0, 2, 1)
        _, a_flow = self._actionness(inp[:, half:], "flow")
        _, a_rgb = self._actionness(inp[:, :half], "rgb")
        cas, pooled = self._semantic_cas(inp, self._fuse(a_flow, a_rgb))
        return {"cas": cas, "a_rgb": a_rgb.squeeze(1), "a_flow": a_flow.squeeze(1),
                "sc": self.fc(pooled)}


def reference_state_dict(sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Maps a reference / wrapped checkpoint to this module's names (see module doc)."""
    if isinstance(sd, Mapping):
        for key in ("model", "state_dict", "net"):
            if key in sd and isinstance(sd[key], Mapping):
                sd = sd[key]
                break
    out = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.startswith("base_module."):
            k = "encoder." + k[len("base_module."):]
        out[k] = v
    return out


def load_reference_state_dict(model: SAL, sd, strict: bool = True):
    """Loads a reference (or our own) checkpoint into `model`; returns load_state_dict's result."""
    return model.load_state_dict(reference_state_dict(sd), strict=strict)


def build_model(cfg: Mapping, backend: Optional[str] = None) -> SAL:
    """SAL from a preset dict (sal_ext.config): uses feature_dim, num_classes, model.*."""
    m = cfg["model"]
    return SAL(in_dim=cfg["feature_dim"], num_classes=cfg["num_classes"], hidden=m["hidden"],
               encoder_kernel=m["encoder_kernel"], fusion_lambda=m["fusion_lambda"],
               dropout=m["dropout"], backend=backend)
