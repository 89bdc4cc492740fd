"""What every config key may hold, and the one validation pass that checks a whole config.

``RULES`` maps each dotted key of a preset (sal_ext.config) to a rule, plain data::

    {"type": "int" | "float" | "bool" | "str" | "choice" | "list" | "dict",
     "min", "max": bounds (inclusive; "min_open"/"max_open": True makes them exclusive),
     "null": True        None is allowed too,
     "odd": True         (int) must be odd,
     "choices": [...]    (choice) the allowed strings,
     "item": rule        (list) the rule of every entry; "len" / "min_len" / "max_len",
     "optional": True    the key may be absent (it is not in every preset)}

Numbers are always finite (NaN and Inf are refused), ``bool`` is never taken for a number,
and an "int" is a Python int (``1.5`` and ``64.0`` are refused). ``CROSS_RULES`` are the
checks that involve more than one key. :func:`validate_config` runs all of it and raises a
one-line :class:`ConfigError` (a ValueError) naming the key, the value and what is allowed;
``python -m sal_ext.train`` and ``sal_ext.infer`` call it before any data is read or any model
is built. This module imports nothing from the rest of the package.
"""
from __future__ import annotations

import difflib
import math
import numbers
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

DATASETS = ["thumos14", "activitynet", "wtalc"]
NMS_METHODS = ["sal", "hard", "linear", "gaussian"]
EVAL_PROTOCOLS = ["activitynet", "wtalc", "thumos14"]

_POS_INT = {"type": "int", "min": 1}
_NONNEG_INT = {"type": "int", "min": 0}
_POS_INT_OR_NULL = {"type": "int", "min": 1, "null": True}
_UNIT = {"type": "float", "min": 0.0, "max": 1.0}                     # [0, 1]
_NONNEG = {"type": "float", "min": 0.0}
_POS = {"type": "float", "min": 0.0, "min_open": True}
_BOOL = {"type": "bool"}
_WEIGHTS3 = {"type": "list", "len": 3, "item": _NONNEG}               # cross rule: sum > 0

RULES: Dict[str, Dict[str, Any]] = {
    # -- top level ---------------------------------------------------------------------------
    "name": {"type": "str"},
    "dataset": {"type": "choice", "choices": DATASETS},
    "data_root": {"type": "str", "null": True},
    "num_classes": _POS_INT,
    "feature_dim": {"type": "int", "min": 2},                       # cross rule: even
    "num_segments": _POS_INT,
    "class_names": {"type": "list", "item": {"type": "str"}, "optional": True},   # written by train
    "val_fraction": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True, "optional": True},
    "monitor_test": {"type": "bool", "optional": True},                          # written by train
    # -- model -------------------------------------------------------------------------------
    "model.hidden": _POS_INT,
    "model.encoder_kernel": {"type": "int", "min": 1, "odd": True},
    "model.fusion_lambda": _UNIT,
    "model.dropout": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True},
    # -- loss (sal_ext.losses.SALLoss) -------------------------------------------------------
    "loss.r": _POS_INT,
    "loss.mil_select": {"type": "choice", "choices": ["combined", "cas"]},
    "loss.mil_topk_divisor": _POS_INT_OR_NULL,
    "loss.bg_topk_divisor": _POS_INT_OR_NULL,
    "loss.select_weights": _WEIGHTS3,
    "loss.pseudo_topk": _POS_INT_OR_NULL,
    "loss.pseudo_extra": _NONNEG_INT,
    "loss.pseudo_require_label": _BOOL,
    "loss.confidence_mask": _BOOL,
    "loss.ema_momentum": _UNIT,
    "loss.var_scale": _POS,
    # generalized CE (1 - p^q) / q: q -> 0 is 0/0 (NaN); q in (0, 1] (q = 1 is the MAE limit)
    "loss.q": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0},
    "loss.w_mil": _NONNEG, "loss.w_mc": _NONNEG, "loss.w_bg": _NONNEG,
    "loss.w_act": _NONNEG, "loss.w_se": _NONNEG, "loss.w_mix": _NONNEG,
    # -- optimizer ---------------------------------------------------------------------------
    "optim.lr": _POS,
    "optim.betas": {"type": "list", "len": 2,
                    "item": {"type": "float", "min": 0.0, "max": 1.0, "max_open": True}},
    "optim.weight_decay": _NONNEG,
    "optim.impl": {"type": "choice", "choices": ["fused", "foreach", "loop"]},
    "optim.set_to_none": _BOOL,
    # -- training loop -----------------------------------------------------------------------
    "train.batch_size": _POS_INT,
    "train.epochs": _POS_INT_OR_NULL,                               # cross rule: epochs or max_steps
    "train.max_steps": _POS_INT_OR_NULL,
    "train.eval_every": _POS_INT_OR_NULL,                           # null: only at the end
    "train.eval_from_epoch": _NONNEG_INT,
    "train.eval_at_end": _BOOL,
    "train.eval_batch_size": _POS_INT,
    "train.save_every": _POS_INT_OR_NULL,                           # null: at every evaluation
    "train.seed": {"type": "int", "min": 0, "max": 2 ** 32 - 1},    # numpy's seed range
    "train.drop_last": _BOOL,
    "train.test_split": {"type": "choice", "choices": ["test", "val", "validation", "train"]},
    # -- inference (sal_ext.inference_config.InferenceConfig) --------------------------------
    "inference.class_threshold": _UNIT,
    "inference.score_weight": _UNIT,
    "inference.topk_r": _POS_INT,
    "inference.fuse_weights": _WEIGHTS3,
    "inference.act_thresholds": {"type": "list", "min_len": 1, "max_len": 255, "item": _UNIT},
    "inference.upsample": _POS_INT,                                 # cross rule: upsample * T < 2**31
    "inference.outer_ratio": _NONNEG,
    "inference.gamma": {"type": "float"},
    "inference.nms_method": {"type": "choice", "choices": NMS_METHODS},
    "inference.nms_threshold": _UNIT,
    "inference.nms_sigma": _POS,
    "inference.nms_plus_one": _BOOL,
    "inference.fps": _POS,
    "inference.frames_per_snippet": _POS_INT,
    "inference.max_detections": _POS_INT_OR_NULL,
    "inference.oic_skip_first_only": {"type": "bool", "optional": True},
    "inference.version": {"type": "str", "optional": True},
    "inference.external_data": {"type": "dict", "optional": True},
    # -- evaluation --------------------------------------------------------------------------
    "eval.tiou_thresholds": {"type": "list", "min_len": 1,
                             "item": {"type": "float", "min": 0.0, "min_open": True, "max": 1.0}},
    "eval.subset": {"type": "str", "null": True},
    # "average" (or null): the mean over all thresholds; "lo:hi": the mean over the thresholds
    # in [lo, hi], both ends being thresholds (cross rule)
    "eval.select_metric": {"type": "str", "null": True},
    "eval.protocols": {"type": "list", "min_len": 1, "null": True, "optional": True,
                       "item": {"type": "choice", "choices": EVAL_PROTOCOLS}},
    "eval.ambiguous_file": {"type": "str", "null": True, "optional": True},
    # -- the built-in synthetic set (sal_ext.data.synthetic.write_synthetic_thumos) ----------
    "synthetic.seed": {"type": "int", "min": 0, "optional": True},
    "synthetic.num_train": {**_POS_INT, "optional": True},
    "synthetic.num_test": {**_POS_INT, "optional": True},
    "synthetic.num_classes": {"type": "int", "min": 1, "max": 20, "optional": True},
    "synthetic.feature_dim": {"type": "int", "min": 2, "optional": True},
    "synthetic.min_len": {"type": "int", "min": 8, "optional": True},
    "synthetic.max_len": {"type": "int", "min": 8, "optional": True},
}

SECTIONS = sorted({k.split(".")[0] for k in RULES if "." in k})
OPTIONAL_SECTIONS = ["synthetic"]


class ConfigError(ValueError):
    """A config value that is not allowed; the message is one line."""


# =============================================================================================
# one rule
# =============================================================================================
def _num(x: float) -> str:
    return "%g" % x


def describe(rule: Dict[str, Any]) -> str:
    """What `rule` allows, in words ("an integer >= 1", "null or a number in (0, 1]", ...)."""
    t = rule["type"]
    if t in ("int", "float"):
        noun = "an integer" if t == "int" else "a number"
        lo, hi = rule.get("min"), rule.get("max")
        if lo is not None and hi is not None:
            text = (f"{noun} in {'(' if rule.get('min_open') else '['}{_num(lo)}, "
                    f"{_num(hi)}{')' if rule.get('max_open') else ']'}")
        elif lo is not None:
            text = f"{noun} {'>' if rule.get('min_open') else '>='} {_num(lo)}"
        elif hi is not None:
            text = f"{noun} {'<' if rule.get('max_open') else '<='} {_num(hi)}"
        else:
            text = "a finite number" if t == "float" else noun
        if rule.get("odd"):
            text = "an odd " + text[len("an "):]
    elif t == "bool":
        text = "true or false"
    elif t == "str":
        text = "a string"
    elif t == "dict":
        text = "a JSON object"
    elif t == "choice":
        text = "one of " + ", ".join(repr(c) for c in rule["choices"])
    elif t == "list":
        n, lo, hi = rule.get("len"), rule.get("min_len"), rule.get("max_len")
        if n is not None:
            size = f"a list of {n}"
        elif lo and hi:
            size = f"a list of {lo} to {hi}"
        elif lo == 1:
            size = "a non-empty list of"
        elif lo:
            size = f"a list of at least {lo}"
        else:
            size = "a list of"
        item = describe(rule["item"])
        item = item.replace("an integer", "integers").replace("a number", "numbers") \
                   .replace("a string", "strings").replace("an odd integer", "odd integers")
        text = f"{size} {item}" if not item.startswith("one of") else f"{size} entries, each {item}"
    else:  # pragma: no cover - a mistake in RULES
        raise AssertionError(f"unknown rule type {t!r}")
    return ("null or " + text) if rule.get("null") else text


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_value(rule: Dict[str, Any], value: Any) -> bool:
    """True when `value` obeys `rule`."""
    if value is None:
        return bool(rule.get("null"))
    t = rule["type"]
    if t in ("int", "float"):
        if not (_is_int(value) if t == "int" else _is_number(value)):
            return False
        if not math.isfinite(float(value)):
            return False
        lo, hi = rule.get("min"), rule.get("max")
        if lo is not None and (value <= lo if rule.get("min_open") else value < lo):
            return False
        if hi is not None and (value >= hi if rule.get("max_open") else value > hi):
            return False
        return not (rule.get("odd") and value % 2 == 0)
    if t == "bool":
        return isinstance(value, bool)
    if t == "str":
        return isinstance(value, str)
    if t == "dict":
        return isinstance(value, dict)
    if t == "choice":
        return isinstance(value, str) and value in rule["choices"]
    if t == "list":
        if not isinstance(value, (list, tuple)):
            return False
        n = len(value)
        if "len" in rule and n != rule["len"]:
            return False
        if n < rule.get("min_len", 0) or ("max_len" in rule and n > rule["max_len"]):
            return False
        return all(check_value(rule["item"], v) is True for v in value)
    raise AssertionError(f"unknown rule type {t!r}")  # pragma: no cover


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _error(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"invalid config value {key}={_show(value)}: expected {allowed}")


# =============================================================================================
# the whole config
# =============================================================================================
def leaves(cfg: Dict[str, Any], prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested config dict (external_data is a leaf)."""
    for k, v in cfg.items():
        path = prefix + str(k)
        if isinstance(v, dict) and path not in RULES:
            yield from leaves(v, path + ".")
        else:
            yield path, v


def close_matches(key: str, known: List[str], n: int = 3) -> List[str]:
    """Known keys that look like `key` (difflib), compared as full paths and as leaf names."""
    by_leaf: Dict[str, List[str]] = {}
    for k in known:
        by_leaf.setdefault(k.split(".")[-1], []).append(k)
    out = difflib.get_close_matches(key, known, n=n, cutoff=0.6)
    for leaf in difflib.get_close_matches(key.split(".")[-1], list(by_leaf), n=n, cutoff=0.6):
        out += [k for k in by_leaf[leaf] if k not in out]
    return out[:n]


def unknown_key_message(key: str, known: List[str]) -> str:
    near = close_matches(key, known)
    hint = f"; close matches: {', '.join(near)}" if near else ""
    return f"unknown config key {key!r}{hint}"


def _get(cfg: Dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = cfg
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def _cross_epochs(cfg):
    tr = cfg["train"]
    if tr["epochs"] is None and tr["max_steps"] is None:
        return "train.epochs and train.max_steps are both null: set one of them (a number of epochs or steps)"


def _cross_feature_dim(cfg):
    if cfg["feature_dim"] % 2:
        return (f"invalid config value feature_dim={cfg['feature_dim']}: expected an even integer "
                "(RGB half + flow half)")


def _cross_weights(cfg):
    for key in ("loss.select_weights", "inference.fuse_weights"):
        w = _get(cfg, key)
        if sum(w) <= 0:
            return f"invalid config value {key}={_show(w)}: expected 3 numbers >= 0 with a positive sum"


def _cross_class_names(cfg):
    names = cfg.get("class_names")
    if names is not None and len(names) != cfg["num_classes"]:
        return (f"class_names has {len(names)} entries but num_classes={cfg['num_classes']}: "
                "they must agree")


def _cross_test_split(cfg):
    split = cfg["train"]["test_split"]
    if cfg["dataset"] == "thumos14" and split in ("val", "validation"):
        return (f"invalid config value train.test_split={split!r}: thumos14 has the splits 'train' "
                "and 'test'")


def _cross_upsample(cfg):
    inf = cfg["inference"]
    if inf["upsample"] * cfg["num_segments"] >= 2 ** 31:
        return (f"invalid config value inference.upsample={inf['upsample']}: upsample * num_segments "
                f"({cfg['num_segments']}) must be < 2**31")


def _cross_synthetic(cfg):
    syn = cfg.get("synthetic")
    if not syn:
        return None
    lo, hi = syn.get("min_len", 80), syn.get("max_len", 400)
    if hi < lo:
        return f"invalid config value synthetic.max_len={hi}: expected an integer >= synthetic.min_len ({lo})"
    dim = syn.get("feature_dim", 2048)
    if dim % 2:
        return f"invalid config value synthetic.feature_dim={dim}: expected an even integer"
    if cfg["dataset"] == "thumos14" and not cfg.get("data_root"):   # the set this run trains on
        for key in ("num_classes", "feature_dim"):
            if key in syn and syn[key] != cfg[key]:
                return (f"{key}={cfg[key]} differs from synthetic.{key}={syn[key]}, the synthetic set's; "
                        f"set both (or --data-root)")


def parse_range(text: str) -> Optional[Tuple[float, float]]:
    """"lo:hi" -> (lo, hi); None when `text` is not of that form."""
    parts = text.split(":")
    if len(parts) != 2:
        return None
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return None
    return lo, hi


def _cross_select_metric(cfg):
    key = cfg["eval"]["select_metric"]
    if key is None or key == "average":
        return None
    thr = [float(t) for t in cfg["eval"]["tiou_thresholds"]]
    rng = parse_range(key)
    ok = rng is not None and all(any(abs(t - end) < 1e-9 for t in thr) for end in rng)
    if not ok:
        return (f"invalid config value eval.select_metric={key!r}: expected 'average' or 'lo:hi' with lo <= hi "
                f"both in eval.tiou_thresholds [{', '.join('%g' % t for t in thr)}], e.g. '{thr[0]:g}:{thr[-1]:g}'")


def _cross_protocols(cfg):
    prot = cfg["eval"].get("protocols")
    if prot and len(set(prot)) != len(prot):
        return f"invalid config value eval.protocols={_show(prot)}: expected each protocol once"


CROSS_RULES: List[Callable[[Dict[str, Any]], Optional[str]]] = [
    _cross_epochs, _cross_feature_dim, _cross_weights, _cross_class_names, _cross_test_split,
    _cross_upsample, _cross_synthetic, _cross_select_metric, _cross_protocols,
]


def validate_config(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """Checks every key of `cfg` against RULES, then CROSS_RULES; returns cfg unchanged.

    Raises ConfigError (one line) at the first problem: an unknown key (with close matches),
    a missing key, a section that is not a dict, or a value outside its rule."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"a config must be a dict, got {type(cfg).__name__}")
    for sec in SECTIONS:
        if sec in cfg and not isinstance(cfg[sec], dict):
            inside = ", ".join(k for k in RULES if k.startswith(sec + "."))
            raise ConfigError(f"invalid config value {sec}={_show(cfg[sec])}: {sec} is a section "
                              f"(set one of {inside})")
    known = list(RULES)
    for key, value in leaves(cfg):
        if key not in RULES:
            raise ConfigError(unknown_key_message(key, known))
        if not check_value(RULES[key], value):
            raise _error(key, value, describe(RULES[key]))
    for key, rule in RULES.items():
        sec = key.split(".")[0]
        if rule.get("optional") or ("." in key and sec in OPTIONAL_SECTIONS and sec not in cfg):
            continue
        if _get(cfg, key, _MISSING) is _MISSING:
            raise ConfigError(f"missing config key {key}: expected {describe(rule)}")
    for check in CROSS_RULES:
        msg = check(cfg)
        if msg:
            raise ConfigError(msg)
    return cfg


_MISSING = object()

__all__ = ["RULES", "CROSS_RULES", "ConfigError", "validate_config", "describe", "check_value",
           "close_matches", "unknown_key_message", "leaves", "parse_range"]
