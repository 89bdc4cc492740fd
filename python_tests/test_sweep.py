"""Seed sweeps (sal_ext.sweep via python -m sal_ext.train --seeds), their statistics
(sal_ext.sweep_stats) and the report (python -m sal_ext.report) on a tiny synthetic set."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from sal_ext import report, run_results, sweep, sweep_stats, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--set", "feature_dim=64", "--set", "model.hidden=8", "--set", "num_segments=32",
        "--batch-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from sal_ext.data.synthetic import ensure_synthetic
    return ensure_synthetic(cache_dir=str(tmp_path_factory.mktemp("synth")), seed=0, num_train=12,
                            num_test=6, num_classes=20, feature_dim=64, min_len=40, max_len=80)


def _args(data, steps=60):
    return ["--data-root", data, "--max-steps", str(steps), "--eval-every", "20",
            "--set", "save_every=5"] + TINY


class _threads:
    """torch threads of this process (a sweep's runs get them: T // jobs each)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def _log(run, name="train_log.jsonl"):
    with open(os.path.join(run, name)) as f:
        return [json.loads(x) for x in f if x.strip()]


def _result(folder):
    with open(os.path.join(folder, "sweep.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def sequential(data, tmp_path_factory):
    """A two-seed sweep, one run after another at one thread each."""
    out = str(tmp_path_factory.mktemp("seq") / "sweep")
    with _threads(1):
        assert train.main(_args(data) + ["--seeds", "2", "--out", out]) == 0
    return out


# ---- statistics ----------------------------------------------------------------------------------
def _entry(step, vals):
    return {"step": step, "tiou": [0.1, 0.3, 0.5], "mAP": list(vals[:3]),
            "averages": {"0.1:0.5": float(np.mean(vals[:3])), "0.3:0.5": float(np.mean(vals[1:3]))}}


def test_summary_equals_numpy():
    rng = np.random.default_rng(5)
    table = rng.uniform(0.1, 0.7, size=(5, 3))
    last = rng.uniform(0.1, 0.7, size=(5, 3))
    per_seed = {s: {"reference": _entry(100 * (s + 1), table[s]), "validation": None,
                    "last": _entry(500, last[s])} for s in range(5)}
    summ = sweep_stats.summarize(per_seed)
    assert set(summ) == {"reference", "last"}            # no seed has a validation selection
    for sel, x in (("reference", table), ("last", last)):
        full = np.concatenate([x, x.mean(1, keepdims=True), x[:, 1:].mean(1, keepdims=True)], 1)
        st = summ[sel]
        assert st["columns"] == ["mAP@0.10", "mAP@0.30", "mAP@0.50", "avg 0.1:0.5", "avg 0.3:0.5"]
        np.testing.assert_allclose(st["mean"], full.mean(0), rtol=1e-12)
        np.testing.assert_allclose(st["std"], full.std(0, ddof=1), rtol=1e-12)
        np.testing.assert_array_equal(st["min"], full.min(0))
        np.testing.assert_array_equal(st["max"], full.max(0))
        assert st["n"] == 5 and st["seeds"] == [0, 1, 2, 3, 4]
    assert summ["reference"]["steps"] == [100, 200, 300, 400, 500]
    text = sweep_stats.format_text(summ, "t")
    assert "%.2f ± %.2f" % (100 * table[:, 0].mean(), 100 * table[:, 0].std(ddof=1)) in text
    md = sweep_stats.format_markdown(summ)
    assert md.count("\n") == 5 and "| reference | 5 |" in md
    one = sweep_stats.summarize({0: per_seed[0]})
    assert one["reference"]["std"] is None and "±" not in sweep_stats.format_text(one)
    with pytest.raises(ValueError, match="columns"):
        bad = dict(per_seed)
        bad[9] = {"reference": {**_entry(1, table[0]), "tiou": [0.1, 0.2, 0.5]}}
        sweep_stats.summarize(bad)


def test_parse_seeds():
    assert sweep.parse_seeds("5") == [0, 1, 2, 3, 4]
    assert sweep.parse_seeds("3,0,7") == [3, 0, 7] and sweep.parse_seeds(" 2, 9") == [2, 9]
    for bad, what in (("", "empty"), (" ", "empty"), ("0", ">= 1"), ("-2", ">= 1"), ("1,-1", ">= 0"),
                      ("0,1,0", "repeated"), ("a", "integers"), ("1.5", "integers"), ("4,", "integers")):
        with pytest.raises(sweep.SweepError, match=what):
            sweep.parse_seeds(bad)


def _user_error(argv, *fragments):
    with pytest.raises(SystemExit) as e:
        train.main(argv)
    msg = e.value.code
    assert isinstance(msg, str) and "\n" not in msg and msg.startswith("python -m sal_ext.train: error:"), msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_bad_sweep_arguments(data, sequential, tmp_path):
    out = str(tmp_path / "s")
    args = _args(data) + ["--out", out]
    _user_error(args + ["--seeds", ""], "--seeds", "empty")
    _user_error(args + ["--seeds", "-1"], "--seeds -1")
    _user_error(args + ["--seeds", "1,2,1"], "seed 1 is repeated")
    _user_error(args + ["--seeds", "2", "--jobs", "0"], "--jobs 0", ">= 1")
    _user_error(args + ["--seeds", "2", "--jobs", "x"], "--jobs x")
    _user_error(args + ["--jobs", "2"], "--jobs", "--seeds")
    _user_error(args + ["--seeds", "2", "--seed", "4"], "--seed", "--seeds")
    _user_error(args + ["--seeds", "2", "--set", "nope=1"], "unknown config key 'nope'")
    _user_error(args + ["--seeds", "2", "--val-fraction", "1.5"], "--val-fraction")
    assert not os.path.exists(out)
    # a finished sweep: not written into again, resumed only with its own preset and arguments
    _user_error(_args(data) + ["--seeds", "2", "--out", sequential], "already holds a seed sweep", "--resume")
    _user_error(_args(data) + ["--out", sequential], "already holds a seed sweep", "--resume")  # one run
    run = os.path.join(sequential, "seed0")
    _user_error(_args(data) + ["--seeds", "2", "--out", run], f"--out {run} already holds a run")
    _user_error(["--resume", sequential, "--preset", "thumos14"], "--preset synthetic", "not thumos14")
    _user_error(["--resume", sequential, "--max-steps", "9"], "only --seeds and --jobs")
    _user_error(["--resume", sequential, "--data-root", str(tmp_path)], "data root")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "sweep_plan.json").write_text("{")
    _user_error(["--resume", str(junk)], "sweep_plan.json", "not JSON")


# ---- sweeps --------------------------------------------------------------------------------------
def test_sweep_result(sequential):
    res = _result(sequential)
    assert res["seeds"] == [0, 1] and res["threads"] == 1 and res["preset"] == "synthetic"
    for s in ("0", "1"):
        sel = res["per_seed"][s]
        run = os.path.join(sequential, f"seed{s}")
        ev = [e for e in _log(run, "eval_log.jsonl") if not e.get("final")]
        best = max(ev, key=lambda e: e["averages"]["0.1:0.7"])   # the trainer's selection metric
        assert sel["reference"]["step"] == best["step"] and sel["reference"]["mAP"] == best["mAP"]
        assert sel["last"]["step"] == 60 and sel["last"]["mAP"] == ev[-1]["mAP"]
        assert sel["validation"] is None
        assert json.load(open(os.path.join(run, "config.json")))["train"]["seed"] == int(s)
    x = np.array([res["per_seed"][s]["reference"]["mAP"] for s in ("0", "1")])
    np.testing.assert_allclose(res["summary"]["reference"]["mean"][:7], x.mean(0))
    np.testing.assert_allclose(res["summary"]["reference"]["std"][:7], x.std(0, ddof=1))
    # the two seeds are different runs
    assert _log(os.path.join(sequential, "seed0"))[-1] != _log(os.path.join(sequential, "seed1"))[-1]


def test_jobs_equal_sequential(data, sequential, tmp_path):
    out = str(tmp_path / "par")
    with _threads(2):
        assert train.main(_args(data) + ["--seeds", "2", "--jobs", "2", "--out", out]) == 0
    assert _result(out)["threads"] == 1                     # 2 threads shared by 2 runs
    for s in (0, 1):
        assert _log(os.path.join(out, f"seed{s}")) == _log(os.path.join(sequential, f"seed{s}"))
    assert _result(out)["per_seed"] == _result(sequential)["per_seed"]
    assert _result(out)["summary"] == _result(sequential)["summary"]


def test_killed_sweep_resumes(data, sequential, tmp_path):
    out = str(tmp_path / "killed")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "sal_ext.train"] + _args(data) + ["--seeds", "2", "--out", out],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = os.path.join(out, "seed1", "last.pt")
    deadline = time.time() + 300
    try:
        while not os.path.exists(last) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # the sweep and its running seed
        proc.wait()
    assert run_results.is_finished(os.path.join(out, "seed0"))
    assert not run_results.is_finished(os.path.join(out, "seed1")), "seed 1 finished before the kill"
    assert not os.path.exists(os.path.join(out, "sweep.json"))
    seed0 = os.path.getmtime(os.path.join(out, "seed0", "last.pt"))
    assert train.main(["--resume", out]) == 0
    assert os.path.getmtime(os.path.join(out, "seed0", "last.pt")) == seed0     # not rerun
    for s in (0, 1):
        assert _log(os.path.join(out, f"seed{s}")) == _log(os.path.join(sequential, f"seed{s}"))
    assert _result(out)["per_seed"] == _result(sequential)["per_seed"]
    with open(os.path.join(out, "logs", "seed1.log")) as f:
        assert "resumed from step" in f.read()


def test_validation_sweep_has_three_selections(data, tmp_path):
    out = str(tmp_path / "val")
    with _threads(1):
        assert train.main(_args(data, steps=40) + ["--seeds", "1", "--val-fraction", "0.25", "--out", out]) == 0
    sel = _result(out)["per_seed"]["0"]
    ev = _log(os.path.join(out, "seed0"), "eval_log.jsonl")
    assert [(e["step"], e["split"]) for e in ev[:-1]] == [(20, "val"), (20, "test"), (40, "val"), (40, "test")]
    assert ev[-1]["final"] and sel["validation"]["step"] == ev[-1]["step"]
    assert sel["reference"]["step"] in (20, 40) and sel["last"]["step"] == 40
    assert sel["last"]["mAP"] == ev[3]["mAP"]


# ---- report --------------------------------------------------------------------------------------
def _series(ax):
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def test_report_figure_and_markdown(sequential, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = os.path.join(sequential, "seed0")
    png, md = str(tmp_path / "r.png"), str(tmp_path / "r.md")
    assert report.main([sequential, run, "--out", png, "--out", md]) == 0
    assert os.path.getsize(png) > 10_000
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    fig = report.make_figure([report.load_source(sequential), report.load_source(run)])
    assert len(fig.axes) == 8
    for ax in fig.axes[:7]:                       # loss panels: the sweep's mean and the run
        assert [ln.get_label() for ln in _series(ax)] == ["sweep (mean of 2 seeds ± sd)", "seed0"]
        assert len(ax.collections) == 1           # the sweep's ±sd band
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert legend[:2] == ["sweep (mean of 2 seeds ± sd)", "seed0"]
    assert any("reference selection" in t for t in legend) and any("last step" in t for t in legend)
    assert "preset synthetic" in fig._suptitle.get_text()
    text = open(md).read()
    assert "## sweep (sweep of 2 seeds" in text and "| reference | 2 |" in text and "## seed0 (run" in text


def test_report_bad_input(sequential, tmp_path):
    def err(argv, *frags):
        with pytest.raises(SystemExit) as e:
            report.main(argv)
        msg = e.value.code
        assert isinstance(msg, str) and "\n" not in msg and msg.startswith("python -m sal_ext.report"), msg
        for f in frags:
            assert f in msg, msg
    err([str(tmp_path / "nope"), "--out", str(tmp_path / "a.png")], "no such folder")
    err([str(tmp_path), "--out", str(tmp_path / "a.png")], "no config.json")
    err([sequential, "--out", str(tmp_path / "a.txt")], "--out", ".md")
    err([sequential, "--out", str(tmp_path / "missing" / "a.png")], "no such folder")


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_sweep_under_torchrun(data, tmp_path):
    """Two gloo processes: the seeds run one after another, each a 2-process run of the job;
    rank 0 writes the plan, the runs and sweep.json."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "tr")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
           "127.0.0.1", "--master_port", str(port), "-m", "sal_ext.train", "--device", "cpu"]
    r = subprocess.run(cmd + _args(data, steps=6) + ["--seeds", "2", "--out", out], env=env, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    res = _result(out)
    assert res["seeds"] == [0, 1] and set(res["summary"]) == {"reference", "last"}
    for s in (0, 1):
        ck = torch.load(os.path.join(out, f"seed{s}", "last.pt"), weights_only=False)
        assert ck["world_size"] == 2 and ck["step"] == 6 and ck["config"]["train"]["seed"] == s
    r = subprocess.run(cmd + _args(data, steps=6) + ["--seeds", "2", "--jobs", "2", "--out", str(tmp_path / "j")],
                       env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert r.returncode != 0 and "--jobs: under torchrun" in r.stdout
