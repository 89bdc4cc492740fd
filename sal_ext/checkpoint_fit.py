"""Why a checkpoint does not fit the network built for it, in one line.

Two kinds of checkpoint reach sal_ext.infer: ours (sal_ext.train's best.pt / last.pt, which
carry the config they were trained with) and reference state dicts (which carry none, so a
--preset says which network they are). A mismatch means different things for each: for ours
a --set changed a setting that fixes the network's shape (the message names it, with the
trained and the requested value); for a reference state dict the preset is the wrong one (the
message says which preset fits, found by comparing tensor shapes on the meta device: no memory
is allocated).
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch

from .config import PRESETS, get_preset
from .model import build_model, reference_state_dict

# the settings that fix the shapes of the network's tensors
ARCHITECTURE = ("feature_dim", "num_classes", "model.hidden", "model.encoder_kernel")


def is_ours(ck: Mapping) -> bool:
    """A checkpoint written by sal_ext.train: the weights with the config they were trained with."""
    return isinstance(ck, Mapping) and isinstance(ck.get("config"), Mapping) and isinstance(ck.get("model"), Mapping)


def _setting(cfg: Mapping, key: str):
    for part in key.split("."):
        if not isinstance(cfg, Mapping) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def changed_settings(trained: Mapping, cfg: Mapping) -> List[Tuple[str, Any, Any]]:
    """[(key, trained value, requested value)] of the ARCHITECTURE settings that differ."""
    return [(k, _setting(trained, k), _setting(cfg, k)) for k in ARCHITECTURE
            if _setting(trained, k) != _setting(cfg, k)]


def shape_differences(net: Mapping[str, torch.Tensor], sd: Mapping) -> Tuple[list, list, list]:
    """(tensors of both with other shapes [(key, file shape, network shape)], keys of the
    network missing from the file, keys of the file the network lacks)."""
    sd = reference_state_dict(sd)
    differ = [(k, list(v.shape), list(net[k].shape)) for k, v in sd.items()
              if k in net and isinstance(v, torch.Tensor) and v.shape != net[k].shape]
    return differ, [k for k in net if k not in sd], [k for k in sd if k not in net]


def summary(differ: Sequence, missing: Sequence, unexpected: Sequence) -> str:
    """The first difference of each kind, with how many more."""
    def more(items):
        return f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    parts = []
    if differ:
        k, a, b = differ[0]
        parts.append(f"{k} is {a} in the file, {b} in the network{more(differ)}")
    if missing:
        parts.append(f"the network's {missing[0]} is not in the file{more(missing)}")
    if unexpected:
        parts.append(f"the file's {unexpected[0]} is not in the network{more(unexpected)}")
    return "; ".join(parts) or "no tensor differs"


def fitting_presets(sd: Mapping) -> List[str]:
    """The presets whose network has exactly the state dict's tensors and shapes."""
    out = []
    for name in sorted(PRESETS):
        with torch.device("meta"):
            net = build_model(get_preset(name)).state_dict()
        if not any(shape_differences(net, sd)):
            out.append(name)
    return out


def mismatch_message(path: str, ck: Mapping, cfg: Dict[str, Any], net: Mapping[str, torch.Tensor],
                     preset, overrides: Sequence[str]) -> str:
    """The one-line reason why checkpoint `ck` (read from `path`) does not load into the
    network `net` (a state dict) built from `cfg`."""
    what = summary(*shape_differences(net, ck))
    if is_ours(ck):
        changed = changed_settings(ck["config"], cfg)
        if changed:
            trained = ", ".join(f"{k}={a}" for k, a, _ in changed)
            asked = ", ".join(f"{k}={b}" for k, _, b in changed)
            return (f"--checkpoint {path} is a sal_ext.train checkpoint trained with {trained}; --set asks "
                    f"for {asked}: a trained network's shape cannot change (drop that --set)")
        return f"--checkpoint {path}: its weights do not fit the network of its own config ({what})"
    name = preset or "thumos14"
    fits = fitting_presets(ck)
    if name in fits:
        hint = f"; it fits --preset {name} without the --set {' '.join(overrides)}"
    elif fits:
        hint = "; it fits " + " or ".join(f"--preset {p}" for p in fits)
    else:
        hint = "; no preset fits it (give the network's shape with --set model.hidden=..., num_classes=..., ...)"
    default = "" if preset else " (the default)"
    return f"--checkpoint {path} does not fit the --preset {name}{default} network ({what}){hint}"
