"""A training step with a non-finite loss stops the run at once: a one-line error naming the
step and the loss term, non-zero exit, and the last.pt from before it is left as it was."""
import glob
import json
import os
import shutil

import numpy as np
import pytest
import torch

from sal_ext import losses, train
from tiny_run import TINY


def _steps(out):
    with open(os.path.join(out, "train_log.jsonl")) as f:
        return [json.loads(line)["step"] for line in f if line.strip()]


def test_nan_term_stops_at_its_step_and_keeps_last_pt(tiny_root, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    real = losses.consistency_mse
    calls = {"n": 0}

    def mse_nan_at_step_5(a, b):   # the consistency term (mc) goes NaN at the 5th step
        calls["n"] += 1
        v = real(a, b)
        return v * float("nan") if calls["n"] == 5 else v
    monkeypatch.setattr(losses, "consistency_mse", mse_nan_at_step_5)
    with pytest.raises(SystemExit) as e:
        train.main(["--data-root", tiny_root, "--out", out, "--max-steps", "8", "--set", "save_every=2",
                    "--set", "eval_every=null"] + TINY)
    msg = e.value.code
    assert isinstance(msg, str) and "\n" not in msg, msg
    assert "non-finite loss at step 5" in msg and "mc=nan" in msg and "last.pt from step 4 is kept" in msg, msg
    for other in ("mil=", "bg=", "act=", "se="):   # only the bad term is named
        assert other not in msg, msg
    ck = torch.load(os.path.join(out, "last.pt"), weights_only=False)
    assert ck["step"] == 4
    assert all(torch.isfinite(v).all() for v in ck["model"].values())
    assert _steps(out) == [1, 2, 3, 4]          # the bad step is not logged as a step done
    assert not os.path.exists(os.path.join(out, "results.json"))


def test_nonfinite_activations_stop_in_one_line(tiny_root, tmp_path):
    """Finite but huge features (3e37) overflow in the first convolution: the run stops at step
    1 with a one-line error (before, a traceback from the op that met the NaN)."""
    data = str(tmp_path / "huge")
    shutil.copytree(tiny_root, data)
    for f in glob.glob(os.path.join(data, "features", "train", "rgb", "*.npy")):
        np.save(f, np.full(np.load(f).shape, 3e37, np.float32))
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit) as e:
        train.main(["--data-root", data, "--out", out, "--max-steps", "3"] + TINY)
    msg = e.value.code
    assert isinstance(msg, str) and "\n" not in msg, msg
    assert "non-finite loss at step 1" in msg and "no last.pt had been written yet" in msg, msg
    assert not os.path.exists(os.path.join(out, "last.pt"))


def test_exit_status_and_no_traceback(tiny_root, tmp_path):
    import subprocess
    import sys
    data = str(tmp_path / "huge")
    shutil.copytree(tiny_root, data)
    for f in glob.glob(os.path.join(data, "features", "train", "flow", "*.npy")):
        np.save(f, np.full(np.load(f).shape, -3e37, np.float32))
    r = subprocess.run([sys.executable, "-m", "sal_ext.train", "--data-root", data, "--out", str(tmp_path / "r"),
                        "--max-steps", "2"] + TINY, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("python -m sal_ext.train: error: non-finite loss at step 1")
