"""Ground truth in the ActivityNet gt.json form: reading it and checking its entries.

Everything here collects *problems* (one human-readable line each, naming the video and the
file) instead of raising, so that the checker can list them all; the datasets raise a
ValueError built from the same list.
"""
from __future__ import annotations

import json
import math
import os
from typing import Optional

import numpy as np


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def entry_structure_problems(vid: str, entry, source: str) -> list[str]:
    """Problems with one gt.json database entry's form (types, not value ranges)."""
    where = f"video {vid}: "
    tail = f" [{source}]"
    if not isinstance(entry, dict):
        return [where + f"ground-truth entry is a {type(entry).__name__}, not an object" + tail]
    out = []
    if "duration" not in entry:
        out.append(where + "ground-truth entry has no 'duration'" + tail)
    elif not _is_number(entry["duration"]) or not math.isfinite(float(entry["duration"])) or float(entry["duration"]) <= 0:
        out.append(where + f"duration {entry['duration']!r} is not a positive number" + tail)
    if "subset" in entry and not isinstance(entry["subset"], str):
        out.append(where + f"subset {entry['subset']!r} is not a string" + tail)
    anns = entry.get("annotations")
    if anns is None:
        out.append(where + "ground-truth entry has no 'annotations' list" + tail)
        return out
    if not isinstance(anns, list):
        out.append(where + f"'annotations' is a {type(anns).__name__}, not a list" + tail)
        return out
    for j, ann in enumerate(anns):
        if not isinstance(ann, dict):
            out.append(where + f"annotation {j} is a {type(ann).__name__}, not an object" + tail)
            continue
        if not isinstance(ann.get("label"), str):
            out.append(where + f"annotation {j} has no string 'label' (got {ann.get('label')!r})" + tail)
        seg = ann.get("segment")
        if (
            not isinstance(seg, (list, tuple))
            or len(seg) != 2
            or not all(_is_number(s) and math.isfinite(float(s)) for s in seg)
        ):
            out.append(where + f"annotation {j} 'segment' {seg!r} is not two finite numbers [start, end]" + tail)
    return out


def entry_value_problems(
    vid: str,
    entry: dict,
    source: str,
    class_index: Optional[dict],
    tolerance: float,
    class_source: str = "the class list",
) -> list[str]:
    """Problems with an (already well-formed) entry's values: labels, segment ranges."""
    where = f"video {vid}: "
    tail = f" [{source}]"
    out = []
    duration = float(entry["duration"])
    for j, ann in enumerate(entry["annotations"]):
        label = ann["label"]
        if class_index is not None and label not in class_index:
            out.append(
                where + f"annotation {j} label {label!r} is not one of the {len(class_index)} classes "
                f"of {class_source}" + tail
            )
        s, e = float(ann["segment"][0]), float(ann["segment"][1])
        if s < 0:
            out.append(where + f"annotation {j} ({label}) starts before 0: segment [{s:g}, {e:g}]" + tail)
        if e < s:
            out.append(where + f"annotation {j} ({label}) ends before it starts: segment [{s:g}, {e:g}]" + tail)
        if e > duration + tolerance:
            out.append(
                where + f"annotation {j} ({label}) ends past the video: segment [{s:g}, {e:g}] but duration "
                f"{duration:g} s (tolerance {tolerance:g} s)" + tail
            )
    return out


def normalized_entry(entry: dict, subset: Optional[str]) -> dict:
    """A clean copy of a well-formed entry: subset, duration, annotations (label, segment)."""
    sub = entry.get("subset", subset)
    return {
        "subset": sub,
        "duration": float(entry["duration"]),
        "annotations": [
            {"label": str(a["label"]), "segment": [float(a["segment"][0]), float(a["segment"][1])]}
            for a in entry["annotations"]
        ],
    }


def read_gt_json(path: str) -> tuple[Optional[dict], list[str]]:
    """Load an ActivityNet-style gt.json; (gt or None, problems with the file as a whole)."""
    if not os.path.isfile(path):
        return None, [f"ground-truth file is missing [{path}]"]
    try:
        with open(path, "r", encoding="utf-8") as f:
            gt = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"ground-truth file is unreadable: {exc} [{path}]"]
    if not isinstance(gt, dict) or not isinstance(gt.get("database"), dict):
        return None, [f"ground-truth file has no 'database' object (ActivityNet-style gt.json expected) [{path}]"]
    return gt, []
