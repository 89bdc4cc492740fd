"""Checks a training run makes before its first step, beyond the config's own rules
(sal_ext.config.schema): the values that name data are checked against the data, and the
model's and optimizer's memory is estimated from the config before anything is allocated.

Each check raises ValueError with a one-line message naming the setting.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import torch

# bytes per parameter while training: the fp32 weight, its gradient, Adam's two moments
TRAIN_BYTES_PER_PARAM = 16


def count_parameters(cfg: Dict[str, Any]) -> int:
    """The model's parameter count, from a build on the meta device (nothing is allocated)."""
    from .model import build_model
    with torch.device("meta"):
        model = build_model(cfg)
    return sum(p.numel() for p in model.parameters())


def training_memory(cfg: Dict[str, Any]) -> Tuple[int, int]:
    """(parameters, estimated bytes): weights, gradients and Adam state, plus the largest
    activations of a step (the pooled [B, hidden^2] second-order features of the branches and
    the [B, hidden, T] embeddings), a lower bound of what a step needs."""
    n = count_parameters(cfg)
    h = int(cfg["model"]["hidden"])
    b = int(cfg["train"]["batch_size"])
    t = int(cfg["num_segments"])
    activations = 4 * b * (8 * h * h + 16 * h * t)
    return n, TRAIN_BYTES_PER_PARAM * n + activations


def device_memory(device: torch.device) -> Optional[int]:
    """Total memory of the device (bytes), or None when it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gb(nbytes: float) -> str:
    return f"{nbytes / 2 ** 30:.1f} GiB" if nbytes < 2 ** 40 else f"{nbytes / 2 ** 40:.1f} TiB"


def check_memory(cfg: Dict[str, Any], device: torch.device) -> None:
    """Refuses a config whose training state cannot fit in the device's memory."""
    n, need = training_memory(cfg)
    have = device_memory(device)
    if have is not None and need > have:
        raise ValueError(
            f"model.hidden={cfg['model']['hidden']} (feature_dim={cfg['feature_dim']}, "
            f"num_classes={cfg['num_classes']}): the model has {n:,} parameters and training it needs "
            f"about {_gb(need)} (weights, gradients, Adam state), more than the {_gb(have)} of memory "
            f"on {device.type}; choose a smaller model.hidden")


def check_against_data(cfg: Dict[str, Any], train_base, test_base) -> None:
    """The values that name data, against the data: eval.subset (a ground-truth subset of the
    test split), class_names (the data's, when the config holds them: a resumed run), the
    ambiguous-segments file of eval.protocols."""
    subset = cfg["eval"].get("subset")
    if subset is not None:
        have = sorted({str(e.get("subset")) for e in test_base.gt["database"].values()})
        if subset not in have:
            raise ValueError(f"invalid config value eval.subset={subset!r}: the ground truth of split "
                             f"{cfg['train']['test_split']!r} has the subset(s) {have}")
    names = cfg.get("class_names")
    if names is not None and list(names) != list(train_base.class_names):
        diff = next((i for i, (a, b) in enumerate(zip(names, train_base.class_names)) if a != b),
                    min(len(names), len(train_base.class_names)))
        raise ValueError(f"class_names differ from the data's at index {diff} "
                         f"({names[diff] if diff < len(names) else None!r} vs "
                         f"{train_base.class_names[diff] if diff < len(train_base.class_names) else None!r}): "
                         "the run was made on other data")
    amb = cfg["eval"].get("ambiguous_file")
    if amb is not None and not os.path.isfile(amb):
        raise ValueError(f"invalid config value eval.ambiguous_file={amb!r}: no such file")
