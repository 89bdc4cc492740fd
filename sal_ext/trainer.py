"""The trainer: a SAL model, its optimizer and loss state (the adaptive mask's EMA), the
training position, checkpoints (last.pt resumable, best.pt for inference), evaluations and
checkpoint selection. The command line around it is sal_ext.train.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import sys
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from . import distributed, preflight, run_folder
from .config.schema import parse_range
from .interrupt import GracefulStop, Interrupted
from .losses import SALLoss
from .model import build_model
from .run_folder import append_jsonl, truncate_jsonl
from .splits import (base_dataset, build_split, collate, ensure_synthetic_data, evaluate_split,
                     final_protocols, private_generator)


# -- seeds, RNG state, checkpoint files, optimizer ---------------------------------------------------
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
