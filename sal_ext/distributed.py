"""Data parallelism under ``torchrun``: joining the process group, rank helpers, sharding, and
a clear error when a rank is lost.

``torchrun --nproc_per_node N -m sal_ext.train ...`` (or ``-m sal_ext.infer``) starts N
processes with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. :func:`init`
joins them: NCCL when the process computes on a GPU (``cuda:LOCAL_RANK``), gloo on CPU.
Without those variables nothing is initialised, :func:`current` is the single-process
context (rank 0 of 1) and every helper here is the identity, so ``python -m sal_ext.train``
runs exactly as before.

Timeout. Every collective gives up after ``SAL_EXT_DIST_TIMEOUT`` seconds (default 300,
whatever the training settings): a lost peer ends the job instead of hanging it.

Lost ranks. Every rank adds 1 to its heartbeat counter in the rendezvous store (the TCP store
torchrun provides) once a second, from a daemon thread. When a collective fails (with gloo a
dead peer makes it raise at once; a hung one at the timeout), :func:`roll_call` watches the
counters for a few seconds and names the ranks whose counters stood still (a rank that failed
with an error posts it instead, and is named with it). The command then prints one line
(:func:`failure_message`) and exits with status 1. With NCCL, torch's own watchdog ends a process whose collective
outlives the timeout; torchrun's failure report names the rank that died first.

Test hook. ``SAL_EXT_STATE_HASH=DIR`` makes sal_ext.train append, after every optimizer step,
one JSON line ``{"step", "params", "ema"}`` to ``DIR/state_hash.rank<R>.jsonl`` (sha256 of the
bytes of every parameter, in state_dict order; the adaptive-mask mu and var as float.hex). It
is for tests (the ranks' lines must be equal); it costs a pass over the parameters per step.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

TIMEOUT_ENV = "SAL_EXT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
STATE_HASH_ENV = "SAL_EXT_STATE_HASH"
HEARTBEAT_S = 1.0          # heartbeat period
ROLL_CALL_S = 3.0          # how long a failed rank watches the others' heartbeats
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Context:
    """Where this process stands: rank of world, its device and the collective backend."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: Optional[torch.device] = None
    backend: Optional[str] = None           # None: not launched by torchrun

    @property
    def initialized(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world}"


_SINGLE = Context()
_current: Context = _SINGLE
_heartbeat: Optional["_Heartbeat"] = None


def current() -> Context:
    """The context :func:`init` set up, else the single-process one (rank 0 of 1)."""
    return _current


def launched() -> bool:
    """True when torchrun (or an equivalent launcher) set the rendezvous variables."""
    return all(os.environ.get(k) for k in _TORCHRUN_VARS)


def timeout_seconds() -> float:
    """Collective timeout: SAL_EXT_DIST_TIMEOUT seconds, else 300."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


def init(device: torch.device) -> Context:
    """Joins torchrun's process group (a no-op without torchrun) and returns the context.

    `device` is what the command would use alone; under torchrun a CUDA device becomes
    cuda:LOCAL_RANK (NCCL), a CPU device stays (gloo)."""
    global _current, _heartbeat
    if not launched():
        _current = Context(device=device)
        return _current
    timeout = timeout_seconds()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank}: only {torch.cuda.device_count()} CUDA devices "
                             "(one process per GPU: --nproc_per_node at most the GPU count)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout),
                                **({"device_id": device} if backend == "nccl" else {}))
    except (RuntimeError, dist.DistError) as exc:   # rendezvous timeout, unreachable store
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ValueError(f"rank {rank} of {world} cannot join the torchrun job (store "
                         f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}): {first}") from None
    _current = Context(rank=rank, world=world, local_rank=local_rank, device=device, backend=backend)
    _heartbeat = _Heartbeat(_current)
    return _current


def shutdown() -> None:
    """Leaves the process group (after a barrier, so no rank exits while others still talk)."""
    global _current, _heartbeat
    if dist.is_initialized():
        dist.barrier()
        if _heartbeat is not None:
            _heartbeat.stop()
        dist.destroy_process_group()
    _heartbeat = None
    _current = _SINGLE


# -- collectives (identity in one process) -----------------------------------------------------
def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def main_first(fn: Callable[[], Any]) -> Any:
    """Runs fn on rank 0, then on the other ranks (e.g. writing a shared cache once)."""
    ctx = current()
    if ctx.is_main:
        out = fn()
    barrier()
    if not ctx.is_main:
        out = fn()
    return out


def gather_object(obj: Any) -> Optional[List[Any]]:
    """[obj of rank 0, obj of rank 1, ...] on rank 0, None on the others."""
    ctx = current()
    if not ctx.initialized:
        return [obj]
    out = [None] * ctx.world if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's obj on every rank."""
    if not current().initialized:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def max_over_ranks(value: int) -> int:
    """The largest of every rank's `value` (the value itself in one process): e.g. whether any
    rank was asked to stop, so that every rank stops at the same step."""
    ctx = current()
    if not ctx.initialized:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_module(module: torch.nn.Module) -> None:
    """Copies rank 0's parameters and buffers to every rank."""
    if not current().initialized:
        return
    with torch.no_grad():
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


def global_mean_var(p: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance of the values of `p` over all ranks (float64, equal on
    every rank): the adaptive mask's EMA statistics of the whole global batch."""
    x = p.detach().reshape(-1).double()
    acc = torch.stack([x.sum(), torch.tensor(float(x.numel()), dtype=torch.float64, device=x.device)])
    dist.all_reduce(acc)
    total, count = acc[0], acc[1]
    mean = total / count
    ssd = ((x - mean) ** 2).sum()
    dist.all_reduce(ssd)
    return mean, ssd / (count - 1)


def wrap_ddp(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel(model) under torchrun (gradients averaged over the ranks at
    every backward, parameters broadcast from rank 0 at the start), else the model itself."""
    ctx = current()
    if not ctx.initialized:
        return model
    ids = [ctx.device.index] if ctx.device is not None and ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def rank_seed(seed: int, rank: int) -> int:
    """The seed rank r > 0 reseeds its RNGs with once the model is built (dropout stream): a
    hash of (seed, rank). Rank 0 is not reseeded: it keeps the plain run's stream, so one
    process under torchrun draws exactly what `python -m sal_ext.train` draws."""
    if rank == 0:
        return int(seed)
    digest = hashlib.sha256(f"sal_ext rank seed {int(seed)} {int(rank)}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


# -- sharding -------------------------------------------------------------------------------------
def rank_batches(perm: Sequence[int], batch_size: int, rank: int, world: int,
                 drop_last: bool) -> List[List[int]]:
    """This rank's batches of one epoch's permutation `perm`.

    The permutation is cut into global batches of world * batch_size videos; rank r takes
    the r-th batch_size of each. A last, smaller global batch is split as evenly as possible
    (sizes differ by at most one), or dropped with drop_last or when it has fewer videos than
    there are ranks (every rank must step). One process: perm cut into batches of batch_size.
    """
    perm = list(perm)
    bs, g = int(batch_size), int(batch_size) * int(world)
    out = []
    for start in range(0, len(perm), g):
        group = perm[start:start + g]
        if len(group) == g:
            out.append(group[rank * bs:(rank + 1) * bs])
        elif not drop_last and len(group) >= world:   # the last, partial global batch
            out.append(group[rank * len(group) // world:(rank + 1) * len(group) // world])
    return out


def shard_indices(n: int, batch_size: int) -> List[int]:
    """This rank's share of n evaluation items, in whole batches: batches 0, 1, 2, ... of
    batch_size go to ranks 0, 1, 2, ... in turn. Each batch is the one a single process
    would form, so the forward outputs (and the detections) are the unsharded ones."""
    ctx = current()
    out = []
    for b, start in enumerate(range(0, n, int(batch_size))):
        if b % ctx.world == ctx.rank:
            out.extend(range(start, min(n, start + int(batch_size))))
    return out


# -- failures -------------------------------------------------------------------------------------
class _Heartbeat:
    """A daemon thread adding 1 to hb/<rank> in the rendezvous store every HEARTBEAT_S."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.store = None
        try:
            base = dist.distributed_c10d._get_default_store()
            self.store = dist.PrefixStore("sal_ext/", base)
        except Exception:  # a launcher without a store: lost ranks cannot be named
            return
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sal_ext-heartbeat", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        key = f"hb/{self.ctx.rank}"
        while not self._stop.is_set():
            try:
                self.store.add(key, 1)
            except Exception:
                return
            self._stop.wait(HEARTBEAT_S)

    def stop(self) -> None:
        if self.store is not None:
            self._stop.set()

    def counters(self) -> List[int]:
        return [int(self.store.add(f"hb/{r}", 0)) for r in range(self.ctx.world)]

    def post_error(self, text: str) -> None:
        self.store.set(f"error/{self.ctx.rank}", text)

    def errors(self) -> Dict[int, str]:
        out = {}
        for r in range(self.ctx.world):
            if r != self.ctx.rank and self.store.check([f"error/{r}"]):
                out[r] = self.store.get(f"error/{r}").decode(errors="replace")
        return out


def post_error(text: str) -> None:
    """Tells the other ranks (through the store) why this rank stops; best effort."""
    if _heartbeat is not None and _heartbeat.store is not None:
        try:
            _heartbeat.post_error(text)
        except Exception:
            pass


def roll_call() -> Optional[Tuple[Dict[int, str], List[int]]]:
    """({rank: error it posted}, [ranks whose heartbeat stood still for ROLL_CALL_S]) of the
    other ranks; None when the store does not answer (its host, rank 0's machine, is gone)."""
    ctx, hb = current(), _heartbeat
    if hb is None or hb.store is None:
        return {}, []
    try:
        errors = hb.errors()
        before = hb.counters()
        time.sleep(ROLL_CALL_S)
        after = hb.counters()
        errors.update(hb.errors())
    except Exception:
        return None
    silent = [r for r in range(ctx.world) if r != ctx.rank and after[r] == before[r] and r not in errors]
    return errors, silent


def failure_message(exc: BaseException, call=None) -> str:
    """One line for an error of this rank in a job: the lost or failed ranks, and the error."""
    ctx = current()
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    if len(first) > 200:
        first = first[:200] + "..."
    call = roll_call() if call is None else call
    if call is None:
        who = (f"lost the rendezvous store at {os.environ.get('MASTER_ADDR')}:"
               f"{os.environ.get('MASTER_PORT')} (the machine of rank 0)")
    else:
        errors, silent = call
        parts = [f"rank {r} failed: {msg}" for r, msg in sorted(errors.items())]
        if silent:
            names = ", ".join(str(r) for r in silent)
            parts.append(f"lost rank{'s' if len(silent) > 1 else ''} {names} "
                         f"(no heartbeat for {ROLL_CALL_S:.0f} s)")
        who = "; ".join(parts) if parts else "every other rank is alive (a hang or a timeout?)"
    return f"{ctx.describe()}: {who}; the collective failed: {first}"


def is_collective_failure(exc: BaseException) -> bool:
    """A torch.distributed error (lost peer, timeout, closed connection), not a bug of ours."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("gloo", "Gloo", "NCCL", "Connection closed", "Connection reset",
                            "Broken pipe", "Timed out", "timed out"))


@contextlib.contextmanager
def job(prog: str):
    """Runs a command's body as one process of a torchrun job (a no-op in one process).

    On success the process group is left after a barrier. An error on this rank while
    another rank is lost or failed (:func:`roll_call`), or a failed collective, becomes one
    line, ``<prog>: error: rank R of W: lost rank K ...; the collective failed: ...``, and
    exit status 1 (:func:`failure_message`). Any other error (this rank's own) is posted to
    the store, so the other ranks can name this rank and its error, and raised."""
    try:
        yield
        shutdown()
    except SystemExit as exc:
        if current().initialized and exc.code not in (0, None):
            post_error(str(exc.code))
        raise
    except Exception as exc:
        if not current().initialized or current().world == 1:
            raise
        call = roll_call()
        if call is None or call[0] or call[1] or is_collective_failure(exc):
            raise SystemExit(f"{prog}: error: {failure_message(exc, call)}") from None
        post_error(f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        raise


# -- test hook ------------------------------------------------------------------------------------
def state_hash_record(step: int, model: torch.nn.Module, mask: torch.nn.Module) -> Dict[str, Any]:
    h = hashlib.sha256()
    for t in model.state_dict().values():
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return {"step": int(step), "params": h.hexdigest(),
            "ema": [float(mask.mu).hex(), float(mask.var).hex()]}


def maybe_dump_state(step: int, model: torch.nn.Module, mask: torch.nn.Module) -> None:
    """The SAL_EXT_STATE_HASH test hook (module doc); nothing when the variable is unset."""
    folder = os.environ.get(STATE_HASH_ENV)
    if not folder:
        return
    rec = state_hash_record(step, model, mask)
    with open(os.path.join(folder, f"state_hash.rank{current().rank}.jsonl"), "a") as f:
        f.write(json.dumps(rec) + "\n")
