"""Reading the evaluator's inputs: ground truth and predictions as ActivityNet-style JSON
(paths or loaded dicts), the THUMOS14 challenge's per-class text files, ambiguous-segment lists.

* ground truth: ``{"database": {video: {"subset": s, "annotations": [{"label": l,
  "segment": [start, end]}, ...]}}}`` (other keys ignored), or a folder of the THUMOS14
  challenge's ``<class>_<subset>.txt`` files (``video start end`` a line, seconds), with
  ``Ambiguous_<subset>.txt`` and optionally ``detclasslist.txt`` (``id name`` a line: the
  class order);
* predictions: ``{"results": {video: [{"label": l, "score": x, "segment": [start, end]}, ...]}}``;
* ambiguous segments: a text file, ``video start end`` or ``video label start end`` a line
  (the challenge's ``Ambiguous_test.txt`` / W-TALC's), seconds.

Malformed input raises ValueError naming the file or video, the entry and the field. Files
are read as UTF-8 whatever the locale (another encoding: ValueError naming the file); segments
(ambiguous ones too) must have end >= start.
"""
from __future__ import annotations

import contextlib
import gc
import glob
import json
import math
import os
import warnings
from itertools import chain, repeat
from operator import itemgetter
from numbers import Real
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

JsonLike = Union[str, "os.PathLike[str]", Dict[str, Any]]
AMBIGUOUS = "Ambiguous"  # the THUMOS14 label of segments that are neither action nor background


# --------------------------------------------------------------------------- loading
@contextlib.contextmanager
def _gc_paused():
    """Pauses the cyclic garbage collector: json builds one container per prediction, none in
    a cycle, and the collections it would trigger on the way cost ~40% of the parse."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load(obj: JsonLike, what: str) -> Dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, (str, os.PathLike)) and what == "ground truth" and os.path.isdir(obj):
        return read_th14_folder(obj)
    if isinstance(obj, (str, os.PathLike)):
        text = read_text(obj, f"{what} file")
        with _gc_paused():
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{what} file {os.fspath(obj)!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{what} file {os.fspath(obj)!r} must hold a JSON object")
        return data
    raise TypeError(f"{what} must be a path or a dict, got {type(obj).__name__}")


def read_text(path, what: str = "file") -> str:
    """The text of a UTF-8 file (JSON is UTF-8 by its standard; the challenge's text files are
    ASCII), whatever the locale. Another encoding (e.g. latin-1) raises a one-line ValueError
    naming the file and the first bad byte."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{what} {os.fspath(path)!r} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on "
                         f"line {line}): save it as UTF-8") from None


def _number(x, where: str, field: str) -> float:
    if isinstance(x, bool) or not isinstance(x, Real):
        raise ValueError(f"{where}: `{field}` must be a number, got {x!r}")
    return float(x)


def _segment(seg, where: str) -> Tuple[float, float]:
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise ValueError(f"{where}: `segment` must be [start, end], got {seg!r}")
    s, e = _number(seg[0], where, "segment"), _number(seg[1], where, "segment")
    if not (math.isfinite(s) and math.isfinite(e)):
        raise ValueError(f"{where}: `segment` must be finite, got {seg!r}")
    if e < s:
        raise ValueError(f"{where}: `segment` has end < start: {seg!r}")
    return s, e


def _label(lab, where: str):
    if isinstance(lab, bool) or not isinstance(lab, (str, int)):
        raise ValueError(f"{where}: `label` must be a string or an int, got {lab!r}")
    return lab


def load_ground_truth(gt: JsonLike, subset: Optional[str] = None):
    """Parses a ground-truth file/dict/folder (see the module docstring).

    Returns (subset, videos, classes, video_idx [G], label_idx [G], segments [G, 2]) where
    ``videos`` are the video names of the subset (annotated or not) and ``classes`` the labels
    present, in order of first appearance.
    """
    data = _load(gt, "ground truth")
    if "database" not in data:
        raise ValueError("ground truth: missing key `database`")
    db = data["database"]
    if not isinstance(db, dict):
        raise ValueError("ground truth: `database` must be an object {video: {...}}")
    for vid, v in db.items():
        if not isinstance(v, dict) or "subset" not in v:
            raise ValueError(f"ground truth video {vid!r}: missing field `subset`")
    if subset is None:
        subset = "test" if any(v["subset"] == "test" for v in db.values()) else None
    videos = [vid for vid, v in db.items() if subset is None or v["subset"] == subset]
    if not videos:
        have = sorted({str(v["subset"]) for v in db.values()})
        raise ValueError(f"ground truth: no video in subset {subset!r} (subsets: {have})")
    classes: Dict[Any, int] = {}
    vidx, lidx, segs = [], [], []
    for n, vid in enumerate(videos):
        anns = db[vid].get("annotations")
        if anns is None:
            raise ValueError(f"ground truth video {vid!r}: missing field `annotations`")
        if not isinstance(anns, list):
            raise ValueError(f"ground truth video {vid!r}: `annotations` must be a list")
        for k, ann in enumerate(anns):
            where = f"ground truth video {vid!r}, annotation {k}"
            if not isinstance(ann, dict):
                raise ValueError(f"{where}: must be an object with `label` and `segment`")
            for field in ("label", "segment"):
                if field not in ann:
                    raise ValueError(f"{where}: missing field `{field}`")
            lab = _label(ann["label"], where)
            segs.append(_segment(ann["segment"], where))
            lidx.append(classes.setdefault(lab, len(classes)))
            vidx.append(n)
    if not segs:
        raise ValueError(f"ground truth: subset {subset!r} has no annotations")
    return (subset, videos, list(classes), np.asarray(vidx, np.int64), np.asarray(lidx, np.int64),
            np.asarray(segs, np.float64).reshape(-1, 2))


class _SlowPath(Exception):
    """The fast parser met something unusual: the checking parser finds and names it."""


def _fast_predictions(res, vmap, cmap, with_labels):
    """Vectorised parse of well-formed predictions (the common case); _SlowPath otherwise.

    C-level loops only (map/itemgetter, np.fromiter): ~10x faster than a Python loop.
    """
    counts, vids = [], []
    for vid, items in res.items():
        if type(items) is not list:
            raise _SlowPath
        counts.append(len(items))
        vids.append(vmap.get(vid, -1))
    flat = list(chain.from_iterable(res.values()))
    n = len(flat)
    try:
        scores = list(map(itemgetter("score"), flat))
        segs = list(map(itemgetter("segment"), flat))
        labels = list(map(itemgetter("label"), flat)) if with_labels else None
    except (KeyError, TypeError, IndexError):
        raise _SlowPath from None
    if not set(map(type, scores)) <= {float, int} or not set(map(type, segs)) <= {list, tuple}:
        raise _SlowPath
    if n and set(map(len, segs)) != {2}:
        raise _SlowPath
    ends = list(chain.from_iterable(segs))
    if not set(map(type, ends)) <= {float, int}:
        raise _SlowPath
    score = np.fromiter(scores, dtype=np.float64, count=n)
    seg = np.fromiter(ends, dtype=np.float64, count=2 * n).reshape(n, 2)
    if np.isnan(score).any() or not np.isfinite(seg).all() or (seg[:, 1] < seg[:, 0]).any():
        raise _SlowPath
    if with_labels:
        if not set(map(type, labels)) <= {str, int}:
            raise _SlowPath
        lab = np.fromiter(map(cmap.get, labels, repeat(-1, n)), dtype=np.int64, count=n)
    else:
        lab = np.zeros(n, np.int64)
    vid = np.repeat(np.asarray(vids, np.int64), counts)
    return vid, lab, score, seg, labels


def _checked_predictions(res, vmap, cmap, with_labels, what):
    """Item-by-item parse that raises ValueError naming the video, entry and field."""
    vidx, lidx, scores, segs, labels = [], [], [], [], []
    for vid, items in res.items():
        if not isinstance(items, list):
            raise ValueError(f"{what} video {vid!r}: must be a list of predictions")
        for k, item in enumerate(items):
            where = f"{what} video {vid!r}, entry {k}"
            if not isinstance(item, dict):
                raise ValueError(f"{where}: must be an object")
            fields = ("label", "score", "segment") if with_labels else ("score", "segment")
            for field in fields:
                if field not in item:
                    raise ValueError(f"{where}: missing field `{field}`")
            score = _number(item["score"], where, "score")
            if math.isnan(score):
                raise ValueError(f"{where}: `score` is NaN")
            segs.append(_segment(item["segment"], where))
            scores.append(score)
            vidx.append(vmap.get(vid, -1))
            if with_labels:
                lab = _label(item["label"], where)
                labels.append(lab)
                lidx.append(cmap.get(lab, -1))
            else:
                lidx.append(0)
    return (np.asarray(vidx, np.int64), np.asarray(lidx, np.int64), np.asarray(scores, np.float64),
            np.asarray(segs, np.float64).reshape(-1, 2), labels)


def load_predictions(pred: JsonLike, videos: Sequence[str], classes: Sequence[Any], *,
                     with_labels: bool = True, what: str = "predictions",
                     drop_unknown_videos: bool = False, report: Optional[Dict[str, int]] = None):
    """Parses a prediction file/dict against the ground truth's videos and classes.

    Returns (video_idx [P], label_idx [P], score [P], segments [P, 2]). Videos of the subset
    get the index of ``videos``; a video outside it gets ``len(videos) + k`` (k-th such video
    in file order), so it has no ground truth and its predictions are false positives (the
    official rule); with ``drop_unknown_videos`` they are dropped with one warning instead.
    Predictions of labels absent from ``classes`` are dropped with one warning. ``report``,
    when given, receives ``unknown_videos`` (videos outside the subset), ``dropped_video``
    and ``dropped_label`` (numbers of predictions dropped), ``video_names`` (every index's name).
    """
    data = _load(pred, what)
    if "results" not in data:
        raise ValueError(f"{what}: missing key `results`")
    res = data["results"]
    if not isinstance(res, dict):
        raise ValueError(f"{what}: `results` must be an object {{video: [...]}}")
    vmap = {v: i for i, v in enumerate(videos)}
    unknown_videos = [v for v in res if v not in vmap]
    for v in unknown_videos:
        vmap[v] = len(vmap)
    cmap = {c: i for i, c in enumerate(classes)}
    try:
        vid, lab, score, seg, labels = _fast_predictions(res, vmap, cmap, with_labels)
    except _SlowPath:
        vid, lab, score, seg, labels = _checked_predictions(res, vmap, cmap, with_labels, what)
    keep = np.ones(len(vid), bool)
    outside = vid >= len(videos)
    if drop_unknown_videos and unknown_videos:
        shown = ", ".join(repr(v) for v in unknown_videos[:5]) + (", ..." if len(unknown_videos) > 5 else "")
        warnings.warn(f"{what}: {len(unknown_videos)} video(s) not in the ground-truth subset ({shown}); "
                      f"their {int(outside.sum())} prediction(s) are ignored (drop_unknown_videos)",
                      stacklevel=3)
        keep &= ~outside
    bad_label = keep & (lab < 0)
    if bad_label.any():
        unknown = list(dict.fromkeys(labels[i] for i in np.flatnonzero(bad_label)))
        shown = ", ".join(repr(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        warnings.warn(f"{what}: {len(unknown)} label(s) absent from the ground truth ({shown}); "
                      f"their {int(bad_label.sum())} prediction(s) are dropped", stacklevel=3)
    if report is not None:
        report.update(unknown_videos=len(unknown_videos), video_names=list(vmap),
                      dropped_video=int(outside.sum()) if drop_unknown_videos else 0,
                      dropped_label=int(bad_label.sum()))
    keep &= lab >= 0
    return vid[keep], lab[keep], score[keep], seg[keep]


# --------------------------------------------------------------------------- THUMOS14 text files
def _text_rows(path: str, n_min: int, n_max: int) -> List[Tuple[int, List[str]]]:
    rows = [(k + 1, line.split()) for k, line in enumerate(read_text(path).splitlines())]
    rows = [(k, r) for k, r in rows if r]
    for k, r in rows:
        if not n_min <= len(r) <= n_max:
            raise ValueError(f"{path}, line {k}: expected {n_min if n_min == n_max else f'{n_min} or {n_max}'} "
                             f"fields (video{' [label]' if n_max > n_min else ''} start end), got {' '.join(r)!r}")
    return rows


def _seconds(text: str, path: str, line: int) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{path}, line {line}: {text!r} is not a number of seconds") from None
    if not math.isfinite(v):
        raise ValueError(f"{path}, line {line}: {text!r} is not finite")
    return v


def _ordered(s: float, e: float, where: str) -> Tuple[float, float]:
    if e < s:
        raise ValueError(f"{where}: segment has end < start ({s:g}, {e:g})")
    return s, e


def read_th14_folder(path) -> Dict[str, Any]:
    """The THUMOS14 challenge's ground-truth folder as a ground-truth dict.

    Every ``<class>_<subset>.txt`` (``video start end`` a line) becomes annotations of that
    class in videos of that subset; ``Ambiguous_<subset>.txt`` goes to the top-level
    ``"ambiguous"`` list ([video, subset, start, end] entries; its videos are subset videos).
    With ``detclasslist.txt`` (``id name`` a line) only its classes are read, in its order
    (as TH14evalDet.m does); without it, every ``*_<subset>.txt`` in name order.
    """
    path = os.fspath(path)
    order = None
    listfile = os.path.join(path, "detclasslist.txt")
    if os.path.isfile(listfile):
        order = [r[1] for _, r in _text_rows(listfile, 2, 2)]
    files = []
    for f in sorted(glob.glob(os.path.join(path, "*_*.txt"))):
        cls, _, sub = os.path.basename(f)[:-4].rpartition("_")
        if order is None or cls in order or cls == AMBIGUOUS:
            files.append((cls, sub, f))
    if order is not None:
        rank = {c: i for i, c in enumerate(order)}
        files.sort(key=lambda x: rank.get(x[0], len(rank)))
    if not files:
        raise ValueError(f"ground truth folder {path!r}: no <class>_<subset>.txt file")
    db: Dict[str, Dict[str, Any]] = {}
    amb: List[list] = []
    for cls, sub, f in files:
        for k, row in _text_rows(f, 3, 3):
            s, e = _ordered(_seconds(row[1], f, k), _seconds(row[2], f, k), f"{f}, line {k}")
            entry = db.setdefault(row[0], {"subset": sub, "annotations": []})
            if entry["subset"] != sub:
                raise ValueError(f"{f}, line {k}: video {row[0]!r} is also in subset {entry['subset']!r}")
            if cls == AMBIGUOUS:
                amb.append([row[0], sub, s, e])
            else:
                entry["annotations"].append({"label": cls, "segment": [s, e]})
    return {"database": db, "ambiguous": amb}


def read_ambiguous(path) -> List[Tuple[str, float, float]]:
    """An ambiguous-segment file: ``video start end`` (the challenge's Ambiguous_test.txt) or
    ``video label start end`` (W-TALC's) a line, seconds -> [(video, start, end)]."""
    path = os.fspath(path)
    return [(r[0], *_ordered(_seconds(r[-2], path, k), _seconds(r[-1], path, k), f"{path}, line {k}"))
            for k, r in _text_rows(path, 3, 4)]


def split_ambiguous(gt: JsonLike, subset: Optional[str], ambiguous=None):
    """(ground truth without ambiguous annotations, [(video, start, end)] ambiguous segments,
    whether any source of ambiguous segments was given).

    Ambiguous segments are the ground truth's annotations labelled "Ambiguous" (not a class
    in the THUMOS14 protocols), its top-level ``"ambiguous"`` list (a challenge folder) for
    the evaluated subset, and ``ambiguous``: a path to an ambiguous-segment file or a
    sequence of (video, start, end).
    """
    data = _load(gt, "ground truth")
    db = data.get("database")
    amb: List[Tuple[str, float, float]] = []
    given = ambiguous is not None or "ambiguous" in data
    if isinstance(db, dict) and any(isinstance(v, dict) and isinstance(v.get("annotations"), list)
                                    and any(isinstance(a, dict) and a.get("label") == AMBIGUOUS
                                            for a in v["annotations"]) for v in db.values()):
        given = True
        db = dict(db)
        for vid, v in db.items():
            if not (isinstance(v, dict) and isinstance(v.get("annotations"), list)):
                continue
            keep = [a for a in v["annotations"] if not (isinstance(a, dict) and a.get("label") == AMBIGUOUS)]
            if len(keep) != len(v["annotations"]):
                for k, a in enumerate(v["annotations"]):
                    if isinstance(a, dict) and a.get("label") == AMBIGUOUS:
                        s, e = _segment(a.get("segment"), f"ground truth video {vid!r}, annotation {k}")
                        amb.append((vid, s, e, v.get("subset")))
                db[vid] = dict(v, annotations=keep)
        data = dict(data, database=db)
    if subset is None and isinstance(db, dict):  # the subset load_ground_truth will evaluate
        subset = "test" if any(isinstance(v, dict) and v.get("subset") == "test" for v in db.values()) else None
    amb = [(v, s, e) for v, s, e, sub in amb if subset is None or sub == subset]
    if "ambiguous" in data:
        amb += [(v, *_ambiguous_entry((s, e), f"ground truth `ambiguous` entry {k} (video {v!r})"))
                for k, (v, sub, s, e) in enumerate(data["ambiguous"]) if subset is None or sub == subset]
    if isinstance(ambiguous, (str, os.PathLike)):
        amb += read_ambiguous(ambiguous)
    elif ambiguous is not None:
        try:
            items = [(str(v), s, e) for v, s, e in ambiguous]
        except (TypeError, ValueError):
            raise TypeError("`ambiguous` must be a path or a sequence of (video, start, end)") from None
        amb += [(v, *_ambiguous_entry((s, e), f"`ambiguous` entry {k} (video {v!r})"))
                for k, (v, s, e) in enumerate(items)]
    return data, amb, given


def _ambiguous_entry(seg, where: str) -> Tuple[float, float]:
    """(start, end) of an ambiguous segment given as numbers: finite, end >= start."""
    try:
        s, e = float(seg[0]), float(seg[1])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: start and end must be numbers, got {list(seg)!r}") from None
    if not (math.isfinite(s) and math.isfinite(e)):
        raise ValueError(f"{where}: start and end must be finite, got {list(seg)!r}")
    return _ordered(s, e, where)
