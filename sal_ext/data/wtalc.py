"""The W-TALC / CO2-Net single-file layout.

``root/<name>-I3D-JOINTFeatures.npy`` (a pickled object array of [T, D] arrays) and
``root/<name>-Annotations/`` (videoname, subset, classlist, segments, labels, duration and
optionally labels_all, each a .npy aligned with videoname.npy). THUMOS-style sets train on
subset "validation" and test on "test"; ActivityNet-style ones on "training" / "validation".
"""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import numpy as np

from .feature_files import array_problems
from .ground_truth import entry_value_problems
from .split_index import DEFAULT_FEATURE_DIM, SplitIndex, VideoRecord, check_class_names

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
        idx.class_names = check_class_names(class_names)
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
