"""Bad inputs, one row each: the op or command refuses them in one line that names the
argument or the file, without a traceback (issue 18). A regression fails a row here, not a user.

Each row: an id, what is called (an op of the Python API, ``python -m sal_ext.evaluate`` or
``python -m sal_ext.infer``, both in process through their main(argv)), what it must raise
(an exception type; the commands: SystemExit, status 2 for evaluate, a message, i.e.
status 1, for infer) and fragments the message must contain. Files come from one folder made
once per module (no training: the checkpoints are built from the config).
"""
import json
import os
import pickle
import stat
import subprocess
import sys
from typing import Callable, NamedTuple, Tuple

import numpy as np
import pytest
import torch

from sal_ext import evaluate, infer, ops
from sal_ext.config import apply_overrides, get_preset
from sal_ext.model import build_model


class Row(NamedTuple):
    id: str
    kind: str                   # "api" | "evaluate" | "infer"
    call: Callable              # api: () -> None; commands: folder -> argv
    expect: object              # api: the exception type; commands: the exit status
    fragments: Tuple[str, ...]  # each must be in the message


# ---- files ------------------------------------------------------------------------------------
GT = {"database": {"vid": {"subset": "test", "annotations": [{"label": "Jump", "segment": [1.0, 3.0]}]}}}
PRED = {"results": {"vid": [{"label": "Jump", "score": 0.9, "segment": [1.0, 3.0]}]}}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """The folder of every file the rows name (as str)."""
    p = tmp_path_factory.mktemp("bad")
    (p / "gt.json").write_text(json.dumps(GT))
    (p / "pred.json").write_text(json.dumps(PRED))
    latin = lambda obj: json.dumps(obj, ensure_ascii=False).replace("vid", "vidé").encode("latin-1")
    (p / "gt_latin1.json").write_bytes(latin(GT))
    (p / "pred_latin1.json").write_bytes(latin(PRED))
    (p / "amb_reversed.txt").write_text("vid 1.0 2.0\nvid 5.0 4.0\n")
    (p / "amb_latin1.txt").write_bytes("vidé 1.0 2.0\n".encode("latin-1"))
    (p / "th14_latin1").mkdir()
    (p / "th14_latin1" / "Jump_test.txt").write_bytes("vidé 1.0 3.0\n".encode("latin-1"))
    (p / "th14_reversed").mkdir()
    (p / "th14_reversed" / "Jump_test.txt").write_text("vid 1.0 3.0\n")
    (p / "th14_reversed" / "Ambiguous_test.txt").write_text("vid 1.0 2.0\nvid 7.0 6.5\n")
    # features
    np.save(p / "f.npy", np.random.default_rng(0).random((40, 64), dtype=np.float32))
    (p / "text.npy").write_text("1 2 3\n4 5 6\n")
    np.savez(p / "two.npz", rgb=np.zeros((4, 32)), flow=np.zeros((4, 32)))
    os.replace(p / "two.npz", p / "two_npz.npy")  # an archive under a .npy name
    np.savez(p / "one.npz", feats=np.zeros((4, 64)))
    np.save(p / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (p / "pickled.npy").write_bytes(pickle.dumps({"x": 1}, protocol=4))
    (p / "empty.npy").write_bytes(b"")
    (p / "feats_dir").mkdir()
    # checkpoints: ours (the config it was trained with + weights), a reference state dict
    cfg = get_preset("thumos14")
    apply_overrides(cfg, ["feature_dim=64", "model.hidden=8", "num_segments=32"])
    torch.save({"config": cfg, "model": build_model(cfg).state_dict(), "step": 0}, p / "ours.pt")
    torch.save(build_model(get_preset("synthetic")).state_dict(), p / "ref_synthetic.pt")
    (p / "text.pt").write_text("not a checkpoint")
    (p / "empty.pt").write_bytes(b"")
    return str(p)


def _ev(*args):
    return lambda d: [a.format(d=d) for a in ("--gt", "{d}/gt.json", "--pred", "{d}/pred.json") + args]


def _ev_files(gt, pred, *args):
    return lambda d: [a.format(d=d) for a in ("--gt", gt, "--pred", pred) + args]


def _inf(*args):
    return lambda d: [a.format(d=d) for a in args]


SEG = torch.tensor([[0.0, 1.0], [0.5, 2.0]])
SC = torch.tensor([0.9, 0.8])
X = torch.rand(3, 4, dtype=torch.float64)

ROWS = [
    # ---- ops: scalar options outside their meaning --------------------------------------------
    Row("nms-iou-above-1", "api", lambda: ops.nms_1d(SEG, SC, iou_threshold=1.5), ValueError,
        ("nms_1d", "`iou_threshold`", "[0, 1]", "1.5")),
    Row("nms-iou-negative", "api", lambda: ops.nms_1d(SEG, SC, iou_threshold=-0.1), ValueError,
        ("`iou_threshold`", "[0, 1]", "-0.1")),
    Row("nms-iou-nan", "api", lambda: ops.nms_1d(SEG, SC, iou_threshold=float("nan")), ValueError,
        ("`iou_threshold`",)),
    Row("nms-iou-soft-above-1", "api", lambda: ops.nms_1d(SEG, SC, iou_threshold=2.0, method="sal"),
        ValueError, ("`iou_threshold`", "[0, 1]")),
    Row("nms-sigma-zero", "api", lambda: ops.nms_1d(SEG, SC, iou_threshold=0.5, method="gaussian", sigma=0.0),
        ValueError, ("`sigma`", "> 0")),
    Row("nms-sigma-negative", "api", lambda: ops.nms_1d(SEG, SC, iou_threshold=0.5, method="sal", sigma=-1.0),
        ValueError, ("`sigma`",)),
    Row("nms-sigma-inf", "api", lambda: ops.nms_1d(SEG, SC, iou_threshold=0.5, sigma=float("inf")),
        ValueError, ("`sigma`", "finite")),
    Row("mixup-weight-5", "api", lambda: ops.segment_mixup(X, 1, 5), ValueError,
        ("segment_mixup", "`weight`", "[0, 1]", "5")),
    Row("mixup-weight-negative", "api", lambda: ops.segment_mixup(X, 1, -0.1), ValueError, ("`weight`", "[0, 1]")),
    Row("mixup-weight-nan", "api", lambda: ops.segment_mixup(X, 1, float("nan")), ValueError, ("`weight`",)),
    Row("mixup-weight-str", "api", lambda: ops.segment_mixup(X, 1, "0.5"), TypeError, ("`weight`", "float")),
    Row("mixup-weight-grad", "api", lambda: ops.segment_mixup(X, 1, torch.tensor(0.5, requires_grad=True)),
        TypeError, ("`weight`", "requires grad")),
    # ---- evaluate: thresholds, ambiguous segments, encodings --------------------------------
    Row("tiou-empty-item", "evaluate", _ev("--tiou", "0.3,,0.5"), 2, ("--tiou", "'0.3,,0.5'")),
    Row("tiou-trailing-comma", "evaluate", _ev("--tiou", "0.3,0.5,"), 2, ("--tiou",)),
    Row("tiou-duplicate", "evaluate", _ev("--tiou", "0.3,0.5,0.3"), 2, ("--tiou", "0.3 more than once")),
    Row("tiou-duplicate-spelled-apart", "evaluate", _ev("--tiou", "0.5,0.50"), 2, ("--tiou", "0.5 more than once")),
    Row("tiou-duplicate-api", "api",
        lambda: evaluate.detection_map(GT, PRED, tiou_thresholds=[0.5, 0.5]), ValueError,
        ("`tiou_thresholds`", "0.5 more than once")),
    Row("ambiguous-file-end-before-start", "evaluate",
        _ev("--protocol", "thumos14", "--ambiguous", "{d}/amb_reversed.txt"), 2,
        ("amb_reversed.txt", "line 2", "end < start")),
    Row("ambiguous-in-folder-end-before-start", "evaluate", _ev_files("{d}/th14_reversed", "{d}/pred.json"), 2,
        ("Ambiguous_test.txt", "line 2", "end < start")),
    Row("ambiguous-api-end-before-start", "api",
        lambda: evaluate.detection_map(GT, PRED, protocol="wtalc", ambiguous=[("vid", 5.0, 4.0)]), ValueError,
        ("`ambiguous` entry 0", "'vid'", "end < start")),
    Row("gt-latin1", "evaluate", _ev_files("{d}/gt_latin1.json", "{d}/pred.json"), 2,
        ("ground truth file", "gt_latin1.json", "not UTF-8")),
    Row("pred-latin1", "evaluate", _ev_files("{d}/gt.json", "{d}/pred_latin1.json"), 2,
        ("predictions file", "pred_latin1.json", "not UTF-8")),
    Row("ambiguous-latin1", "evaluate", _ev("--protocol", "wtalc", "--ambiguous", "{d}/amb_latin1.txt"), 2,
        ("amb_latin1.txt", "not UTF-8")),
    Row("class-txt-latin1", "evaluate", _ev_files("{d}/th14_latin1", "{d}/pred.json"), 2,
        ("Jump_test.txt", "not UTF-8")),
    # ---- infer: files that are not what their name says, checkpoints of another network -----
    Row("features-text-named-npy", "infer", _inf("--checkpoint", "{d}/ours.pt", "--features", "{d}/text.npy"), 1,
        ("--features", "text.npy", "not a NumPy .npy file", "text file starting with '1 2 3'")),
    Row("features-npz", "infer", _inf("--checkpoint", "{d}/ours.pt", "--features", "{d}/one.npz"), 1,
        ("--features", "one.npz", ".npz archive", "'feats'", "np.save")),
    Row("features-npz-named-npy", "infer", _inf("--checkpoint", "{d}/ours.pt", "--rgb", "{d}/two_npz.npy",
                                                "--flow", "{d}/f.npy"), 1,
        ("--rgb", "two_npz.npy", ".npz archive of 2 array(s)", "'rgb', 'flow'")),
    Row("features-object-array", "infer", _inf("--checkpoint", "{d}/ours.pt", "--features", "{d}/objects.npy"), 1,
        ("--features", "objects.npy", "dtype object")),
    Row("features-pickle", "infer", _inf("--checkpoint", "{d}/ours.pt", "--features", "{d}/pickled.npy"), 1,
        ("--features", "pickled.npy", "a Python pickle")),
    Row("features-empty", "infer", _inf("--checkpoint", "{d}/ours.pt", "--features", "{d}/empty.npy"), 1,
        ("--features", "empty.npy", "empty file")),
    Row("features-folder", "infer", _inf("--checkpoint", "{d}/ours.pt", "--features", "{d}/feats_dir"), 1,
        ("--features", "feats_dir", "is a folder")),
    Row("checkpoint-folder", "infer", _inf("--checkpoint", "{d}", "--features", "{d}/f.npy"), 1,
        ("--checkpoint", "is a folder")),
    Row("checkpoint-text", "infer", _inf("--checkpoint", "{d}/text.pt", "--features", "{d}/f.npy"), 1,
        ("--checkpoint", "text.pt", "not a PyTorch checkpoint", "text file")),
    Row("checkpoint-empty", "infer", _inf("--checkpoint", "{d}/empty.pt", "--features", "{d}/f.npy"), 1,
        ("--checkpoint", "empty.pt", "empty file")),
    Row("checkpoint-npy", "infer", _inf("--checkpoint", "{d}/f.npy", "--features", "{d}/f.npy"), 1,
        ("--checkpoint", "not a PyTorch checkpoint", "NumPy .npy file")),
    Row("ours-set-hidden", "infer", _inf("--checkpoint", "{d}/ours.pt", "--features", "{d}/f.npy",
                                         "--set", "model.hidden=16"), 1,
        ("--checkpoint", "ours.pt", "sal_ext.train checkpoint", "trained with model.hidden=8", "model.hidden=16")),
    Row("ours-set-classes-and-width", "infer", _inf("--checkpoint", "{d}/ours.pt", "--features", "{d}/f.npy",
                                                    "--preset", "thumos14", "--set", "num_classes=5",
                                                    "--set", "feature_dim=32"), 1,
        ("trained with feature_dim=64, num_classes=20", "feature_dim=32, num_classes=5")),
    Row("reference-wrong-preset", "infer", _inf("--checkpoint", "{d}/ref_synthetic.pt", "--features", "{d}/f.npy"), 1,
        ("--checkpoint", "ref_synthetic.pt", "--preset thumos14 (the default)", "encoder.0.weight",
         "it fits --preset synthetic")),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row, d, capsys):
    if row.kind == "api":
        with pytest.raises(row.expect) as e:
            row.call()
        msg = str(e.value)
    elif row.kind == "evaluate":
        with pytest.raises(SystemExit) as e:
            evaluate.main(row.call(d))
        assert e.value.code == row.expect
        msg = capsys.readouterr().err.strip()
        assert msg.startswith("sal_ext.evaluate: error: "), msg
    else:
        with pytest.raises(SystemExit) as e:
            infer.main(row.call(d))
        msg = e.value.code  # a message: printed on stderr, exit status 1
        assert row.expect == 1 and isinstance(msg, str), msg
        assert msg.startswith("python -m sal_ext.infer: error: "), msg
    assert "\n" not in msg and "Traceback" not in msg, msg
    for frag in row.fragments:
        assert frag in msg, (frag, msg)


def test_ids_unique():
    assert len({r.id for r in ROWS}) == len(ROWS)


def test_the_same_inputs_in_range_are_accepted(d, tmp_path):
    # the boundaries of each refused range work (so the rows above test the check, not a crash)
    for thr in (0.0, 1.0):
        ops.nms_1d(SEG, SC, iou_threshold=thr, method="sal", sigma=1e-3)
    for w in (0.0, 1.0, torch.tensor(0.25), np.float32(0.5)):
        torch.testing.assert_close(ops.segment_mixup(X, 1, w), float(w) * X + (1 - float(w)) * X.roll(1, 0))
    assert evaluate.detection_map(GT, PRED, tiou_thresholds=[0.3, 0.5])["mAP"] == [1.0, 1.0]
    assert evaluate.parse_tiou(" 0.3, 0.5").tolist() == [0.3, 0.5]
    assert evaluate.detection_map(GT, PRED, protocol="wtalc", ambiguous=[("vid", 4.0, 4.0)])["mAP"] == [1.0] * 9
    out = str(tmp_path / "r.json")
    assert infer.main(["--checkpoint", os.path.join(d, "ours.pt"), "--features", os.path.join(d, "f.npy"),
                       "--out", out]) == 0
    assert "vid" not in json.loads(open(out).read())["results"]  # named after the file: "f"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_infer_out_honours_the_umask(d, tmp_path, umask, capsys):
    # a new file: 0o666 less the umask, as open() gives (mkstemp's 0o600 before)
    out = str(tmp_path / "r.json")
    argv = ["--checkpoint", os.path.join(d, "ours.pt"), "--features", os.path.join(d, "f.npy"), "--out", out]
    old = os.umask(umask)
    try:
        assert infer.main(argv) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask
    # an existing file keeps its permissions, as open(path, "w") keeps them
    os.chmod(out, 0o640)
    assert infer.main(argv) == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640


def test_one_line_on_a_real_stderr(d):
    # the message as a user sees it: the process's stderr, exit status 1, no traceback
    r = subprocess.run([sys.executable, "-m", "sal_ext.infer", "--checkpoint", os.path.join(d, "ours.pt"),
                        "--features", os.path.join(d, "text.npy")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a NumPy .npy file" in lines[0], r.stderr
