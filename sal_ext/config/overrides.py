"""Overriding preset values from the command line: ``key=value`` strings (see sal_ext.config)."""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List

from .schema import unknown_key_message


def _leaves(cfg: Dict[str, Any], prefix: str = "") -> List[str]:
    out = []
    for k, v in cfg.items():
        path = prefix + k
        if isinstance(v, dict):
            out += _leaves(v, path + ".")
        else:
            out.append(path)
    return out


def resolve_key(cfg: Dict[str, Any], key: str) -> str:
    """Full dotted path of `key`: itself if it is a path in cfg, else the unique leaf so named."""
    node = cfg
    parts = key.split(".")
    ok = True
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node or not isinstance(node[p], dict):
            ok = False
            break
        node = node[p]
    if ok and isinstance(node, dict) and parts[-1] in node:
        return key
    matches = [p for p in _leaves(cfg) if p.split(".")[-1] == key or p.endswith("." + key)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise KeyError(unknown_key_message(key, _leaves(cfg)))
    raise KeyError(f"config key {key!r} is ambiguous: {matches}")


def parse_value(text: str) -> Any:
    """JSON value (numbers, true/false/null, lists) or, failing that, the raw string."""
    low = text.strip()
    if low in ("None", "none"):
        return None
    if low in ("True", "False"):
        return low == "True"
    try:
        return json.loads(low)
    except ValueError:
        return text


def set_value(cfg: Dict[str, Any], key: str, value: Any) -> str:
    """Sets cfg[key] (dotted / unique leaf); returns the full path."""
    path = resolve_key(cfg, key)
    node = cfg
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value
    return path


def apply_overrides(cfg: Dict[str, Any], items: Iterable[str]) -> Dict[str, Any]:
    """Applies "key=value" strings in order (see module doc). Returns cfg (modified)."""
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, text = item.split("=", 1)
        set_value(cfg, key.strip(), parse_value(text))
    return cfg
