"""No run is ever lost (issue 18): --out never overwrites a run, SIGINT / SIGTERM save last.pt
and say how to resume, paths are stored absolute, a resumed finished run logs nothing twice,
and settings that name data or cannot fit in memory are refused before any step."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import sal_ext
from sal_ext import preflight, run_folder, train
from tiny_run import TINY

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(sal_ext.__file__)))


def _lines(path):
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def _snapshot(folder):
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


def _error(capsys, fn):
    with pytest.raises(SystemExit) as ei:
        fn()
    msg = str(ei.value.code)
    assert "\n" not in msg, msg
    return msg


def test_out_holding_a_run_is_refused_and_left_untouched(tiny_root, tmp_path, capsys):
    out = str(tmp_path / "exp1")
    args = ["--data-root", tiny_root, "--out", out, "--max-steps", "2", "--eval-every", "2"] + TINY
    assert train.main(args) == 0
    before = _snapshot(out)
    msg = _error(capsys, lambda: train.main(args))
    assert f"--out {out} already holds a run" in msg and f"--resume {out}" in msg
    assert _snapshot(out) == before                      # not a byte changed


def test_out_not_empty_or_a_file_is_refused(tiny_root, tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    msg = _error(capsys, lambda: train.main(["--data-root", tiny_root, "--out", str(other), "--max-steps", "1"] + TINY))
    assert "is not empty (1 entry, e.g. 'notes.txt')" in msg
    assert os.listdir(other) == ["notes.txt"]
    msg = _error(capsys, lambda: train.main(["--data-root", tiny_root, "--out", str(other / "notes.txt"),
                                             "--max-steps", "1"] + TINY))
    assert "is a file" in msg and "--out" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train.main(["--data-root", tiny_root, "--out", str(empty), "--max-steps", "1"] + TINY) == 0


def test_default_out_is_unique(tmp_path):
    a = run_folder.default_out("x", root=str(tmp_path))
    os.makedirs(a)
    b = run_folder.default_out("x", root=str(tmp_path))
    assert b != a and b.startswith(a)


def _start(cwd, args):
    env = dict(os.environ, PYTHONPATH=PKG_PARENT, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "sal_ext.train"] + args, cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("sig,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_last_pt_and_resume_is_exact(tiny_root, tmp_path, sig, status):
    args = ["--data-root", tiny_root, "--max-steps", "60", "--eval-every", "25"] + TINY
    out = tmp_path / "k"
    p = _start(str(tmp_path), args + ["--out", str(out)])
    log = out / "train_log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if log.exists() and len(_lines(log)) >= 2:
            break
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=240)
    assert p.returncode == status, stderr[-2000:]
    err = [ln for ln in stderr.splitlines() if ln.startswith("python -m sal_ext.train:")]
    assert len(err) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert stderr.rstrip().splitlines()[-1] == err[0]     # the last word, one line
    ck = torch.load(out / "last.pt", weights_only=False)
    steps = [r["step"] for r in _lines(log)]
    assert 2 <= ck["step"] < 60 and steps == list(range(1, ck["step"] + 1))
    assert f"after step {ck['step']}" in err[0] and f"--resume {out}" in err[0]

    # the printed command finishes the run; its losses equal an uninterrupted run's (at the
    # child's thread count: float sums depend on it)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train.main(["--resume", str(out), "--no-progress"]) == 0
        ref = tmp_path / "u"
        assert train.main(args + ["--out", str(ref)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert _lines(log) == _lines(ref / "train_log.jsonl")


def test_relative_data_root_is_stored_absolute(tiny_root, tmp_path, monkeypatch):
    monkeypatch.chdir(os.path.dirname(tiny_root))
    out = str(tmp_path / "r")
    assert train.main(["--data-root", os.path.basename(tiny_root), "--out", out, "--max-steps", "1"] + TINY) == 0
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["data_root"] == tiny_root
    monkeypatch.chdir(tmp_path)                           # resume from elsewhere
    assert train.main(["--resume", out, "--max-steps", "2", "--no-progress"]) == 0


def test_resume_missing_data_root_names_it(tiny_root, tmp_path, capsys):
    out = str(tmp_path / "m")
    assert train.main(["--data-root", tiny_root, "--out", out, "--max-steps", "1"] + TINY) == 0
    ck = torch.load(os.path.join(out, "last.pt"), weights_only=False)
    ck["config"]["data_root"] = str(tmp_path / "gone")
    torch.save(ck, os.path.join(out, "last.pt"))
    msg = _error(capsys, lambda: train.main(["--resume", out, "--max-steps", "2"]))
    assert f"data folder {tmp_path / 'gone'}" in msg and "--data-root" in msg


def test_resume_of_finished_run_logs_nothing_twice(tiny_root, tmp_path):
    out = str(tmp_path / "f")
    assert train.main(["--data-root", tiny_root, "--out", out, "--max-steps", "4", "--eval-every", "2"] + TINY) == 0
    before = _snapshot(out)
    assert train.main(["--resume", out, "--no-progress"]) == 0
    after = _snapshot(out)
    for name in ("train_log.jsonl", "results.json"):
        assert after[name] == before[name], name
    ev_b, ev_a = _lines(os.path.join(out, "eval_log.jsonl")), before["eval_log.jsonl"]
    assert [r["step"] for r in ev_b] == [2, 4, ev_b[-1]["step"]] and ev_b[-1]["final"]
    assert len(ev_b) == len(ev_a.decode().splitlines())


def test_resume_without_optimizer_state_says_so(tiny_root, tmp_path, capsys):
    out = str(tmp_path / "b")
    assert train.main(["--data-root", tiny_root, "--out", out, "--max-steps", "2", "--eval-every", "2"] + TINY) == 0
    msg = _error(capsys, lambda: train.main(["--resume", os.path.join(out, "best.pt")]))
    assert "holds no optimizer state" in msg and "last.pt" in msg


def test_data_naming_values_checked_before_the_first_step(tiny_root, tmp_path, capsys):
    out = tmp_path / "s"
    msg = _error(capsys, lambda: train.main(["--data-root", tiny_root, "--out", str(out), "--max-steps", "1",
                                             "--set", "eval.subset=nosuch"] + TINY))
    assert "eval.subset='nosuch'" in msg and "'test'" in msg
    assert not out.exists()                               # no step, no run folder
    assert "run folder:" not in capsys.readouterr().out   # nor a line naming one
    msg = _error(capsys, lambda: train.main(["--data-root", tiny_root, "--out", str(out), "--max-steps", "1",
                                             "--set", "eval.ambiguous_file=/no/such.txt"] + TINY))
    assert "eval.ambiguous_file" in msg


def test_memory_estimate_refuses_a_model_that_cannot_fit(tiny_root, tmp_path, capsys):
    t0 = time.perf_counter()
    msg = _error(capsys, lambda: train.main(["--data-root", tiny_root, "--out", str(tmp_path / "h"),
                                             *TINY, "--set", "model.hidden=100000"]))
    assert "model.hidden=100000" in msg and "parameters" in msg and "TiB" in msg
    assert not (tmp_path / "h").exists()
    cfg = train.build_config(train.parse_args(["--data-root", tiny_root] + TINY))
    n, need = preflight.training_memory(cfg)
    model = train.build_model(cfg)
    assert n == sum(p.numel() for p in model.parameters())
    assert need >= preflight.TRAIN_BYTES_PER_PARAM * n
