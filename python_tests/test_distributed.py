"""torchrun data parallelism (sal_ext.distributed) on CPU with gloo: every test launches its
processes itself (`python -m torch.distributed.run ... -m sal_ext.train`) on a tiny synthetic
set; OMP_NUM_THREADS=1 in the children. The children import the same sal_ext as this test."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

import sal_ext
from sal_ext import distributed, infer, train

if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(sal_ext.__file__)))
TIMEOUT_S = 20   # SAL_EXT_DIST_TIMEOUT in the children
TINY = ["--set", "feature_dim=64", "--set", "model.hidden=8", "--set", "num_segments=32",
        "--set", "lr=1e-3", "--set", "eval_batch_size=2", "--batch-size", "2", "--no-progress",
        "--seed", "3", "--device", "cpu"]   # gloo, also where a GPU exists


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in distributed._TORCHRUN_VARS}
    env.update(OMP_NUM_THREADS="1", SAL_EXT_DIST_TIMEOUT=str(TIMEOUT_S),
               PYTHONPATH=os.pathsep.join([PKG_PARENT] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               PYTHONWARNINGS="ignore")
    env.update(extra)
    return env


def _torchrun_cmd(nproc, args, module="sal_ext.train", nnodes=1, node_rank=0, port=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(port or _free_port())]
    if nnodes > 1:
        cmd += ["--nnodes", str(nnodes), "--node_rank", str(node_rank)]
    return cmd + ["-m", module] + list(args)


def _torchrun(cwd, nproc, args, module="sal_ext.train", env=None, timeout=120):
    p = subprocess.run(_torchrun_cmd(nproc, args, module), cwd=cwd, env=env or _env(), text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:]
    return p.stdout


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _children(pid):
    """Pids whose parent is pid (Linux /proc, else pgrep)."""
    if not os.path.isdir("/proc"):
        p = subprocess.run(["pgrep", "-P", str(pid)], stdout=subprocess.PIPE, text=True)
        return [int(x) for x in p.stdout.split()]
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(name))
    return out


# -- unit: the batch split ---------------------------------------------------------------------
def test_rank_batches_partition_each_epoch():
    perm = [int(i) for i in torch.randperm(23, generator=torch.Generator().manual_seed(0))]
    assert distributed.rank_batches(perm, 4, 0, 1, False) == [perm[i:i + 4] for i in range(0, 23, 4)]
    assert distributed.rank_batches(perm, 4, 0, 1, True) == [perm[i:i + 4] for i in range(0, 20, 4)]
    for n, world in ((23, 2), (23, 3), (23, 4), (17, 4), (16, 4), (3, 4)):
        shares = [distributed.rank_batches(perm[:n], 4, r, world, False) for r in range(world)]
        assert len({len(s) for s in shares}) == 1                  # every rank steps as often
        g = 4 * world
        kept = n if n % g >= world or n % g == 0 else n - n % g    # a tail shorter than world: dropped
        flat = [i for step in zip(*shares) for b in step for i in b]
        assert flat == perm[:kept]                                 # the permutation, in order, once
        assert all(b for s in shares for b in s)                   # no empty batch
        dropped = [distributed.rank_batches(perm[:n], 4, r, world, True) for r in range(world)]
        assert [i for step in zip(*dropped) for b in step for i in b] == perm[:n - n % g]


def test_timeout_variable(monkeypatch):
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.timeout_seconds() == 300
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "7.5")
    assert distributed.timeout_seconds() == 7.5
    for bad in ("0", "-1", "abc", "inf", "nan"):
        monkeypatch.setenv(distributed.TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=distributed.TIMEOUT_ENV):
            distributed.timeout_seconds()


def test_single_process_helpers_are_the_identity():
    ctx = distributed.current()
    assert not ctx.initialized and ctx.world == 1 and ctx.is_main
    assert distributed.gather_object({"a": 1}) == [{"a": 1}] and distributed.broadcast_object(5) == 5
    assert distributed.shard_indices(7, 3) == list(range(7))
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_ddp(model) is model


def test_global_mean_var_is_the_unbiased_statistic_of_all_values():
    store = torch.distributed.HashStore()
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        p = torch.rand(4, 37, generator=torch.Generator().manual_seed(1))
        mean, var = distributed.global_mean_var(p)
        assert mean.dtype == var.dtype == torch.float64
        assert abs(float(mean) - float(p.double().mean())) < 1e-15
        assert abs(float(var) - float(torch.var(p.double(), unbiased=True))) < 1e-15
    finally:
        torch.distributed.destroy_process_group()


# -- one process under torchrun = the plain run ------------------------------------------------
def test_world_size_1_equals_plain_run(tiny_root, tmp_path):
    args = ["--data-root", tiny_root, "--max-steps", "7", "--eval-every", "3"] + TINY
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # as the children
    try:
        assert train.main(args + ["--out", str(tmp_path / "plain")]) == 0
    finally:
        torch.set_num_threads(threads)
    out = _torchrun(str(tmp_path), 1, args + ["--out", str(tmp_path / "tr")])
    assert "mAP@0.10" in out and "avg 0.1:0.7" in out
    a, b = _jsonl(tmp_path / "plain" / "train_log.jsonl"), _jsonl(tmp_path / "tr" / "train_log.jsonl")
    assert len(a) == 7 and a == b                                   # every loss, bit for bit
    ea, eb = _jsonl(tmp_path / "plain" / "eval_log.jsonl"), _jsonl(tmp_path / "tr" / "eval_log.jsonl")
    assert [r["mAP"] for r in ea] == [r["mAP"] for r in eb] and len(ea) == 4


# -- two ranks: a run killed on one rank, its resume, an uninterrupted run -----------------------
@pytest.fixture(scope="module")
def two_ranks(tiny_root, tmp_path_factory):
    """K: 2 one-process 'nodes'; rank 1 is killed (SIGKILL) after its 7th step. R: K resumed
    on 2 ranks to step M = K's last checkpoint + 4. U: the same M steps uninterrupted."""
    base = tmp_path_factory.mktemp("ranks")
    # --val-fraction 0.17: 10 training videos = 2 global batches of 2 x 2 and a tail of 2 (1 a
    # rank); evaluations every 5 steps on the 2 held-out videos, the test split at the end
    args = ["--data-root", tiny_root, "--eval-every", "5", "--set", "save_every=3",
            "--val-fraction", "0.17"] + TINY
    hk, hu = base / "hash_k", base / "hash_u"
    hk.mkdir()
    hu.mkdir()
    port = _free_port()
    env = _env(SAL_EXT_STATE_HASH=str(hk))
    kill_args = args + ["--out", str(base / "k"), "--max-steps", "100000"]
    logs = [open(base / f"node{r}.log", "w") for r in (0, 1)]   # files: a full pipe would block
    nodes = [subprocess.Popen(_torchrun_cmd(1, kill_args, nnodes=2, node_rank=r, port=port), cwd=str(base),
                              env=env, stdout=logs[r], stderr=subprocess.STDOUT) for r in (0, 1)]
    try:
        deadline = time.monotonic() + 180
        rank1 = hk / "state_hash.rank1.jsonl"
        while not (rank1.exists() and len(_jsonl(rank1)) >= 7):
            assert time.monotonic() < deadline and nodes[0].poll() is None, "run K did not start"
            time.sleep(0.05)
        workers = _children(nodes[1].pid)
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
        t_kill = time.monotonic()
        nodes[0].wait(timeout=TIMEOUT_S + 30)
        waited = time.monotonic() - t_kill
        nodes[1].wait(timeout=30)
    finally:
        for p, log in zip(nodes, logs):
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    out0 = (base / "node0.log").read_text()
    m = torch.load(base / "k" / "last.pt", weights_only=False)["step"] + 4
    _torchrun(str(base), 2, ["--resume", str(base / "k"), "--max-steps", str(m), "--no-progress",
                               "--device", "cpu"])
    out_u = _torchrun(str(base), 2, args + ["--out", str(base / "u"), "--max-steps", str(m)],
                      env=_env(SAL_EXT_STATE_HASH=str(hu)))
    return {"base": base, "m": m, "rc_k": nodes[0].returncode, "out_k": out0, "waited": waited,
            "hk": hk, "hu": hu, "out_u": out_u}


def test_signal_on_one_rank_stops_every_rank_at_the_same_step(tiny_root, tmp_path):
    """SIGTERM to rank 1 alone: both ranks stop after the same step, last.pt holds it, rank 0
    prints the resume command once."""
    args = ["--data-root", tiny_root, "--eval-every", "50", "--max-steps", "100000", "--out",
            str(tmp_path / "s")] + TINY
    hs = tmp_path / "hash"
    hs.mkdir()
    port = _free_port()
    logs = [open(tmp_path / f"node{r}.log", "w") for r in (0, 1)]
    nodes = [subprocess.Popen(_torchrun_cmd(1, args, nnodes=2, node_rank=r, port=port), cwd=str(tmp_path),
                              env=_env(SAL_EXT_STATE_HASH=str(hs)), stdout=logs[r], stderr=subprocess.STDOUT)
             for r in (0, 1)]
    try:
        deadline = time.monotonic() + 180
        rank1 = hs / "state_hash.rank1.jsonl"
        while not (rank1.exists() and len(_jsonl(rank1)) >= 3):
            assert time.monotonic() < deadline and nodes[0].poll() is None, "the run did not start"
            time.sleep(0.05)
        workers = _children(nodes[1].pid)
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGTERM)
        for p in nodes:
            p.wait(timeout=120)
    finally:
        for p, log in zip(nodes, logs):
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    out0 = (tmp_path / "node0.log").read_text()
    ck = torch.load(tmp_path / "s" / "last.pt", weights_only=False)
    steps = [r["step"] for r in _jsonl(tmp_path / "s" / "train_log.jsonl")]
    assert steps == list(range(1, ck["step"] + 1)) and ck["world_size"] == 2
    r0, r1 = _jsonl(hs / "state_hash.rank0.jsonl"), _jsonl(hs / "state_hash.rank1.jsonl")
    assert len(r0) == len(r1) == ck["step"]                 # the same last step on both ranks
    lines = [ln for ln in out0.splitlines() if "interrupted (SIGTERM)" in ln]
    assert len(lines) == 1 and f"after step {ck['step']}" in lines[0], out0[-3000:]
    assert f"--resume {tmp_path / 's'}" in lines[0] and "--nnodes 2" in lines[0]
    assert not re.search(r'File "[^"]*sal_ext[/\\]', out0), out0[-3000:]


def test_lost_rank_is_named(two_ranks):
    out = two_ranks["out_k"]
    assert two_ranks["rc_k"] != 0
    assert two_ranks["waited"] < TIMEOUT_S + 15, two_ranks["waited"]
    lines = [ln for ln in out.splitlines() if "python -m sal_ext.train: error:" in ln]
    assert lines, out[-3000:]
    assert "rank 0 of 2" in lines[0] and "lost rank 1" in lines[0], lines[0]
    assert not re.search(r'File "[^"]*sal_ext[/\\]', out), out[-3000:]   # no traceback of ours


def test_ranks_hold_identical_parameters_and_ema_after_every_step(two_ranks):
    for folder, steps in ((two_ranks["hu"], two_ranks["m"]), (two_ranks["hk"], 7)):
        r0 = _jsonl(folder / "state_hash.rank0.jsonl")
        r1 = _jsonl(folder / "state_hash.rank1.jsonl")
        n = min(len(r0), len(r1))
        assert n >= steps and [r["step"] for r in r0[:n]] == list(range(1, n + 1))
        assert r0[:n] == r1[:n]
    r0 = _jsonl(two_ranks["hu"] / "state_hash.rank0.jsonl")
    assert len({r["params"] for r in r0}) == len(r0) and len({tuple(r["ema"]) for r in r0}) > 1  # they move


def test_resume_of_killed_two_rank_run_is_exact(two_ranks):
    base, m = two_ranks["base"], two_ranks["m"]
    k, u = _jsonl(base / "k" / "train_log.jsonl"), _jsonl(base / "u" / "train_log.jsonl")
    assert [r["step"] for r in u] == list(range(1, m + 1))
    assert k == u                                          # every loss, bit for bit
    ck = torch.load(base / "k" / "last.pt", weights_only=False)
    cu = torch.load(base / "u" / "last.pt", weights_only=False)
    assert ck["step"] == cu["step"] == m and ck["world_size"] == 2 and len(cu["rng_ranks"]) == 2
    for key, v in cu["model"].items():
        assert torch.equal(v, ck["model"][key]), key
    assert torch.equal(ck["loss"]["mask.mu"], cu["loss"]["mask.mu"])
    assert not torch.equal(cu["rng_ranks"][0]["torch"], cu["rng_ranks"][1]["torch"])  # own streams


def _unsharded_test_eval(ckpt_path, root):
    """The unsharded evaluation, at the children's thread count (OMP_NUM_THREADS=1): torch's CPU
    convolutions and sums split their work by thread count, so results are bit-equal only at equal
    thread counts (sharding itself changes no bit; see README, More than one GPU)."""
    model, cfg = infer.load_checkpoint(str(ckpt_path), None, [], "cpu")
    cfg = dict(cfg, data_root=root)
    ds = train.build_split(cfg, cfg["train"]["test_split"], "uniform")
    threads = torch.get_num_threads()
    torch.set_num_threads(int(_env()["OMP_NUM_THREADS"]))
    try:
        return train.evaluate_split(model, ds, cfg, torch.device("cpu"), batch_size=2)
    finally:
        torch.set_num_threads(threads)


def test_sharded_evaluation_equals_unsharded(two_ranks, tiny_root):
    base = two_ranks["base"]
    final = _jsonl(base / "u" / "eval_log.jsonl")[-1]
    assert final["final"] and final["world_size"] == 2
    ref = _unsharded_test_eval(base / "u" / "best.pt", tiny_root)
    assert final["mAP"] == ref["mAP"] and final["averages"] == ref["averages"]
    assert final["num_detections"] == ref["num_detections"] > 0
    assert final["classification_accuracy"] == ref["classification_accuracy"]
    with open(base / "u" / "results.json") as f:
        assert json.load(f) == json.loads(json.dumps(ref["results"]))
    assert "mAP@0.10" in two_ranks["out_u"] and "avg 0.1:0.7" in two_ranks["out_u"]
    assert two_ranks["out_u"].count("run folder:") == 1 and two_ranks["out_u"].count("data:") == 1


def test_infer_split_root_sharded(two_ranks, tiny_root):
    base = two_ranks["base"]
    out = _torchrun(str(base), 2, ["--checkpoint", str(base / "u" / "best.pt"), "--split-root", tiny_root,
                                   "--device", "cpu", "--out", str(base / "sharded.json")],
                    module="sal_ext.infer")
    ref = _unsharded_test_eval(base / "u" / "best.pt", tiny_root)
    with open(base / "sharded.json") as f:
        assert json.load(f) == json.loads(json.dumps(ref["results"]))
    assert out.count("mAP@0.10") == 1                      # rank 0 alone prints
