"""Trainer end to end on a tiny synthetic set (CPU, seconds): train, evaluate, checkpoint,
resume exactly, infer. Needs sal_ext.data, sal_ext.inference and sal_ext.evaluate."""
import json
import os

from pathlib import Path

import numpy as np
import pytest
import torch

from sal_ext import config as C
from sal_ext import infer, train
from tiny_run import TINY


def _log(path, name="train_log.jsonl"):
    with open(os.path.join(path, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_train_evaluate_resume_infer(tiny_root, tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    args = ["--data-root", tiny_root, "--eval-every", "3"] + TINY
    assert train.main(args + ["--out", a, "--max-steps", "7"]) == 0
    table = capsys.readouterr().out
    assert "mAP@0.10" in table and "avg 0.1:0.7" in table

    # a run killed after step 4 (mid-epoch: 3 batches an epoch), then resumed to step 7
    assert train.main(args + ["--out", b, "--max-steps", "4"]) == 0
    assert train.main(["--resume", b, "--max-steps", "7", "--no-progress"]) == 0
    la, lb = _log(a), _log(b)
    assert [r["step"] for r in lb] == list(range(1, 8))
    for ra, rb in zip(la, lb):
        assert ra["total"] == rb["total"], (ra["step"], ra["total"], rb["total"])   # exactly
    ca = torch.load(os.path.join(a, "last.pt"), weights_only=False)
    cb = torch.load(os.path.join(b, "last.pt"), weights_only=False)
    for k, v in ca["model"].items():
        assert torch.equal(v, cb["model"][k]), k
    assert torch.equal(ca["loss"]["mask.mu"], cb["loss"]["mask.mu"])
    assert ca["step"] == 7 and ca["epoch"] == 2 and ca["pos"] == 1
    assert set(ca["rng"]) >= {"torch", "numpy", "python"}
    assert {"model", "optimizer", "loss", "config", "best"} <= set(ca)

    # evaluations: steps 3, 6 and the end (7), then the final test of the best checkpoint
    ev = _log(a, "eval_log.jsonl")
    assert [r["step"] for r in ev[:3]] == [3, 6, 7] and ev[-1].get("final")
    for r in ev:
        assert len(r["mAP"]) == 7 and all(0 <= v <= 1 for v in r["mAP"])
        assert set(r["times"]) >= {"forward", "postprocess", "map"}
    best = torch.load(os.path.join(a, "best.pt"), weights_only=False)
    assert best["best"]["metric"] == max(r["averages"]["0.1:0.7"] for r in ev[:3])
    assert not [f for f in os.listdir(a) if ".tmp" in f]  # atomic writes leave no temp file

    # inference: one video (features in one file, and as rgb + flow), then the whole split
    vid = Path(tiny_root, "split_test.txt").read_text().split()[0]
    rgb = os.path.join(tiny_root, "features", "test", "rgb", vid + ".npy")
    flow = os.path.join(tiny_root, "features", "test", "flow", vid + ".npy")
    both = str(tmp_path / "v.npy")
    np.save(both, np.concatenate([np.load(rgb), np.load(flow)], 1))
    png = str(tmp_path / "v.png")
    capsys.readouterr()
    assert infer.main(["--checkpoint", os.path.join(a, "best.pt"), "--features", both, "--plot", png]) == 0
    one = capsys.readouterr().out
    assert "start (s)" in one and os.path.getsize(png) > 0
    assert infer.main(["--checkpoint", os.path.join(a, "best.pt"), "--rgb", rgb, "--flow", flow]) == 0
    assert capsys.readouterr().out.splitlines()[2:] == one.splitlines()[2:-1]
    from sal_ext.data import THUMOS14_CLASSES
    res = str(tmp_path / "results.json")
    assert infer.main(["--checkpoint", os.path.join(a, "best.pt"), "--split-root", tiny_root, "--out", res]) == 0
    out = json.loads(Path(res).read_text())
    assert set(out) >= {"results"} and len(out["results"]) >= 1
    for dets in out["results"].values():
        for d in dets:
            assert d["segment"][0] <= d["segment"][1] and d["label"] in THUMOS14_CLASSES


def test_val_fraction_selects_on_held_out_videos(tiny_root, tmp_path):
    out = str(tmp_path / "v")
    assert train.main(["--data-root", tiny_root, "--out", out, "--max-steps", "2", "--eval-every", "1",
                       "--val-fraction", "0.25"] + TINY) == 0
    ev = _log(out, "eval_log.jsonl")
    assert [r["split"] for r in ev] == ["val", "val", "test"] and ev[-1]["final"]
    ck = torch.load(os.path.join(out, "last.pt"), weights_only=False)
    assert ck["config"]["val_fraction"] == 0.25


def test_reference_checkpoint_loads_in_infer(tiny_root, tmp_path):
    """A bare state dict (the reference's CAS_Only.pkl format) with --preset and overrides."""
    from sal_ext.model import SAL
    model = SAL(in_dim=64, num_classes=20, hidden=8)
    path = str(tmp_path / "CAS_Only.pkl")
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)
    m, cfg = infer.load_checkpoint(path, "thumos14", ["feature_dim=64", "model.hidden=8", "num_segments=32"], "cpu")
    for k, v in model.state_dict().items():
        assert torch.equal(m.state_dict()[k], v)
    vid = Path(tiny_root, "split_test.txt").read_text().split()[0]
    feats = np.concatenate([np.load(os.path.join(tiny_root, "features", "test", s, vid + ".npy"))
                            for s in ("rgb", "flow")], 1)
    dets, out, post = infer.localize(m, cfg, feats.astype(np.float32))
    assert out["cas"].shape == (1, 32, 20)
    assert all(d["segment"][1] <= feats.shape[0] * 16 / 25 + 1e-6 + 16 / 25 * 2 for d in dets)


def test_config_overrides():
    cfg = C.get_preset("thumos14")
    C.apply_overrides(cfg, ["lr=3e-4", "model.hidden=64", "inference.fuse_weights=[0.5,0.25,0.25]",
                            "max_steps=10", "data_root=/x"])
    assert cfg["optim"]["lr"] == 3e-4 and cfg["model"]["hidden"] == 64
    assert cfg["inference"]["fuse_weights"] == [0.5, 0.25, 0.25] and cfg["train"]["max_steps"] == 10
    assert cfg["data_root"] == "/x"
    with pytest.raises(KeyError, match="unknown"):
        C.apply_overrides(cfg, ["nope=1"])
    with pytest.raises(KeyError, match="ambiguous"):
        C.resolve_key({"a": {"k": 1}, "b": {"k": 2}}, "k")
    with pytest.raises(ValueError, match="key=value"):
        C.apply_overrides(cfg, ["lr"])
    assert C.get_preset("thumos14")["optim"]["lr"] == 1e-4  # presets are copied, not shared
    a13, a12 = C.get_preset("activitynet13"), C.get_preset("activitynet12")
    assert (a13["num_classes"], a12["num_classes"], a13["num_segments"]) == (200, 100, 50)
    assert a13["model"]["encoder_kernel"] == 7 and a13["train"]["batch_size"] == 32
    assert a13["loss"]["ema_momentum"] == 0.99 and a13["loss"]["var_scale"] == 6.0
    assert a13["inference"]["nms_threshold"] == 0.7 and a13["inference"]["nms_sigma"] == 0.35
    assert len(a13["eval"]["tiou_thresholds"]) == 10
    th = C.get_preset("thumos14")
    assert (th["num_segments"], th["train"]["batch_size"], th["train"]["epochs"], th["train"]["eval_every"]) == (750, 2, 100, 10)
    json.dumps(th)  # plain data


def _user_error(fn, argv, *fragments):
    """fn(argv) must exit with a one-line message (no traceback) holding every fragment."""
    with pytest.raises(SystemExit) as e:
        fn(argv)
    msg = e.value.code
    assert isinstance(msg, str) and "\n" not in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_cli_user_errors(tmp_path):
    # each of these used to end in a traceback (or, for a bad data root, an exception from
    # the data loader after the run folder had been created)
    empty = tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "out")
    _user_error(train.main, ["--preset", "thumos14", "--data-root", str(tmp_path / "nope")], "no such folder")
    _user_error(train.main, ["--preset", "thumos14", "--data-root", str(empty), "--out", out],
                "split file is missing")
    assert not os.path.exists(out)
    _user_error(train.main, ["--set", "nope=3", "--out", out], "unknown config key 'nope'")
    _user_error(train.main, ["--val-fraction", "1.5", "--out", out], "--val-fraction")
    for bad in (["--batch-size", "0"], ["--epochs", "x"], ["--max-steps", "-1"], ["--eval-every", "0"]):
        with pytest.raises(SystemExit) as e:  # argparse: usage and status 2
            train.main(bad)
        assert e.value.code == 2
    _user_error(train.main, ["--resume", str(tmp_path / "missing.pt")], "--resume", "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("junk")
    _user_error(train.main, ["--resume", str(junk)], "cannot read")
    other = str(tmp_path / "other.pt")
    torch.save({"a": torch.zeros(3)}, other)
    _user_error(train.main, ["--resume", other], "not a last.pt")
    feats = str(tmp_path / "x.npy")
    np.save(feats, np.zeros((10, 2048), np.float32))
    _user_error(infer.main, ["--checkpoint", str(tmp_path / "missing.pt"), "--features", feats], "no such file")
    _user_error(infer.main, ["--checkpoint", str(junk), "--features", feats], "not a PyTorch checkpoint")
    _user_error(infer.main, ["--checkpoint", other, "--features", feats], "does not fit the --preset thumos14")
    _user_error(infer.main, ["--checkpoint", other, "--features", feats, "--set", "nope=1"],
                "unknown config key 'nope'")


def test_cli_user_error_subprocess(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "sal_ext.infer", "--checkpoint", str(tmp_path / "missing.pt"),
                        "--features", "x.npy"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [f"python -m sal_ext.infer: error: --checkpoint "
                                             f"{tmp_path / 'missing.pt'}: no such file"]
