"""Temporal action detection evaluation: mAP at several tIoU thresholds under the three
protocols WTAL papers report, for the same detections.

Command line::

    python -m sal_ext.evaluate --gt gt.json|TH14_FOLDER --pred results.json [--subset test]
        [--protocol activitynet|wtalc|thumos14|all] [--tiou LIST] [--dataset thumos14|activitynet]
        [--ambiguous Ambiguous_test.txt] [--fps 25 --snippet-frames 16]
        [--drop-unknown-videos] [--per-class] [--json]

prints a table of mAP (in %) per tIoU threshold, their mean and the protocol's named averages;
``--protocol all`` prints one table, a row per protocol. With ``--json`` the last line is a
JSON object (fractions in [0, 1], not %): one protocol::

    {"protocol": p, "tiou": [...], "mAP": [...], "average": x, "averages": {...},
     "num_gt": n, "num_pred": n, "subset": s, "dropped": {...}, "unknown_videos": n,
     "per_class": {...}}   # per_class only with --per-class

``all``: ``{"tiou": [union], "averages": [labels], "rows": {protocol: {"mAP": [x or null],
"averages": {...}}}, "protocols": {protocol: the object above}}``.

The protocols (``protocol=``; default ``activitynet``):

* ``activitynet`` -- ActivityNet's official Evaluation/eval_detection.py, used by SAL, ASL,
  AICL, CASE. Units: seconds. Filter: none. Matching: per class, predictions by descending
  score each take the unmatched ground truth of their video with the highest tIoU if
  >= threshold. AP: interpolated (all points). Default thresholds: 0.1:0.7 (``--dataset
  thumos14``; averages 0.1:0.5, 0.3:0.7, 0.1:0.7) or 0.5:0.95 (``--dataset activitynet``).
  See ``sal_ext.evaluation.activitynet`` and ``sal_ext.numpy_ops.detection``.
* ``wtalc`` -- W-TALC / CO2-Net / DELU / P-MIL's eval code. Units: snippets,
  ``round(t * fps / frames_per_snippet)`` (25 / 16). Filter: predictions whose snippet range
  shares a snippet with an ambiguous segment of their video are removed. Matching and AP:
  ActivityNet's, on snippet units. Default thresholds 0.1:0.9 (averages 0.1:0.5, 0.3:0.7,
  0.1:0.7, 0.1:0.9). See ``sal_ext.evaluation.wtalc``.
* ``thumos14`` -- the THUMOS14 challenge's Matlab kit (TH14evalDet.m). Units: seconds.
  Filter: unmatched detections overlapping an ambiguous segment are not counted. Matching:
  each ground truth takes the free detection of largest overlap if > threshold (strict).
  AP: not interpolated, sum of precisions at true positives / ground truths. Default
  thresholds 0.1:0.7. See ``sal_ext.evaluation.thumos14``.

Ambiguous segments (wtalc, thumos14): ground-truth annotations labelled ``Ambiguous``, a
challenge folder's ``Ambiguous_<subset>.txt``, and ``--ambiguous FILE`` / ``ambiguous=``
(``video [label] start end`` a line). Without any, nothing is filtered (one warning).

``--tiou`` is either a comma-separated list (``0.3,0.5,0.7``: the floats exactly as written)
or ``start:stop:step`` (``0.1:0.7:0.1``): like ``np.linspace(start, stop, n)`` with
``n = round((stop - start) / step) + 1``, i.e. both ends included; an empty item
(``0.3,,0.5``) or a threshold given twice is refused. It applies to every protocol. An
average is printed only for a range the thresholds cover and is labelled by what it averages
(``sal_ext.evaluation.thresholds``).

Files (``sal_ext.evaluation.loading``): ground truth ``{"database": {video: {"subset": s,
"annotations": [{"label": l, "segment": [start, end]}, ...]}}}`` or a folder of the
challenge's ``<class>_<subset>.txt`` files; predictions ``{"results": {video: [{"label": l,
"score": x, "segment": [start, end]}, ...]}}``.

Rules shared by the protocols (the official ActivityNet evaluator's, unless said):
* ``subset=None`` means "test" when some video has subset "test", else every video.
* Classes are the labels present in the ground truth of the subset (``Ambiguous`` is none
  under wtalc and thumos14; under activitynet it is a class, as the official code treats any
  label); mAP is the mean of their APs. A class with no prediction gets
  AP 0.
* A prediction on a video that is not in the evaluated ground-truth subset (a video of
  another subset, or one absent from the ground truth) is a false positive of its class, as
  in the official code (its predictions enter the per-class ranking and can never match). So
  is a prediction on a subset video without annotations. ``drop_unknown_videos=True``
  (``--drop-unknown-videos``) instead ignores the predictions of videos outside the subset
  (one warning saying how many): an explicit opt-in, not the official number.
* A predicted label absent from the ground truth of the subset is ignored with one warning
  that says how many predictions were dropped (the official code raises KeyError there);
  the count is also in the result (``dropped``) and printed by the command line.
* Malformed input (missing key, non-numeric or non-finite segment, end < start, NaN or
  non-numeric score) raises ValueError naming the video and the field.
* Zero-length segments are legal and never match (the official code's 0/0 = NaN tIoU makes
  a zero-length prediction match a zero-length ground truth: not copied).

Python API: ``detection_map(gt, pred, ..., protocol=)`` (paths or loaded dicts),
``detection_map_protocols(gt, pred, protocols)`` (several, one table),
``detection_map_arrays(...)`` (ActivityNet protocol on tensors/arrays, for the trainer) and
``average_recall_vs_proposals(gt, proposals, ...)`` (ActivityNet proposal metric, AR@AN).
This module imports numpy and ``sal_ext._C`` only: not torch (tensors are accepted where arrays
are, when the caller has torch), not the model, data or trainer; it starts in a fraction of a
second.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence

from .evaluation.activitynet import activitynet_ap, detection_map_arrays  # noqa: F401
from .evaluation.loading import (JsonLike, _fast_predictions, _load, _SlowPath, load_ground_truth,  # noqa: F401
                                 load_predictions, split_ambiguous)
from .evaluation.proposals import average_recall_vs_proposals  # noqa: F401
from .evaluation.summary import summarize
from .evaluation.table import dropped_line, format_protocol_table, format_table, table_rows, to_json
from .evaluation.thresholds import DATASETS, PROTOCOLS, check_protocol, default_thresholds, parse_tiou  # noqa: F401
from .evaluation.thresholds import check_unique
from .evaluation.thumos14 import thumos14_ap
from .evaluation.wtalc import ambiguous_mask, to_snippets
from .numpy_ops.detection import check_thresholds


def _positive(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        raise ValueError(f"`{name}` must be a positive number, got {x!r}")
    return float(x)


def detection_map(gt: JsonLike, pred: JsonLike, tiou_thresholds=None, subset: Optional[str] = None,
                  dataset: str = "thumos14", per_class: bool = True,
                  backend: Optional[str] = None, *, protocol: str = "activitynet",
                  drop_unknown_videos: bool = False, ambiguous=None, fps: float = 25.0,
                  frames_per_snippet: float = 16.0) -> Dict[str, Any]:
    """Detection mAP of a prediction file against a ground-truth file under one protocol.

    Args:
        gt, pred: paths (a ground-truth folder of the challenge's text files too) or the
            already loaded dicts (see the module docstring).
        tiou_thresholds: sequence of floats in (0, 1], used exactly; None: the protocol's
            default (for activitynet, the dataset's).
        subset: ground-truth subset; None: "test" if present, else all videos.
        dataset: "thumos14" or "activitynet" (the activitynet protocol's default thresholds
            and named averages).
        per_class: include {class name: [AP per tIoU]}.
        backend: the detection_ap kernel's (activitynet, wtalc): "auto" (default, or
            SAL_EXT_BACKEND), "kernel" or "torch" (its numpy fallback; the same numbers).
        protocol: "activitynet" (default), "wtalc" or "thumos14" (module docstring).
        drop_unknown_videos: ignore (instead of counting as false positives) the predictions
            of videos outside the ground-truth subset; not the official number.
        ambiguous: wtalc/thumos14: a path to an ambiguous-segment file or a sequence of
            (video, start, end), added to the ground truth's ``Ambiguous`` annotations;
            ``[]`` says there are none (no warning). Ignored by activitynet.
        fps, frames_per_snippet: wtalc's seconds -> snippets conversion (25, 16).

    Returns:
        {"protocol": p, "tiou": [...], "mAP": [... per tIoU, fraction ...], "average": mean
         of mAP, "averages": {"0.1:0.5": x, ...}, "per_class": {...}, "num_gt": G,
         "num_pred": P, "subset": s, "ap": ndarray [n_tiou, n_classes],
         "dropped": {"unknown_label": n, "unknown_video": n[, "ambiguous": n (wtalc)]},
         "unknown_videos": n[, "ambiguous_segments": n (wtalc, thumos14)]}
    """
    check_protocol(protocol)
    thr = default_thresholds(dataset, protocol) if tiou_thresholds is None else \
        check_unique(check_thresholds(tiou_thresholds, "detection_map"), "detection_map: `tiou_thresholds`")
    if protocol == "wtalc":
        fps, frames_per_snippet = _positive(fps, "fps"), _positive(frames_per_snippet, "frames_per_snippet")
    amb_list: list = []
    if protocol != "activitynet":
        gt, amb_list, given = split_ambiguous(gt, subset, ambiguous)
        if not given:
            warnings.warn(f"protocol {protocol!r}: no ambiguous segments given (no 'Ambiguous' annotation, "
                          "no `ambiguous` file): nothing is filtered", stacklevel=2)
    subset, videos, classes, gv, gl, gseg = load_ground_truth(gt, subset)
    report: Dict[str, Any] = {}
    pv, pl, ps, pseg = load_predictions(pred, videos, classes, drop_unknown_videos=drop_unknown_videos,
                                        report=report)
    vmap = {v: i for i, v in enumerate(report["video_names"])}
    amb = [(vmap[v], s, e) for v, s, e in amb_list if v in vmap]
    dropped = {"unknown_label": report["dropped_label"], "unknown_video": report["dropped_video"]}
    C = len(classes)
    if protocol == "activitynet":
        ap = activitynet_ap(pv, pl, ps, pseg, gv, gl, gseg, thr, C, backend)
    elif protocol == "wtalc":
        psn, gsn = to_snippets(pseg, fps, frames_per_snippet), to_snippets(gseg, fps, frames_per_snippet)
        keep = ~ambiguous_mask(pv, psn, amb, fps, frames_per_snippet)
        dropped["ambiguous"] = int((~keep).sum())
        ap = activitynet_ap(pv[keep], pl[keep], ps[keep], psn[keep], gv, gl, gsn, thr, C, backend)
    else:
        ap = thumos14_ap(pv, pl, ps, pseg, gv, gl, gseg, thr, C, report["video_names"], amb)
    out = summarize(ap, gl, thr, C, len(pl), protocol, dataset, classes, per_class)
    out.update(subset=subset, dropped=dropped, unknown_videos=report["unknown_videos"])
    if protocol != "activitynet":
        out["ambiguous_segments"] = len(amb_list)
    return out


def detection_map_protocols(gt: JsonLike, pred: JsonLike, protocols: Sequence[str] = PROTOCOLS,
                            **kw) -> Dict[str, Dict[str, Any]]:
    """{protocol: detection_map(gt, pred, protocol=protocol, **kw)} for the same detections
    (files read once; each warning once)."""
    protocols = [check_protocol(p) for p in protocols]
    if not protocols:
        raise ValueError("`protocols` must name at least one protocol")
    gt, pred = _load(gt, "ground truth"), _load(pred, "predictions")
    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for p in protocols:
            out[p] = detection_map(gt, pred, protocol=p, **kw)
    for msg in dict.fromkeys(str(w.message) for w in caught):
        warnings.warn(msg, stacklevel=2)
    return out


# --------------------------------------------------------------------------- command line
def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m sal_ext.evaluate",
                                description="Detection mAP of a prediction file under the ActivityNet, "
                                            "W-TALC and THUMOS14 protocols.",
                                epilog="--tiou: '0.3,0.5,0.7' (exact values) or 'start:stop:step' "
                                       "(np.linspace, both ends included).")
    p.add_argument("--gt", required=True, help="ground-truth JSON ({'database': ...}) or a folder of "
                                                "THUMOS14 <class>_<subset>.txt files")
    p.add_argument("--pred", required=True, help="prediction JSON ({'results': ...})")
    p.add_argument("--subset", default=None, help="ground-truth subset (default: 'test' if present, else all)")
    p.add_argument("--protocol", default="activitynet", choices=list(PROTOCOLS) + ["all"],
                   help="evaluation protocol (default activitynet, the official ActivityNet code); "
                        "all: one table with a row per protocol")
    p.add_argument("--dataset", default="thumos14", choices=sorted(DATASETS),
                   help="the activitynet protocol's default thresholds and named averages (default thumos14)")
    p.add_argument("--tiou", default=None, help="thresholds: comma list or start:stop:step")
    p.add_argument("--ambiguous", default=None, metavar="FILE",
                   help="ambiguous segments for wtalc/thumos14 (video [label] start end a line, "
                        "e.g. THUMOS14's Ambiguous_test.txt)")
    p.add_argument("--fps", type=float, default=25.0, help="wtalc: video frames per second (default 25)")
    p.add_argument("--snippet-frames", type=float, default=16.0, help="wtalc: frames per snippet (default 16)")
    p.add_argument("--drop-unknown-videos", action="store_true",
                   help="ignore predictions on videos outside the ground-truth subset (default: "
                        "false positives, as the official ActivityNet code counts them)")
    p.add_argument("--per-class", action="store_true", help="also print per-class AP")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    args = p.parse_args(argv)
    protocols = list(PROTOCOLS) if args.protocol == "all" else [args.protocol]
    show = warnings.showwarning  # warnings as one line each, without the source line
    warnings.showwarning = lambda message, *a, **k: print(f"sal_ext.evaluate: warning: {message}", file=sys.stderr)
    try:
        thr = parse_tiou(args.tiou) if args.tiou is not None else None
        results = detection_map_protocols(args.gt, args.pred, protocols, tiou_thresholds=thr, subset=args.subset,
                                          dataset=args.dataset, per_class=args.per_class,
                                          drop_unknown_videos=args.drop_unknown_videos, ambiguous=args.ambiguous,
                                          fps=args.fps, frames_per_snippet=args.snippet_frames)
    except (ValueError, TypeError, OSError, RuntimeError) as exc:  # RuntimeError: SAL_EXT_BACKEND=kernel, none built
        msg = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else exc
        p.exit(2, f"sal_ext.evaluate: error: {msg}\n")
    finally:
        warnings.showwarning = show
    res = next(iter(results.values()))
    print(f"subset {res['subset']!r}: {res['num_gt']} ground truths, {res['num_pred']} predictions, "
          f"{res['ap'].shape[1]} classes")
    print(dropped_line(res))
    for name, r in results.items():
        if "ambiguous_segments" in r:
            extra = f"; {r['dropped']['ambiguous']} prediction(s) removed" if "ambiguous" in r["dropped"] else ""
            print(f"{name}: {r['ambiguous_segments']} ambiguous segment(s){extra}")
    if len(results) == 1:
        print(format_table(res))
        out = to_json(res)
    else:
        print(format_protocol_table(results))
        for name, r in results.items():
            if r.get("per_class"):
                print(f"\n{name}:\n" + format_table(r))
        out = dict(table_rows(results), protocols={k: to_json(r) for k, r in results.items()})
    if args.json:
        print(json.dumps(out))
    sys.stdout.flush()
    return res if len(results) == 1 else results


if __name__ == "__main__":
    main()
