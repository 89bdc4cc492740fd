"""Reading and validating the on-disk layouts (THUMOS14, ActivityNet, W-TALC).

Everything here collects *problems* (one human-readable line each, naming the video and the
file) instead of raising, so that the checker can list them all; the datasets raise a
ValueError built from the same list.
"""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from .classes import THUMOS14_CLASSES

DATASETS = ("thumos14", "activitynet", "wtalc")
_ALIASES = {
    "thumos14": "thumos14",
    "thumos": "thumos14",
    "activitynet": "activitynet",
    "activitynet13": "activitynet",
    "activitynet1.3": "activitynet",
    "activitynet12": "activitynet",
    "activitynet1.2": "activitynet",
    "anet": "activitynet",
    "wtalc": "wtalc",
    "w-talc": "wtalc",
}
SPLITS = ("train", "test")
DEFAULT_TOLERANCE = 1.0  # seconds a segment may end past the video's duration

# Stream widths of two-stream I3D features: RGB rows first, then flow.
DEFAULT_FEATURE_DIM = 2048


def canonical_dataset(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"dataset must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return _ALIASES[key]


def canonical_split(dataset: str, split: str) -> str:
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    key = split.strip().lower()
    if key in ("train", "training"):
        return "train"
    if key == "test" or (dataset != "thumos14" and key in ("val", "validation")):
        return "test"
    raise ValueError(
        f"unknown split {split!r} for {dataset}: expected 'train' or 'test'"
        + (" ('val'/'validation' also mean the test split)" if dataset != "thumos14" else "")
    )


def progress_iter(items, *, total=None, desc="", progress=None, min_items=50):
    """Wrap `items` in a tqdm bar: progress None = only on a terminal and for many items."""
    n = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if progress is None:
        show = bool(n is not None and n >= min_items and sys.stderr.isatty())
    else:
        show = bool(progress)
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=n, desc=desc, leave=False, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Feature files
# --------------------------------------------------------------------------------------------


def open_npy(path: str, what: str, vid: str, mmap: bool):
    """np.load a feature file; (array or None, problems). mmap=True reads only the header."""
    if not os.path.isfile(path):
        return None, [f"video {vid}: missing {what} file [{path}]"]
    try:
        if mmap:
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except ValueError:
                # empty arrays cannot be memory-mapped; object arrays fail again just below
                arr = np.load(path, allow_pickle=False)
        else:
            arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any reading failure is reported, not raised
        return None, [f"video {vid}: unreadable {what} file: {type(exc).__name__}: {exc} [{path}]"]
    if not isinstance(arr, np.ndarray):
        return None, [f"video {vid}: {what} file holds a {type(arr).__name__}, not one array [{path}]"]
    return arr, []


def array_problems(arr, what: str, vid: str, path: str, width: Optional[int], content: bool) -> list[str]:
    """Shape/dtype problems of a [T, width] feature array; NaN/Inf too when content=True."""
    tail = f" [{path}]"
    if not isinstance(arr, np.ndarray):
        return [f"video {vid}: {what} is a {type(arr).__name__}, not a numeric array" + tail]
    if arr.dtype.kind not in "fiu":
        return [f"video {vid}: {what} have dtype {arr.dtype}, not a real number type" + tail]
    if arr.ndim != 2:
        return [f"video {vid}: {what} have shape {tuple(arr.shape)}, expected [T, {width or 'D'}]" + tail]
    out = []
    if width is not None and arr.shape[1] != width:
        out.append(f"video {vid}: {what} have width {arr.shape[1]}, expected {width}" + tail)
    if arr.shape[0] < 1:
        out.append(f"video {vid}: {what} have no rows (T = 0)" + tail)
    if content and arr.size and not out:
        bad = ~np.isfinite(np.asarray(arr, dtype=np.float32))
        if bad.any():
            row = int(np.argwhere(bad.any(axis=1))[0, 0])
            out.append(
                f"video {vid}: {what} contain {int(bad.sum())} NaN/Inf value(s) (first in row {row}) "
                "(or values too large for float32)" + tail
            )
    return out


class LazyRows:
    """Rows of one video read on demand (memory-mapped), for datasets built with cache=False."""

    def __init__(self, vid: str, paths: Sequence[str], whats: Sequence[str]):
        self.vid = vid
        self.paths = list(paths)
        self.whats = list(whats)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        parts = []
        for path, what in zip(self.paths, self.whats):
            arr, probs = open_npy(path, what, self.vid, mmap=True)
            if probs:
                raise ValueError(probs[0])
            part = np.asarray(arr[idx], dtype=np.float32)
            bad = array_problems(part, what, self.vid, path, None, content=True)
            if bad:
                raise ValueError(bad[0])
            parts.append(part)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


# --------------------------------------------------------------------------------------------
# The index of one split
# --------------------------------------------------------------------------------------------


@dataclass
class VideoRecord:
    vid: str
    files: list  # feature file(s), for messages
    # load(content) -> (features [T, D] float32 or LazyRows/None, T or None, problems)
    load: Callable[[bool], tuple]


@dataclass
class SplitIndex:
    dataset: str
    root: str
    split: str
    class_names: tuple
    feature_dim: int
    gt_path: str
    videos: list = field(default_factory=list)  # VideoRecord, in split order
    gt: dict = field(default_factory=lambda: {"database": {}})
    gt_subset: Optional[str] = None
    labels: Optional[np.ndarray] = None  # [N, C] float32 multi-hot
    problems: list = field(default_factory=list)


def _read_split_file(path: str) -> tuple[list[str], list[str]]:
    if not os.path.isfile(path):
        return [], [f"split file is missing [{path}]"]
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"split file is unreadable: {exc} [{path}]"]
    vids = [ln for ln in lines if ln]
    problems = []
    seen = set()
    for v in vids:
        if v in seen:
            problems.append(f"video {v}: listed more than once [{path}]")
        seen.add(v)
    if not vids:
        problems.append(f"split file lists no videos [{path}]")
    return list(dict.fromkeys(vids)), problems


def _gt_for_split(index: SplitIndex, gt: dict, vids: list[str], default_subset: str, tolerance: float,
                  class_source: str, require_labels: bool) -> list[str]:
    """Fill index.gt / gt_subset / labels (one row per video of `vids`); return the videos without problems."""
    db = gt["database"]
    class_index = {c: i for i, c in enumerate(index.class_names)}
    good = []
    subsets = {}
    labels = np.zeros((len(vids), len(index.class_names)), dtype=np.float32)
    for i, vid in enumerate(vids):
        if vid not in db:
            index.problems.append(f"video {vid}: not in the ground truth [{index.gt_path}]")
            continue
        entry = db[vid]
        probs = entry_structure_problems(vid, entry, index.gt_path)
        if not probs:
            probs = entry_value_problems(vid, entry, index.gt_path, class_index, tolerance, class_source)
        if not probs and require_labels and not entry["annotations"]:
            probs = [f"video {vid}: training video has no annotations (no video-level label) [{index.gt_path}]"]
        index.problems.extend(probs)
        if probs:
            continue
        if isinstance(entry.get("subset"), str):
            subsets.setdefault(entry["subset"], []).append(vid)
        for a in entry["annotations"]:
            labels[i, class_index[a["label"]]] = 1.0
        good.append(vid)
    if len(subsets) > 1:
        desc = ", ".join(f"{s!r} ({len(v)} videos, e.g. {v[0]})" for s, v in sorted(subsets.items()))
        index.problems.append(
            f"videos of split {index.split!r} belong to several ground-truth subsets: {desc} [{index.gt_path}]"
        )
    index.gt_subset = next(iter(subsets)) if len(subsets) == 1 else default_subset
    index.gt = {"database": {v: normalized_entry(db[v], index.gt_subset) for v in good}}
    index.labels = labels
    return good


def _classes_from_gt(gt: dict) -> tuple:
    names = set()
    for entry in gt["database"].values():
        if isinstance(entry, dict) and isinstance(entry.get("annotations"), list):
            for a in entry["annotations"]:
                if isinstance(a, dict) and isinstance(a.get("label"), str):
                    names.add(a["label"])
    return tuple(sorted(names))


def _check_class_names(class_names) -> tuple:
    if isinstance(class_names, str) or not isinstance(class_names, (list, tuple)):
        raise TypeError("class_names must be a list or tuple of str")
    names = tuple(class_names)
    if not names or not all(isinstance(c, str) and c for c in names):
        raise ValueError("class_names must be a non-empty list of non-empty strings")
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"class_names has duplicates: {dup}")
    return names


def _two_stream_loader(vid: str, rgb_path: str, flow_path: str, width: int) -> Callable:
    half = width // 2

    def load(content: bool):
        arrays, problems = [], []
        for what, path in (("rgb features", rgb_path), ("flow features", flow_path)):
            arr, probs = open_npy(path, what, vid, mmap=not content)
            if not probs:
                probs = array_problems(arr, what, vid, path, half, content)
            problems += probs
            arrays.append(None if probs else arr)
        if problems:
            return None, None, problems
        rgb, flow = arrays
        if rgb.shape[0] != flow.shape[0]:
            return None, None, [
                f"video {vid}: rgb features have {rgb.shape[0]} rows but flow features have "
                f"{flow.shape[0]} [{rgb_path}, {flow_path}]"
            ]
        T = int(rgb.shape[0])
        if not content:
            return LazyRows(vid, [rgb_path, flow_path], ["rgb features", "flow features"]), T, []
        feats = np.empty((T, width), dtype=np.float32)
        feats[:, :half] = rgb
        feats[:, half:] = flow
        return feats, T, []

    return load


def _one_file_loader(vid: str, path: str, width: int) -> Callable:
    def load(content: bool):
        arr, probs = open_npy(path, "features", vid, mmap=not content)
        if not probs:
            probs = array_problems(arr, "features", vid, path, width, content)
        if probs:
            return None, None, probs
        T = int(arr.shape[0])
        if not content:
            return LazyRows(vid, [path], ["features"]), T, []
        return np.ascontiguousarray(arr, dtype=np.float32), T, []

    return load


def index_thumos14(root, split, class_names, tolerance, feature_dim) -> SplitIndex:
    width = feature_dim or DEFAULT_FEATURE_DIM
    if width % 2:
        raise ValueError(f"feature_dim must be even (RGB half + flow half), got {width}")
    classes = _check_class_names(class_names) if class_names is not None else THUMOS14_CLASSES
    idx = SplitIndex("thumos14", root, split, classes, width, os.path.join(root, "gt.json"))
    vids, probs = _read_split_file(os.path.join(root, f"split_{split}.txt"))
    idx.problems += probs
    gt, probs = read_gt_json(idx.gt_path)
    idx.problems += probs
    if gt is None:
        return idx
    source = "the given class list" if class_names is not None else "THUMOS14 (sal_ext.data.THUMOS14_CLASSES)"
    # every listed video's features are checked, also those with ground-truth problems
    _gt_for_split(idx, gt, vids, "validation" if split == "train" else "test", tolerance, source, split == "train")
    base = os.path.join(root, "features", split)
    for vid in vids:
        rgb = os.path.join(base, "rgb", vid + ".npy")
        flow = os.path.join(base, "flow", vid + ".npy")
        idx.videos.append(VideoRecord(vid, [rgb, flow], _two_stream_loader(vid, rgb, flow, width)))
    return idx


def index_activitynet(root, split, class_names, tolerance, feature_dim) -> SplitIndex:
    width = feature_dim or DEFAULT_FEATURE_DIM
    gt_path = os.path.join(root, "gt.json")
    gt, gt_probs = read_gt_json(gt_path)
    if class_names is not None:
        classes = _check_class_names(class_names)
        source = "the given class list"
    else:
        classes = _classes_from_gt(gt) if gt is not None else ()
        source = "gt.json"
    idx = SplitIndex("activitynet", root, split, classes, width, gt_path)
    vids, probs = _read_split_file(os.path.join(root, f"split_{split}.txt"))
    idx.problems += probs + gt_probs
    if gt is None:
        return idx
    if not classes:
        idx.problems.append(f"no class labels found in the ground truth [{gt_path}]")
        return idx
    _gt_for_split(idx, gt, vids, "train" if split == "train" else "val", tolerance, source, split == "train")
    feat_dir = os.path.join(root, "train" if split == "train" else "validation")
    for vid in vids:
        path = os.path.join(feat_dir, vid + ".npy")
        idx.videos.append(VideoRecord(vid, [path], _one_file_loader(vid, path, width)))
    return idx


# --------------------------------------------------------------------------------------------
# W-TALC single-file layout
# --------------------------------------------------------------------------------------------

WTALC_FEATURES_SUFFIX = "-I3D-JOINTFeatures.npy"
WTALC_REQUIRED = ("videoname.npy", "subset.npy", "classlist.npy", "segments.npy", "labels.npy", "duration.npy")


def _decode(x):
    if isinstance(x, (bytes, np.bytes_)):
        return bytes(x).decode("utf-8")
    if isinstance(x, np.str_):
        return str(x)
    return x


def _as_list(x):
    if isinstance(x, np.ndarray):
        return list(x)
    if isinstance(x, (list, tuple)):
        return list(x)
    return None


def find_wtalc_name(root: str, name: Optional[str]) -> tuple[Optional[str], list[str]]:
    if name is not None:
        return name, []
    if not os.path.isdir(root):
        return None, [f"data root is not a folder [{root}]"]
    found = sorted(f[: -len(WTALC_FEATURES_SUFFIX)] for f in os.listdir(root) if f.endswith(WTALC_FEATURES_SUFFIX))
    if not found:
        return None, [f"no '<name>{WTALC_FEATURES_SUFFIX}' file in the data root [{root}]"]
    if len(found) > 1:
        return None, [f"several W-TALC feature files ({', '.join(found)}): pass name= to pick one [{root}]"]
    return found[0], []


def read_wtalc_annotations(ann_dir: str) -> tuple[Optional[dict], list[str]]:
    """Load a W-TALC '<name>-Annotations' folder into plain Python lists (strings decoded)."""
    arrays, problems = {}, []
    for fname in WTALC_REQUIRED + ("labels_all.npy",):
        path = os.path.join(ann_dir, fname)
        if not os.path.isfile(path):
            if fname != "labels_all.npy":
                problems.append(f"annotation file is missing [{path}]")
            continue
        try:
            arrays[fname[:-4]] = np.load(path, allow_pickle=True, encoding="bytes")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"annotation file is unreadable: {type(exc).__name__}: {exc} [{path}]")
    if problems:
        return None, problems
    out = {}
    for key, arr in arrays.items():
        seq = _as_list(arr)
        if seq is None or (isinstance(arr, np.ndarray) and arr.ndim == 0):
            problems.append(f"annotation file does not hold a sequence [{os.path.join(ann_dir, key + '.npy')}]")
            continue
        out[key] = seq
    if problems:
        return None, problems
    n = len(out["videoname"])
    for key, seq in out.items():
        if key != "classlist" and len(seq) != n:
            problems.append(
                f"annotation file has {len(seq)} entries but videoname.npy has {n} "
                f"[{os.path.join(ann_dir, key + '.npy')}]"
            )
    if problems:
        return None, problems
    out["videoname"] = [str(_decode(v)) for v in out["videoname"]]
    out["subset"] = [str(_decode(v)) for v in out["subset"]]
    out["classlist"] = [str(_decode(v)) for v in out["classlist"]]
    return out, []


def wtalc_split_subsets(subsets: Sequence[str]) -> Optional[tuple[str, str]]:
    """(train subset, test subset) of a W-TALC set: THUMOS uses validation/test, ActivityNet training/validation."""
    present = set(subsets)
    if "test" in present:
        return "validation", "test"
    if "training" in present:
        return "training", "validation"
    return None


def wtalc_ground_truth(ann: dict, ann_dir: str, vids_idx: Sequence[int]) -> tuple[dict, list[str]]:
    """ActivityNet-style gt for the given video positions, plus form problems."""
    db, problems = {}, []
    for i in vids_idx:
        vid = ann["videoname"][i]
        entry_problems = []
        dur = _decode(ann["duration"][i])
        try:
            duration = float(np.asarray(dur).reshape(-1)[0]) if np.ndim(dur) else float(dur)
        except (TypeError, ValueError, IndexError):
            duration = float("nan")
        if not math.isfinite(duration) or duration <= 0:
            entry_problems.append(f"video {vid}: duration {dur!r} is not a positive number "
                                  f"[{os.path.join(ann_dir, 'duration.npy')}]")
        segs = _as_list(ann["segments"][i])
        labs = _as_list(ann["labels"][i])
        if segs is None or labs is None:
            entry_problems.append(f"video {vid}: segments/labels entries are not lists "
                                  f"[{os.path.join(ann_dir, 'segments.npy')}]")
            segs, labs = [], []
        elif len(segs) != len(labs):
            entry_problems.append(f"video {vid}: {len(segs)} segments but {len(labs)} segment labels "
                                  f"[{os.path.join(ann_dir, 'segments.npy')}, {os.path.join(ann_dir, 'labels.npy')}]")
        annotations = []
        for j, (seg, lab) in enumerate(zip(segs, labs)):
            lab = _decode(lab)
            seg = _as_list(seg)
            ok = seg is not None and len(seg) == 2
            try:
                seg = [float(seg[0]), float(seg[1])] if ok else None
            except (TypeError, ValueError):
                seg, ok = None, False
            if not ok or not all(math.isfinite(s) for s in seg):
                entry_problems.append(f"video {vid}: segment {j} is not two finite numbers "
                                      f"[{os.path.join(ann_dir, 'segments.npy')}]")
                continue
            if not isinstance(lab, str):
                entry_problems.append(f"video {vid}: segment {j} label {lab!r} is not a string "
                                      f"[{os.path.join(ann_dir, 'labels.npy')}]")
                continue
            annotations.append({"label": lab, "segment": seg})
        problems += entry_problems
        db[vid] = {"subset": ann["subset"][i], "duration": duration, "annotations": annotations,
                   "_ok": not entry_problems}
    return {"database": db}, problems


def index_wtalc(root, split, class_names, tolerance, feature_dim, name=None) -> SplitIndex:
    name, probs = find_wtalc_name(root, name)
    feat_path = os.path.join(root, f"{name}{WTALC_FEATURES_SUFFIX}") if name else root
    ann_dir = os.path.join(root, f"{name}-Annotations") if name else root
    idx = SplitIndex("wtalc", root, split, (), feature_dim or DEFAULT_FEATURE_DIM, ann_dir)
    idx.problems += probs
    if name is None:
        return idx
    ann, probs = read_wtalc_annotations(ann_dir)
    idx.problems += probs
    if ann is None:
        return idx
    if class_names is not None:
        idx.class_names = _check_class_names(class_names)
        source = "the given class list"
    else:
        idx.class_names = tuple(ann["classlist"])
        source = "classlist.npy"
    if not idx.class_names:
        idx.problems.append(f"classlist.npy lists no classes [{os.path.join(ann_dir, 'classlist.npy')}]")
        return idx
    pair = wtalc_split_subsets(ann["subset"])
    if pair is None:
        idx.problems.append(
            f"cannot tell train from test: subsets are {sorted(set(ann['subset']))}, expected "
            f"'validation'/'test' (THUMOS) or 'training'/'validation' (ActivityNet) "
            f"[{os.path.join(ann_dir, 'subset.npy')}]"
        )
        return idx
    idx.gt_subset = pair[0] if split == "train" else pair[1]
    positions = [i for i, s in enumerate(ann["subset"]) if s == idx.gt_subset]
    if not positions:
        idx.problems.append(f"no video of subset {idx.gt_subset!r} [{os.path.join(ann_dir, 'subset.npy')}]")
        return idx
    seen = {}
    for i in positions:
        vid = ann["videoname"][i]
        if vid in seen:
            idx.problems.append(f"video {vid}: listed more than once [{os.path.join(ann_dir, 'videoname.npy')}]")
        seen[vid] = i
    gt, probs = wtalc_ground_truth(ann, ann_dir, positions)
    idx.problems += probs
    class_index = {c: k for k, c in enumerate(idx.class_names)}
    labels_all_path = os.path.join(ann_dir, "labels_all.npy")
    labels = []
    good_pos = []
    seg_source = f"{os.path.join(ann_dir, 'segments.npy')}, {os.path.join(ann_dir, 'labels.npy')}"
    for i in positions:
        vid = ann["videoname"][i]
        entry = gt["database"][vid]
        row = np.zeros(len(idx.class_names), dtype=np.float32)
        labels.append(row)
        if not entry.pop("_ok"):
            continue
        vprobs = entry_value_problems(vid, entry, seg_source, class_index, tolerance, source)
        names = [a["label"] for a in entry["annotations"]]
        if "labels_all" in ann:
            la = _as_list(ann["labels_all"][i])
            if la is None:
                vprobs.append(f"video {vid}: labels_all entry is not a list [{labels_all_path}]")
                la = []
            for lab in la:
                lab = _decode(lab)
                if not isinstance(lab, str) or lab not in class_index:
                    vprobs.append(f"video {vid}: video label {lab!r} is not one of the {len(class_index)} "
                                  f"classes of {source} [{labels_all_path}]")
                else:
                    names.append(lab)
        if split == "train" and not names:
            vprobs.append(f"video {vid}: training video has no labels [{labels_all_path}]")
        idx.problems += vprobs
        if vprobs:
            continue
        for lab in names:
            row[class_index[lab]] = 1.0
        good_pos.append(i)
    idx.gt = {"database": {ann["videoname"][i]: gt["database"][ann["videoname"][i]] for i in good_pos}}
    idx.labels = np.stack(labels) if labels else np.zeros((0, len(idx.class_names)), np.float32)

    # The features: one pickled object array, aligned with videoname.npy.
    if not os.path.isfile(feat_path):
        idx.problems.append(f"feature file is missing [{feat_path}]")
        return idx
    state = {}

    def all_features():
        if "arr" not in state:
            try:
                arr = np.load(feat_path, allow_pickle=True, encoding="bytes")
            except Exception as exc:  # noqa: BLE001
                state["arr"], state["err"] = None, f"feature file is unreadable: {type(exc).__name__}: {exc} [{feat_path}]"
                return state
            if not isinstance(arr, np.ndarray) or arr.ndim == 0 or len(arr) != len(ann["videoname"]):
                n = len(arr) if isinstance(arr, np.ndarray) and arr.ndim else "no"
                state["arr"], state["err"] = None, (
                    f"feature file holds {n} videos but videoname.npy has {len(ann['videoname'])} [{feat_path}]"
                )
            else:
                state["arr"], state["err"] = arr, None
        return state

    width = idx.feature_dim

    def make_loader(i, vid):
        def load(content: bool):
            st = all_features()
            if st["arr"] is None:  # reported once, not once per video
                first = not st.get("reported")
                st["reported"] = True
                return None, None, [st["err"]] if first else []
            arr = st["arr"][i]
            what = f"features (entry {i})"
            try:
                arr = np.asarray(arr)
            except Exception:  # noqa: BLE001
                return None, None, [f"video {vid}: {what} is not an array [{feat_path}]"]
            probs = array_problems(arr, what, vid, feat_path, width, content=True)
            if probs:
                return None, None, probs
            return np.ascontiguousarray(arr, dtype=np.float32), int(arr.shape[0]), []

        return load

    for i in positions:  # every video's features are checked, also those with annotation problems
        vid = ann["videoname"][i]
        idx.videos.append(VideoRecord(vid, [feat_path], make_loader(i, vid)))
    idx.shared_state = state  # type: ignore[attr-defined]
    return idx


def build_index(dataset, root, split, *, class_names=None, tolerance=DEFAULT_TOLERANCE,
                feature_dim=None, name=None) -> SplitIndex:
    dataset = canonical_dataset(dataset)
    split = canonical_split(dataset, split)
    root = os.fspath(root)
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0 (seconds), got {tolerance!r}")
    if feature_dim is not None and (not isinstance(feature_dim, int) or feature_dim < 1):
        raise ValueError(f"feature_dim must be a positive int, got {feature_dim!r}")
    if dataset == "thumos14":
        return index_thumos14(root, split, class_names, float(tolerance), feature_dim)
    if dataset == "activitynet":
        return index_activitynet(root, split, class_names, float(tolerance), feature_dim)
    return index_wtalc(root, split, class_names, float(tolerance), feature_dim, name=name)


def problems_message(problems: list[str], dataset: str, root: str, split: Optional[str] = None) -> str:
    where = f"{dataset} data at {root}" + (f" (split {split!r})" if split else "")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return (
        f"{len(problems)} problem(s) in {where}: {problems[0]}{more}. "
        f"List them all with: python -m sal_ext.data check --dataset {dataset} --data-root {root}"
    )
