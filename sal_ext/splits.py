"""A dataset split as the trainer and sal_ext.infer use it: built from the config, run through
the model in batches (one process, or sharded under torchrun), post-processed into detections
and evaluated (ActivityNet-protocol mAP, the other protocols on request), and printed as a table.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List

import torch
from torch.utils.data import DataLoader, Subset

from . import distributed
from .config import inference_config


# -- building a split -----------------------------------------------------------------------------
def ensure_synthetic_data(cfg: Dict[str, Any]) -> str:
    from .data.synthetic import ensure_synthetic
    return os.path.abspath(ensure_synthetic(**cfg.get("synthetic", {})))


def build_split(cfg: Dict[str, Any], split: str, sampling: str):
    from .data import build_dataset
    kw = {} if cfg["feature_dim"] == 2048 else {"feature_dim": cfg["feature_dim"]}
    return build_dataset(cfg["dataset"], cfg["data_root"], split, num_segments=cfg["num_segments"],
                         sampling=sampling, seed=cfg["train"]["seed"], **kw)


def base_dataset(ds):
    return ds.dataset if isinstance(ds, Subset) else ds


def collate(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "features": torch.stack([torch.as_tensor(it["features"]) for it in items]),
        "label": torch.stack([torch.as_tensor(it["label"]) for it in items]),
        "video_id": [it["video_id"] for it in items],
        "t_orig": torch.tensor([int(it["t_orig"]) for it in items]),
    }


def private_generator(seed: int = 0) -> torch.Generator:
    """A DataLoader draws its workers' base seed from the global torch RNG unless given a
    generator: a private one keeps evaluations and (re)started loaders from shifting the
    global stream (dropout), so a resumed run continues exactly."""
    return torch.Generator().manual_seed(seed)


# -- detections and their mAP -----------------------------------------------------------------------
def postprocess_outputs(outs: Dict[str, torch.Tensor], t_orig, video_ids, class_names, cfg, labels=None):
    from .inference import postprocess
    return postprocess(outs["cas"], outs["a_rgb"], outs["a_flow"], outs["sc"], t_orig, video_ids,
                       class_names, inference_config(cfg), labels=labels)


def detection_map(gt, results, cfg, subset):
    from .evaluate import detection_map as _dmap
    kind = "activitynet" if cfg["dataset"] == "activitynet" else "thumos14"   # named averages
    return _dmap(gt, results, tiou_thresholds=cfg["eval"]["tiou_thresholds"], subset=subset,
                 dataset=kind)


def final_protocols(gt, results, cfg, subset):
    """{protocol: result} of sal_ext.evaluate for cfg["eval"]["protocols"] (each at its default
    thresholds). wtalc/thumos14 need ambiguous segments: eval.ambiguous_file, else the data
    root's Ambiguous_test.txt if present, else none (the synthetic set has none)."""
    from .evaluate import detection_map_protocols
    amb = cfg["eval"].get("ambiguous_file")
    if amb is None:
        cand = os.path.join(cfg.get("data_root") or "", "Ambiguous_test.txt")
        amb = cand if cfg.get("data_root") and os.path.isfile(cand) else []
    kind = "activitynet" if cfg["dataset"] == "activitynet" else "thumos14"
    res = detection_map_protocols(gt, results, cfg["eval"]["protocols"], subset=subset, dataset=kind,
                                  per_class=False, ambiguous=amb)
    return {k: {f: v[f] for f in ("tiou", "mAP", "average", "averages")} for k, v in res.items()}


def format_table(res: Dict[str, Any], title: str = "") -> str:
    tious = list(res["tiou"])
    head = ["mAP@%.2f" % t for t in tious] + ["avg " + k for k in res.get("averages", {})]
    vals = [100 * v for v in res["mAP"]] + [100 * v for v in res.get("averages", {}).values()]
    w = max(len(h) for h in head) + 1
    lines = [title] if title else []
    lines.append("".join(h.rjust(w) for h in head))
    lines.append("".join(("%.2f" % v).rjust(w) for v in vals))
    return "\n".join(lines)


# -- the evaluation pass ----------------------------------------------------------------------------
@torch.no_grad()
def run_inference(model, dataset, device, batch_size: int = 16, num_workers: int = 0):
    """model.predict over a whole split (uniform sampling: every video num_segments long).

    Returns (outputs dict of CPU tensors [N, ...], t_orig [N], video_ids, labels [N, C])."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate, generator=private_generator())
    acc: Dict[str, List[torch.Tensor]] = {}
    t_orig, vids, labels = [], [], []
    for batch in loader:
        out = model.predict(batch["features"].to(device, non_blocking=True))
        for k, v in out.items():
            acc.setdefault(k, []).append(v.float().cpu())
        t_orig.append(batch["t_orig"])
        vids += batch["video_id"]
        labels.append(batch["label"])
    outs = {k: torch.cat(v) for k, v in acc.items()}
    return outs, torch.cat(t_orig), vids, torch.cat(labels)


def evaluate_split(model, dataset, cfg, device, *, gt=None, subset=None, batch_size=16,
                   num_workers=0) -> Dict[str, Any]:
    """Forward (predict) + postprocess + detection mAP; returns a JSON-able record with times.
    Under torchrun: evaluate_split_sharded."""
    if distributed.current().initialized:
        return evaluate_split_sharded(model, dataset, cfg, device, gt=gt, subset=subset,
                                      batch_size=batch_size, num_workers=num_workers)
    base = base_dataset(dataset)
    t0 = time.perf_counter()
    outs, t_orig, vids, labels = run_inference(model, dataset, device, batch_size, num_workers)
    t1 = time.perf_counter()
    post = postprocess_outputs(outs, t_orig, vids, base.class_names, cfg, labels=labels)
    t2 = time.perf_counter()
    res = detection_map(gt if gt is not None else base.gt, post["results"], cfg,
                        subset if subset is not None else (cfg["eval"]["subset"] or base.gt_subset))
    t3 = time.perf_counter()
    return {
        "tiou": [float(t) for t in res["tiou"]],
        "mAP": [float(v) for v in res["mAP"]],
        "average": float(res["average"]),
        "averages": {k: float(v) for k, v in (res.get("averages") or {}).items()},
        "classification_accuracy": float(post.get("classification_accuracy", float("nan"))),
        "num_detections": sum(len(v) for v in post["results"].get("results", {}).values()),
        "times": {"forward": t1 - t0, "postprocess": t2 - t1, "map": t3 - t2, "total": t3 - t0},
        "results": post["results"],
    }


def evaluate_split_sharded(model, dataset, cfg, device, *, gt=None, subset=None, batch_size=16,
                           num_workers=0) -> Dict[str, Any]:
    """evaluate_split under torchrun: every rank runs forward + postprocess on its share of
    the videos (whole batches of batch_size, so the outputs are the unsharded ones), rank 0
    gathers the detections (in the split's order) and computes the mAP once. Every rank
    returns the record; "results" (the detections) only on rank 0, None elsewhere.
    A collective: every rank must call it. Times: the slowest rank's forward/postprocess."""
    base = base_dataset(dataset)
    order = ([base.video_ids[i] for i in dataset.indices] if isinstance(dataset, Subset)
             else list(base.video_ids))
    idx = distributed.shard_indices(len(dataset), batch_size)
    t0 = time.perf_counter()
    local, correct, wrapper = {}, 0, None
    t1 = t0
    if idx:
        outs, t_orig, vids, labels = run_inference(model, Subset(dataset, idx), device, batch_size,
                                                   num_workers)
        t1 = time.perf_counter()
        post = postprocess_outputs(outs, t_orig, vids, base.class_names, cfg, labels=labels)
        local, wrapper = post["results"]["results"], post["results"]
        correct = round(post["classification_accuracy"] * len(idx))
    t2 = time.perf_counter()
    parts = distributed.gather_object((local, correct, wrapper, t1 - t0, t2 - t1))
    if parts is None:
        return {**distributed.broadcast_object(None), "results": None}
    merged = {}
    for p in parts:
        merged.update(p[0])
    results = dict(parts[0][2], results={v: merged[v] for v in order if v in merged})
    res = detection_map(gt if gt is not None else base.gt, results, cfg,
                        subset if subset is not None else (cfg["eval"]["subset"] or base.gt_subset))
    t3 = time.perf_counter()
    forward, postproc = max(p[3] for p in parts), max(p[4] for p in parts)
    rec = {
        "tiou": [float(t) for t in res["tiou"]],
        "mAP": [float(v) for v in res["mAP"]],
        "average": float(res["average"]),
        "averages": {k: float(v) for k, v in (res.get("averages") or {}).items()},
        "classification_accuracy": sum(p[1] for p in parts) / len(order),
        "num_detections": sum(len(v) for v in results["results"].values()),
        "times": {"forward": forward, "postprocess": postproc, "map": t3 - t2, "total": t3 - t0},
        "world_size": distributed.current().world,
    }
    distributed.broadcast_object(rec)
    rec["results"] = results
    return rec
