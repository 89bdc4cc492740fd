"""Train SAL and report temporal action localization mAP.

    python -m sal_ext.train                       # built-in synthetic set, a few minutes on CPU
    python -m sal_ext.train --preset thumos14 --data-root DIR [--val-fraction 0.2]
    python -m sal_ext.train --resume runs/thumos14-.../last.pt   # last.pt: best.pt has no optimizer

With no arguments the synthetic set is generated (sal_ext.data.synthetic, cached), SAL is
trained with the THUMOS method on a small network, evaluated every `eval_every` steps, and
the final mAP table (tIoU 0.1..0.7 and averages) is printed.

Checkpoint selection. The reference (and the paper's 50.6% THUMOS14 mAP) evaluates on the
*test* split every 10 steps and keeps the best of ~1000 evaluations: the reported number is
selected on the data it reports, an optimistic estimate. `--preset thumos14` reproduces
that schedule faithfully. `--val-fraction F` is the honest alternative: a fraction F of
the *training* videos is held out (never trained on), evaluations and checkpoint selection
use only them, and the test split is evaluated once, at the end, with the selected
checkpoint.

Outputs under --out (default runs/<preset>-<time>): eval_log.jsonl (one line per
evaluation), train_log.jsonl (one line per step), config.json, and two checkpoints (written
atomically: temp file + os.replace): last.pt, every `save_every` steps and at the end, holds
the model, optimizer, loss state (adaptive-mask EMA), RNG states (torch, numpy, python),
step/epoch/position and the config; best.pt, at every improvement, holds the model, loss
state and config (no optimizer or RNG state: for sal_ext.infer, not for --resume).
`--resume` continues a killed run exactly where its last.pt stopped (on CPU the losses
afterwards equal an uninterrupted run's). Every preset value can be changed with --set key=value.

More than one process: `torchrun --nproc_per_node N -m sal_ext.train ...` trains with
DistributedDataParallel (NCCL on GPUs, gloo on CPU; sal_ext.distributed): --batch-size is
per process, each rank takes its share of every epoch's seeded permutation, evaluation is
sharded over the ranks and rank 0 alone writes the logs, checkpoints and the table.
--resume needs the same number of processes.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from . import distributed, preflight, run_folder
from .config import PRESETS, apply_overrides, get_preset, inference_config, set_value
from .config_schema import parse_range, validate_config
from .losses import SALLoss
from .interrupt import GracefulStop, Interrupted
from .model import build_model, load_reference_state_dict


# =============================================================================================
# the other layers, behind small functions (data, inference, evaluation)
# =============================================================================================
def ensure_synthetic_data(cfg: Dict[str, Any]) -> str:
    from .data.synthetic import ensure_synthetic
    return os.path.abspath(ensure_synthetic(**cfg.get("synthetic", {})))


def build_split(cfg: Dict[str, Any], split: str, sampling: str):
    from .data import build_dataset
    kw = {} if cfg["feature_dim"] == 2048 else {"feature_dim": cfg["feature_dim"]}
    return build_dataset(cfg["dataset"], cfg["data_root"], split, num_segments=cfg["num_segments"],
                         sampling=sampling, seed=cfg["train"]["seed"], **kw)


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


# =============================================================================================
# small utilities
# =============================================================================================
def set_seed(seed: int, device: torch.device) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)   # free on CPU for the ops SAL uses


def rng_state() -> Dict[str, Any]:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: Dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def atomic_save(obj: Any, path: str) -> None:
    """torch.save to a temp file in the same folder, then os.replace: never a torn file."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def append_jsonl(path: str, record: Dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_jsonl(path: str, max_step: int) -> None:
    """Drops lines logged after the checkpoint we resume from (they will be redone), and the
    final report's line (a resumed run writes its own)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        rows = [(ln, json.loads(ln)) for ln in f if ln.strip()]
    keep = [ln for ln, r in rows if r.get("step", 0) <= max_step and not r.get("final")]
    with open(path, "w") as f:
        f.writelines(keep)


def make_optimizer(model: torch.nn.Module, cfg: Dict[str, Any], device: torch.device):
    """Adam(lr, betas, weight_decay). impl "fused" (default), "foreach" or "loop".

    Measured on the 2-core CPU, THUMOS shapes, batch 2 (benchmarks/bench_train.py): the Adam
    step over fc1's 134M parameters takes 0.06 s fused vs 0.47 s foreach (the reference's
    default). Keeping gradients allocated (zero_grad(set_to_none=False)) made the step
    slower (0.87 s vs 0.60 s): backward then accumulates into the old 512 MB buffer instead
    of writing a fresh one, which costs more than the re-mapping it saves. So gradients are
    freed (optim.set_to_none, default true)."""
    o = cfg["optim"]
    impl = o.get("impl", "fused")
    kw = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}}[impl]
    return torch.optim.Adam(model.parameters(), lr=o["lr"], betas=tuple(o["betas"]),
                            weight_decay=o["weight_decay"], **kw)


def format_table(res: Dict[str, Any], title: str = "") -> str:
    tious = list(res["tiou"])
    head = ["mAP@%.2f" % t for t in tious] + ["avg " + k for k in res.get("averages", {})]
    vals = [100 * v for v in res["mAP"]] + [100 * v for v in res.get("averages", {}).values()]
    w = max(len(h) for h in head) + 1
    lines = [title] if title else []
    lines.append("".join(h.rjust(w) for h in head))
    lines.append("".join(("%.2f" % v).rjust(w) for v in vals))
    return "\n".join(lines)


def select_metric(res: Dict[str, Any], cfg: Dict[str, Any]) -> float:
    """eval.select_metric "lo:hi": the mean mAP over the thresholds in [lo, hi] (validated: both
    ends are thresholds); "average" or null: the mean over all of them."""
    key = cfg["eval"].get("select_metric")
    rng = parse_range(key) if isinstance(key, str) else None
    if rng is None:
        return float(res["average"])
    lo, hi = rng
    return float(np.mean([m for t, m in zip(res["tiou"], res["mAP"]) if lo - 1e-9 <= t <= hi + 1e-9]))


LOSS_TERMS = ("mil", "bg", "act", "mix", "mc", "se")


class NonFiniteLoss(RuntimeError):
    """A training step whose loss (or a value in its forward pass) is NaN or Inf; raised before
    the step's backward pass and optimizer step, so no NaN reaches the weights or last.pt."""

    def __init__(self, step: int, what: str, saved_step: Optional[int]):
        kept = ("no last.pt had been written yet" if saved_step is None
                else f"last.pt from step {saved_step} is kept")
        super().__init__(f"non-finite loss at step {step}: {what}; training stopped before that "
                         f"step's update; {kept}")
        self.step = step

    @staticmethod
    def terms(parts: Dict[str, float]) -> str:
        bad = [k for k in LOSS_TERMS if not math.isfinite(parts[k])]
        return ", ".join(f"{k}={parts[k]}" for k in bad) + f" (total={parts['total']})" if bad \
            else f"total={parts['total']}"


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


def base_dataset(ds):
    return ds.dataset if isinstance(ds, Subset) else ds


# =============================================================================================
# evaluation pass
# =============================================================================================
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


# =============================================================================================
# the trainer
# =============================================================================================
class Trainer:
    """Holds the model, optimizer, loss (with its EMA state) and the training position."""

    def __init__(self, cfg: Dict[str, Any], out_dir: str, device: torch.device,
                 backend: Optional[str] = None, num_workers: int = 0, progress: bool = True,
                 val_fraction: float = 0.0, resume_folder: Optional[str] = None):
        self.cfg, self.out, self.device = cfg, out_dir, device
        self.monitor_test = bool(cfg.get("monitor_test"))   # --monitor-test (with a validation split)
        self.num_workers, self.progress = num_workers, progress
        tr = cfg["train"]

        # data
        if cfg["dataset"] == "thumos14" and cfg.get("synthetic") and not cfg.get("data_root"):
            cfg["data_root"] = distributed.main_first(lambda: ensure_synthetic_data(cfg))
        if not cfg.get("data_root"):
            raise SystemExit(f"preset {cfg['name']!r} needs --data-root")
        self.train_set = build_split(cfg, "train", "random")
        self.test_set = build_split(cfg, tr["test_split"], "uniform")
        self.val_set, self.val_gt = None, None
        if val_fraction > 0:
            self._hold_out(val_fraction)
        base = base_dataset(self.train_set)
        if base.num_classes != cfg["num_classes"]:
            raise SystemExit(f"the data has {base.num_classes} classes, the preset {cfg['num_classes']}")
        if base.feature_dim != cfg["feature_dim"]:
            raise SystemExit(f"the data has feature_dim {base.feature_dim}, the preset {cfg['feature_dim']}")
        preflight.check_against_data(cfg, base, base_dataset(self.test_set))
        cfg["class_names"] = list(base.class_names)   # kept in checkpoints, for sal_ext.infer
        # after the data checks: no empty run folders; a run is never written into but by --resume
        run_folder.create_out_folder(out_dir, resume_folder)

        # model, loss, optimizer
        set_seed(tr["seed"], device)
        self.model = build_model(cfg, backend=backend).to(device)
        self.criterion = SALLoss(cfg, backend=backend).to(device)
        self.optimizer = make_optimizer(self.model, cfg, device)
        self._init_distributed(int(tr["seed"]))

        # position
        self.step, self.epoch, self.pos = 0, 0, 0      # pos: batches done in this epoch
        self.best = {"metric": -math.inf, "step": None}
        self.last_map: Optional[float] = None
        self.saved_step: Optional[int] = None   # step of the last.pt on disk
        self.evaluated_at: Optional[int] = None  # step of the last logged evaluation

    def _init_distributed(self, seed: int) -> None:
        """torchrun: self.net is DDP(self.model); the adaptive mask's EMA statistics are
        those of every rank's segments; rank r > 0 draws dropout from its own stream, seeded
        with distributed.rank_seed(seed, r) (rank 0 keeps the plain run's). One process:
        self.net is self.model and nothing else changes."""
        self.dist = distributed.current()
        self.net = distributed.wrap_ddp(self.model)
        if self.dist.world > 1:
            self.criterion.mask.reduce_stats = distributed.global_mean_var
        if self.dist.rank > 0:
            s = distributed.rank_seed(seed, self.dist.rank)
            random.seed(s)
            np.random.seed(s % 2 ** 32)
            torch.manual_seed(s)

    # -- data -------------------------------------------------------------------------------
    def _hold_out(self, fraction: float) -> None:
        """Moves a seeded random `fraction` of the training videos to a validation set."""
        base = self.train_set
        n = len(base)
        n_val = max(1, int(round(fraction * n)))
        if n_val >= n:
            raise SystemExit(f"--val-fraction {fraction} leaves no training videos")
        perm = np.random.default_rng(self.cfg["train"]["seed"] + 12345).permutation(n)
        val_idx, train_idx = sorted(perm[:n_val].tolist()), sorted(perm[n_val:].tolist())
        uniform = build_split(self.cfg, "train", "uniform")
        self.train_set = Subset(base, train_idx)
        self.val_set = Subset(uniform, val_idx)
        val_ids = {uniform.video_ids[i] for i in val_idx}
        gt = copy.deepcopy(uniform.gt)
        db = gt["database"]
        missing = val_ids - set(db)
        if missing:
            raise SystemExit(f"held-out videos without ground truth: {sorted(missing)[:3]}...")
        gt["database"] = {v: db[v] for v in db if v in val_ids}
        self.val_gt, self.val_subset = gt, uniform.gt_subset

    def epoch_batches(self, epoch: int) -> List[List[int]]:
        """The batches (lists of dataset indices) of `epoch`: a seeded permutation per epoch,
        so a resumed run sees exactly the same batches. Under torchrun, this rank's share of
        each global batch of world x batch_size videos (distributed.rank_batches)."""
        tr = self.cfg["train"]
        n = len(self.train_set)
        g = torch.Generator().manual_seed(int(tr["seed"]) * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=g).tolist()
        bs = int(tr["batch_size"])
        batches = distributed.rank_batches(perm, bs, self.dist.rank, self.dist.world,
                                           bool(tr.get("drop_last")))
        if not batches:
            raise SystemExit(f"batch size {bs} with drop_last leaves no batch of {n} training videos")
        return batches

    def total_steps(self) -> int:
        tr = self.cfg["train"]
        if tr.get("max_steps"):
            return int(tr["max_steps"])
        return int(tr["epochs"]) * len(self.epoch_batches(0))

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loss": self.criterion.state_dict(),
            "rng": rng_state(),
            "step": self.step, "epoch": self.epoch, "pos": self.pos,
            "best": dict(self.best), "last_map": self.last_map,
            "config": self.cfg,
        }

    def save(self, name: str, full: bool = True) -> str:
        """last.pt: the full state (resumable); best.pt (full=False): no optimizer / RNG, a
        third of the size (THUMOS: 0.6 GB instead of 1.8 GB, written at every improvement)."""
        path = os.path.join(self.out, name)
        st = self.state()
        if not full:
            st = {k: st[k] for k in ("model", "loss", "step", "epoch", "best", "config")}
        elif self.dist.world > 1:   # every rank's RNG state (a collective: all ranks save)
            st["rng_ranks"] = distributed.gather_object(rng_state())
            st["world_size"] = self.dist.world
        if self.dist.is_main:
            atomic_save(st, path)
        if full:
            self.saved_step = self.step
        return path

    def load(self, ckpt: Dict[str, Any]) -> None:
        world = int(ckpt.get("world_size", 1))
        if world != self.dist.world:
            raise ValueError(f"--resume: the run was trained by {world} process(es), this is "
                             f"{self.dist.world}; resume with torchrun --nproc_per_node/--nnodes "
                             f"giving {world} (the batches of each rank depend on it)")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.criterion.load_state_dict(ckpt["loss"])
        self.step, self.epoch, self.pos = ckpt["step"], ckpt["epoch"], ckpt["pos"]
        self.saved_step = self.step
        self.best = dict(ckpt["best"])
        self.last_map = ckpt.get("last_map")
        set_rng_state(ckpt["rng_ranks"][self.dist.rank] if world > 1 else ckpt["rng"])
        if self.dist.is_main:
            truncate_jsonl(os.path.join(self.out, "train_log.jsonl"), self.step)
            truncate_jsonl(os.path.join(self.out, "eval_log.jsonl"), self.step)
        # an evaluation at the saved step happened before the save: not redone at the end
        logged = os.path.join(self.out, "eval_log.jsonl")
        if self.dist.is_main and os.path.exists(logged):
            with open(logged) as f:
                steps = [json.loads(ln).get("step") for ln in f if ln.strip()]
            if steps and steps[-1] == self.step:
                self.evaluated_at = self.step
        self.evaluated_at = distributed.broadcast_object(self.evaluated_at)

    # -- one step ---------------------------------------------------------------------------
    def train_step(self, batch: Dict[str, Any]) -> Dict[str, float]:
        self.model.train()
        x = batch["features"].to(self.device, non_blocking=True)
        y = batch["label"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=bool(self.cfg["optim"].get("set_to_none", True)))
        try:
            out = self.net(x)   # DDP under torchrun: the backward averages gradients over ranks
            total, parts = self.criterion(out, y)
        except ValueError as exc:   # an op refusing NaN/Inf (or overflowing) activations
            if not any(w in str(exc) for w in ("NaN", "Inf", "overflow")):
                raise
            raise NonFiniteLoss(self.step + 1, f"a non-finite value in the forward pass ({exc})",
                                self.saved_step) from None
        vals = {k: float(v) for k, v in parts.items()}
        if not math.isfinite(vals["total"]):
            raise NonFiniteLoss(self.step + 1, NonFiniteLoss.terms(vals), self.saved_step)
        total.backward()
        self.optimizer.step()
        return vals

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, which: str = "select") -> Dict[str, Any]:
        """Evaluates on the selection set (held-out videos with --val-fraction, else test)."""
        bs = int(self.cfg["train"].get("eval_batch_size", 16))
        if which == "select" and self.val_set is not None:
            rec = evaluate_split(self.model, self.val_set, self.cfg, self.device, gt=self.val_gt,
                                 subset=self.val_subset, batch_size=bs, num_workers=self.num_workers)
            rec["split"] = "val"
        else:
            rec = evaluate_split(self.model, self.test_set, self.cfg, self.device, batch_size=bs,
                                 num_workers=self.num_workers)
            rec["split"] = "test"
        return rec

    def log_eval(self, rec: Dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        line = {k: v for k, v in rec.items() if k != "results"}
        line.update(step=self.step, epoch=self.epoch)
        append_jsonl(os.path.join(self.out, "eval_log.jsonl"), line)

    def maybe_select(self, rec: Dict[str, Any]) -> None:
        metric = select_metric(rec, self.cfg)
        self.last_map = metric
        if metric > self.best["metric"]:
            self.best = {"metric": metric, "step": self.step, "split": rec["split"],
                         "mAP": rec["mAP"], "averages": rec["averages"]}
            self.save("best.pt", full=False)

    # -- loop -------------------------------------------------------------------------------
    def train(self) -> None:
        """Trains to the end. SIGINT / SIGTERM: the step in progress (and its evaluation or
        save, if due) finishes, last.pt is written and Interrupted is raised (every rank at the
        same step under torchrun)."""
        with GracefulStop() as stop:
            self._train(stop)

    def _stop_requested(self, stop: GracefulStop) -> int:
        """The signal number when this or any rank was asked to stop, else 0."""
        return distributed.max_over_ranks(stop.requested or 0)

    def _train(self, stop: GracefulStop) -> None:
        tr = self.cfg["train"]
        total = self.total_steps()
        eval_every = int(tr["eval_every"]) if tr.get("eval_every") else 0
        save_every = int(tr.get("save_every") or eval_every or 0)
        bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm
            bar = tqdm(total=total, initial=self.step, desc="train", dynamic_ncols=True, file=sys.stderr)
        train_log = os.path.join(self.out, "train_log.jsonl")
        base = base_dataset(self.train_set)
        evaluated_at = self.evaluated_at
        while self.step < total:
            base.set_epoch(self.epoch)
            batches = self.epoch_batches(self.epoch)
            if self.pos >= len(batches):
                self.epoch, self.pos = self.epoch + 1, 0
                continue
            loader = DataLoader(self.train_set, batch_sampler=batches[self.pos:],
                                num_workers=self.num_workers, collate_fn=collate,
                                generator=private_generator(self.epoch))
            for batch in loader:
                try:
                    parts = self.train_step(batch)
                except NonFiniteLoss:
                    if bar is not None:
                        bar.close()
                    raise
                self.step += 1
                self.pos += 1
                distributed.maybe_dump_state(self.step, self.model, self.criterion.mask)
                if self.dist.is_main:
                    append_jsonl(train_log, {"step": self.step, "epoch": self.epoch, **parts})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss="%.4f" % parts["total"], epoch=self.epoch,
                                    mAP="-" if self.last_map is None else "%.2f" % (100 * self.last_map))
                if eval_every and self.epoch >= tr.get("eval_from_epoch", 0) and self.step % eval_every == 0:
                    self._eval_and_select()
                    evaluated_at = self.step
                if save_every and self.step % save_every == 0:
                    self.save("last.pt")
                signum = self._stop_requested(stop)
                if signum:
                    if self.saved_step != self.step:
                        self.save("last.pt")
                    if bar is not None:
                        bar.close()
                    raise Interrupted(signum, f"interrupted ({GracefulStop.name(signum)}) after step "
                                              f"{self.step}: saved {os.path.join(self.out, 'last.pt')}")
                if self.step >= total:
                    break
            if self.pos >= len(batches):
                self.epoch, self.pos = self.epoch + 1, 0
        if tr.get("eval_at_end", True) and evaluated_at != self.step and self.step > 0:
            self._eval_and_select()
            evaluated_at = self.step
        self.evaluated_at = evaluated_at
        self.save("last.pt")
        if bar is not None:
            bar.close()

    def _eval_and_select(self) -> None:
        self.evaluated_at = self.step
        rec = self.evaluate("select")
        self.log_eval(rec)
        self.maybe_select(rec)
        if self.monitor_test and self.val_set is not None:   # --monitor-test: logged only
            self.log_eval(self.evaluate("test"))

    # -- the final report -------------------------------------------------------------------
    def final_report(self) -> Dict[str, Any]:
        """Test mAP of the selected (best) checkpoint. With a validation split this is the
        only test evaluation; without, it is the best test evaluation (the reference's
        protocol), re-run so the printed table is that checkpoint's."""
        best_path = os.path.join(self.out, "best.pt")
        if self.dist.is_main and os.path.exists(best_path):
            ck = torch.load(best_path, map_location=self.device, weights_only=False)
            self.model.load_state_dict(ck["model"])
        distributed.broadcast_module(self.model)   # torchrun: rank 0's best.pt to every rank
        rec = self.evaluate("test")
        if not self.dist.is_main:
            return rec
        if list(self.cfg["eval"].get("protocols") or ["activitynet"]) != ["activitynet"]:
            base = base_dataset(self.test_set)
            rec["protocols"] = final_protocols(base.gt, rec["results"], self.cfg,
                                               self.cfg["eval"]["subset"] or base.gt_subset)
        line = {k: v for k, v in rec.items() if k != "results"}
        line.update(step=self.best.get("step"), final=True)
        append_jsonl(os.path.join(self.out, "eval_log.jsonl"), line)
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(rec["results"], f)
        return rec


# =============================================================================================
# command line
# =============================================================================================
def _int_at_least(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
    return v


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _nonnegative_int(text: str) -> int:
    return _int_at_least(text, 0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sal_ext.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="synthetic", choices=sorted(PRESETS))
    p.add_argument("--data-root", help="dataset folder (not needed for the synthetic preset)")
    p.add_argument("--out", help="output folder (default runs/<preset>-<time>)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=_positive_int,
                   help="videos per step in each process: under torchrun N processes take N x this "
                        "per optimizer step (the global batch), and SAL's mix-up pairs videos "
                        "inside each process's batch; --max-steps and --eval-every count global steps")
    p.add_argument("--num-workers", type=_nonnegative_int, default=0,
                   help="DataLoader workers (default 0: the features are cached in memory)")
    p.add_argument("--backend", choices=["auto", "kernel", "torch"],
                   help="sal_ext.ops backend (default: SAL_EXT_BACKEND, else auto)")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--max-steps", type=_positive_int, help="stop after this many optimizer steps")
    p.add_argument("--eval-every", type=_positive_int, help="steps between evaluations")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="hold out this fraction of the training videos, select the checkpoint on "
                        "them and evaluate the test split once at the end (honest model selection; "
                        "without it, as the reference, the best *test* evaluation is kept; "
                        "with --resume, the resumed run's value)")
    p.add_argument("--resume", help="checkpoint (last.pt) or run folder to continue; the run's own "
                                    "config is used (--preset is ignored, other options apply)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any preset value, e.g. --set model.hidden=128 --set lr=3e-4")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--monitor-test", action="store_true",
                   help="with --val-fraction: also evaluate the test split at every evaluation (logged "
                        "in eval_log.jsonl, never used for selection; seed sweeps set it)")
    p.add_argument("--seeds", help="seed sweep (sal_ext.sweep): one run per seed in OUT/seed<k>/, then "
                                   "mean ± sd over the seeds; 5 = seeds 0..4, or a list 0,3,7. "
                                   "--resume SWEEP_FOLDER continues a killed sweep")
    p.add_argument("--jobs", help="seed sweep: runs at a time (default 1), torch threads divided among them")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace, base: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    cfg = copy.deepcopy(base) if base is not None else get_preset(args.preset)
    if args.data_root:
        cfg["data_root"] = os.path.abspath(args.data_root)   # a resume from elsewhere finds it
    named = {"train.seed": args.seed, "train.batch_size": args.batch_size, "train.epochs": args.epochs,
             "train.max_steps": args.max_steps, "train.eval_every": args.eval_every}
    for key, val in named.items():
        if val is not None:
            set_value(cfg, key, val)
    if args.epochs is not None and args.max_steps is None:
        cfg["train"]["max_steps"] = None
    apply_overrides(cfg, args.set)
    validate_config(cfg)   # every key, before any data is read or any model is built
    return cfg


# what a resumed run cannot change: the shapes of the checkpoint's tensors
RESUME_FIXED = ("feature_dim", "num_classes", "model.hidden", "model.encoder_kernel")


def resume_mismatch(old: Dict[str, Any], new: Dict[str, Any]) -> Optional[str]:
    """A one-line description of the first network setting `new` changes from the checkpoint's."""
    def get(cfg, key):
        node = cfg
        for p in key.split("."):
            node = node.get(p) if isinstance(node, dict) else None
        return node
    for key in RESUME_FIXED:
        if get(old, key) != get(new, key):
            return (f"--resume: {key}={get(new, key)!r} differs from the checkpoint's {get(old, key)!r} "
                    "(a resumed run keeps its network; start a new run to change it)")
    return None


def _message(exc) -> str:
    """str(exc) without the quotes str() puts around a KeyError's message."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _user_error(exc) -> SystemExit:
    """A one-line message on stderr and exit status 1 for a mistake in the arguments or data."""
    return SystemExit(f"python -m sal_ext.train: error: {' '.join(_message(exc).split())}")


def load_resume_checkpoint(resume: str) -> Tuple[Dict[str, Any], str]:
    """(checkpoint, its path) for --resume (a last.pt file or a run folder)."""
    path = os.path.join(resume, "last.pt") if os.path.isdir(resume) else resume
    if not os.path.isfile(path):
        raise _user_error(f"--resume {resume}: no checkpoint {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch.load raises many kinds (unpickling, zip, EOF, ...)
        raise _user_error(f"--resume: cannot read {path}: {exc}") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt:
        raise _user_error(f"--resume: {path} is not a last.pt of sal_ext.train (no config in it)")
    opt = ckpt.get("optimizer")
    if not (isinstance(opt, dict) and "state" in opt and "param_groups" in opt):
        raise _user_error(f"--resume: {path} holds no optimizer state (best.pt and reference state dicts "
                          "have none): resume from the run's last.pt")
    missing = [k for k in ("model", "loss", "rng", "step", "epoch", "pos", "best") if k not in ckpt]
    if missing:
        raise _user_error(f"--resume: {path} lacks {', '.join(missing)}: not a last.pt of sal_ext.train")
    return ckpt, path


def check_backend_env() -> None:
    """SAL_EXT_BACKEND, checked once at startup (a bad value: a one-line error, not a traceback
    from the first op call)."""
    from .ops._common import default_backend
    try:
        default_backend()
    except ValueError as exc:
        raise _user_error(exc) from None


def main(argv=None) -> int:
    """The command line; under torchrun one process of the job (sal_ext.distributed).
    Exit status: 0, 1 (an error, one line), 130 / 143 (stopped by SIGINT / SIGTERM)."""
    try:
        with distributed.job("python -m sal_ext.train"):
            return _main(argv)
    except KeyboardInterrupt:    # outside the training loop, or a second Ctrl-C
        print("python -m sal_ext.train: interrupted", file=sys.stderr)
        return 130


def _is_builtin_synthetic(cfg: Dict[str, Any]) -> bool:
    """True when cfg's data is the built-in synthetic set written into the cache (which a
    resume on another machine writes again, the same), not a folder the user gave."""
    from .data.synthetic import synthetic_dirname
    return bool(cfg.get("synthetic")) and os.path.basename(cfg.get("data_root") or "") == \
        synthetic_dirname(**cfg["synthetic"])


def resume_command(out: str) -> str:
    """The command that continues the run in `out` (torchrun with the same processes)."""
    ctx = distributed.current()
    if ctx.world == 1:
        return f"python -m sal_ext.train --resume {out}"
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or ctx.world)
    nodes = f"--nnodes {ctx.world // local} " if ctx.world > local else ""
    return f"torchrun {nodes}--nproc_per_node {local} -m sal_ext.train --resume {out}"


def _main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from . import sweep
    if args.seeds is not None or sweep.is_sweep(args.resume):
        try:
            return sweep.main(args, argv)
        except sweep.SweepError as exc:
            raise _user_error(exc) from None
    if args.jobs is not None:
        raise _user_error("--jobs runs the seeds of a sweep: give --seeds too")
    check_backend_env()
    if not 0.0 <= args.val_fraction < 1.0:
        raise _user_error(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise _user_error("--device cuda: no CUDA device is available to torch")
    if args.data_root and not os.path.isdir(args.data_root):
        raise _user_error(f"--data-root {args.data_root}: no such folder")
    ckpt, resume_folder = None, None
    try:
        if args.resume:
            ckpt, path = load_resume_checkpoint(args.resume)
            cfg = build_config(args, ckpt["config"])
            resume_folder = os.path.dirname(os.path.abspath(path))
            out = args.out or resume_folder
            diff = resume_mismatch(ckpt["config"], cfg)
            if diff:
                raise _user_error(diff)
            root = cfg.get("data_root")
            if root and not os.path.isdir(root) and _is_builtin_synthetic(cfg) and not args.data_root:
                cfg["data_root"] = None         # the synthetic set is written again, the same
            elif root and not os.path.isdir(root):
                raise _user_error(f"--resume: the run's data folder {root} (data_root in its config) does "
                                  "not exist here; pass --data-root DIR")
        else:
            cfg = build_config(args)
            out = args.out or run_folder.default_out(cfg["name"])
        run_folder.check_out_folder(out, resume_folder)   # never write into another run
    except (ValueError, KeyError, TypeError) as exc:  # --set overrides, config validation
        raise _user_error(exc) from None
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        preflight.check_memory(cfg, device)   # before anything is allocated
    except ValueError as exc:
        raise _user_error(exc) from None
    try:
        device = distributed.init(device).device   # torchrun: join the job (else unchanged)
    except ValueError as exc:
        raise _user_error(exc) from None
    out = distributed.broadcast_object(out)        # torchrun: rank 0's run folder
    main_rank = distributed.current().is_main
    val_fraction = args.val_fraction if ckpt is None else ckpt["config"].get("val_fraction", 0.0)
    cfg["val_fraction"] = val_fraction
    cfg["monitor_test"] = bool(args.monitor_test if ckpt is None else ckpt["config"].get("monitor_test"))

    say = print if main_rank else (lambda *a, **k: None)   # rank 0 alone talks
    try:
        if cfg["dataset"] == "thumos14" and cfg.get("synthetic") and not cfg.get("data_root"):
            cfg["data_root"] = ensure_synthetic_data(cfg)
            say(f"data: {cfg['data_root']} (the built-in synthetic set, written once; "
                "SAL_EXT_CACHE sets the cache folder)", flush=True)
        elif cfg.get("data_root"):
            say(f"data: {cfg['data_root']}", flush=True)
        else:
            raise ValueError(f"preset {cfg['name']!r} needs --data-root")
        say(f"run folder: {out}", flush=True)
        trainer = Trainer(cfg, out, device, backend=args.backend, num_workers=args.num_workers,
                          progress=not args.no_progress, val_fraction=val_fraction,
                          resume_folder=resume_folder)
    except (ValueError, OSError) as exc:  # data problems, invalid settings
        raise _user_error(exc) from None
    if ckpt is not None:
        try:
            trainer.load(ckpt)
        except (RuntimeError, KeyError, ValueError) as exc:  # a state that does not fit
            raise _user_error(f"--resume: the checkpoint does not fit this run: {exc}") from None
        if main_rank:
            print(f"resumed from step {trainer.step} (epoch {trainer.epoch})", file=sys.stderr)
    if main_rank:
        try:
            with open(os.path.join(out, "config.json"), "w") as f:
                json.dump(cfg, f, indent=1)
        except OSError as exc:
            raise _user_error(f"--out {out}: cannot write config.json: {exc.strerror or exc}") from None
    t0 = time.perf_counter()
    try:
        trainer.train()
    except NonFiniteLoss as exc:
        raise _user_error(exc) from None
    except Interrupted as exc:
        if main_rank:
            print(f"python -m sal_ext.train: {exc}; continue with: {resume_command(out)}",
                  file=sys.stderr, flush=True)
        return exc.exit_status
    except KeyboardInterrupt:   # a second signal: no save
        if main_rank:
            at = (f"last.pt holds step {trainer.saved_step}; continue with: {resume_command(out)}"
                  if trainer.saved_step else "nothing was saved")
            print(f"python -m sal_ext.train: interrupted at step {trainer.step}; {at}", file=sys.stderr)
        return 130
    rec = trainer.final_report()
    if not main_rank:
        return 0
    how = ("selected on held-out training videos" if trainer.val_set is not None
           else "best test evaluation, as the reference selects it")
    print(format_table(rec, f"test mAP (%) of the checkpoint from step {trainer.best.get('step')} ({how}); "
                            f"classification accuracy {100 * rec['classification_accuracy']:.1f}%"))
    if rec.get("protocols"):  # eval.protocols: the same detections under each protocol
        from .evaluation.table import format_protocol_table
        print(format_protocol_table(rec["protocols"]))
    print(f"training + evaluation: {time.perf_counter() - t0:.0f} s; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
