"""sal_ext.infer: every flag combination works or is refused in one line, outputs are checked
writable before any work, and the --plot figure (title, ground truth, class names once)."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sal_ext import infer, train
from tiny_run import TINY

@pytest.fixture(scope="module")
def setup(tiny_root, tmp_path_factory):
    root = tiny_root
    run = str(tmp_path_factory.mktemp("run"))
    assert train.main(["--data-root", root, "--out", run, "--max-steps", "3"] + TINY) == 0
    vid = Path(root, "split_test.txt").read_text().split()[0]
    d = tmp_path_factory.mktemp("feats")
    rgb = os.path.join(root, "features", "test", "rgb", vid + ".npy")
    flow = os.path.join(root, "features", "test", "flow", vid + ".npy")
    both = str(d / (vid + ".npy"))
    np.save(both, np.concatenate([np.load(rgb), np.load(flow)], 1))
    return {"root": root, "ckpt": os.path.join(run, "best.pt"), "vid": vid, "rgb": rgb, "flow": flow,
            "both": both, "gt": os.path.join(root, "gt.json")}


def _refused(argv, *fragments):
    with pytest.raises(SystemExit) as e:
        infer.main(argv)
    msg = e.value.code
    assert isinstance(msg, str) and "\n" not in msg and msg.startswith("python -m sal_ext.infer: error:"), msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def _forbid_model(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the checkpoint was loaded before the arguments were checked")
    monkeypatch.setattr(infer, "load_checkpoint", boom)


def test_features_out_writes_results(setup, tmp_path, capsys):
    res = str(tmp_path / "r.json")
    assert infer.main(["--checkpoint", setup["ckpt"], "--features", setup["both"], "--out", res]) == 0
    printed = capsys.readouterr().out
    data = json.loads(Path(res).read_text())
    assert set(data) == {"version", "results", "external_data"}
    assert list(data["results"]) == [setup["vid"]]            # named after the file
    n = len(data["results"][setup["vid"]])
    assert f"{n} detections written to {res}" in printed
    # the same video given as --rgb/--flow halves and a chosen name gives the same detections
    res2 = str(tmp_path / "r2.json")
    assert infer.main(["--checkpoint", setup["ckpt"], "--rgb", setup["rgb"], "--flow", setup["flow"],
                       "--video-id", "clip", "--out", res2]) == 0
    assert json.loads(Path(res2).read_text())["results"]["clip"] == data["results"][setup["vid"]]


def test_flag_combinations_refused(setup, tmp_path, monkeypatch):
    _forbid_model(monkeypatch)
    ck, both = setup["ckpt"], setup["both"]
    _refused(["--checkpoint", ck, "--features", both, "--rgb", setup["rgb"], "--flow", setup["flow"]],
             "--features cannot be combined with --rgb/--flow")
    _refused(["--checkpoint", ck, "--features", both, "--flow", setup["flow"]], "--features cannot")
    _refused(["--checkpoint", ck, "--rgb", setup["rgb"]], "--rgb needs --flow")
    _refused(["--checkpoint", ck, "--flow", setup["flow"]], "--flow needs --rgb")
    _refused(["--checkpoint", ck], "give --features")
    _refused(["--checkpoint", ck, "--features", str(tmp_path / "none.npy")], "--features", "no such file")
    _refused(["--checkpoint", ck, "--features", both, "--gt", setup["gt"]], "--gt is drawn by --plot")
    for extra in (["--features", both], ["--plot", "x.png"], ["--gt", setup["gt"]], ["--top", "3"],
                  ["--video-id", "v"], ["--rgb", setup["rgb"]]):
        _refused(["--checkpoint", ck, "--split-root", setup["root"]] + extra, "with --split-root")
    _refused(["--checkpoint", ck, "--split-root", str(tmp_path / "nope")], "--split-root", "no such folder")


def _readonly_dir(tmp_path):
    """A folder this process cannot create files in (root ignores chmod: /proc then)."""
    if os.geteuid() == 0:
        return "/proc"
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    return str(d)


def test_outputs_checked_before_work(setup, tmp_path, monkeypatch):
    _forbid_model(monkeypatch)
    ck, both = setup["ckpt"], setup["both"]
    ro = _readonly_dir(tmp_path)
    for flag in ("--out", "--plot"):
        name = "r.json" if flag == "--out" else "p.png"
        _refused(["--checkpoint", ck, "--features", both, flag, str(tmp_path / "missing" / name)],
                 flag, "does not exist")
        _refused(["--checkpoint", ck, "--features", both, flag, os.path.join(ro, name)], flag, "cannot write")
        _refused(["--checkpoint", ck, "--features", both, flag, str(tmp_path)], flag, "is a folder")
    # a whole split: refused before the split is computed
    _refused(["--checkpoint", ck, "--split-root", setup["root"], "--out", os.path.join(ro, "r.json")],
             "--out", "cannot write")
    _refused(["--checkpoint", ck, "--split-root", setup["root"], "--out", str(tmp_path / "no" / "r.json")],
             "--out", "does not exist")


def test_split_out_is_checked_before_the_split_is_computed(setup, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the split was computed")
    monkeypatch.setattr(train, "evaluate_split", boom)
    _refused(["--checkpoint", setup["ckpt"], "--split-root", setup["root"], "--out",
              str(tmp_path / "missing" / "r.json")], "does not exist")


def test_plot_needs_matplotlib(setup, tmp_path, monkeypatch):
    _forbid_model(monkeypatch)
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib -> ImportError
    _refused(["--checkpoint", setup["ckpt"], "--features", setup["both"], "--plot", str(tmp_path / "p.png")],
             "matplotlib", "pip install 'sal_ext[plot]'")


def test_plot_file_type(setup, tmp_path, monkeypatch):
    _forbid_model(monkeypatch)
    _refused(["--checkpoint", setup["ckpt"], "--features", setup["both"], "--plot", str(tmp_path / "p.xyz")],
             "--plot", ".png")
    _refused(["--checkpoint", setup["ckpt"], "--features", setup["both"], "--plot", str(tmp_path / "p")],
             "--plot", ".png")


def test_checkpoint_holding_a_list(setup, tmp_path):
    path = str(tmp_path / "list.pt")
    torch.save([torch.zeros(2)], path)
    _refused(["--checkpoint", path, "--features", setup["both"]], "holds a list")


def test_feature_problems(setup, tmp_path):
    ck = setup["ckpt"]
    _refused(["--checkpoint", ck, "--features", setup["rgb"]], "32 columns", "expects 64",
             "--rgb R.npy --flow F.npy")
    bad = str(tmp_path / "nan.npy")
    x = np.load(setup["both"])
    x[3, 1] = np.nan
    np.save(bad, x)
    _refused(["--checkpoint", ck, "--features", bad], "NaN or Inf", "row 3")
    vec = str(tmp_path / "vec.npy")
    np.save(vec, np.zeros(64, np.float32))
    _refused(["--checkpoint", ck, "--features", vec], "[T, D]")
    short = str(tmp_path / "short.npy")
    np.save(short, np.zeros((10, 32), np.float32))
    _refused(["--checkpoint", ck, "--rgb", setup["rgb"], "--flow", short], "--rgb has", "--flow 10")


def test_gt_problems(setup, tmp_path, monkeypatch):
    _forbid_model(monkeypatch)
    png = str(tmp_path / "p.png")
    _refused(["--checkpoint", setup["ckpt"], "--features", setup["both"], "--plot", png, "--gt", setup["gt"],
              "--video-id", "nope"], "no video 'nope'", "--video-id")
    junk = tmp_path / "junk.json"
    junk.write_text("{")
    _refused(["--checkpoint", setup["ckpt"], "--features", setup["both"], "--plot", png, "--gt", str(junk)],
             "--gt")


def test_plot_title_gt_and_class_names_once(setup, tmp_path, capsys):
    import matplotlib
    svg = str(tmp_path / "p.svg")
    with matplotlib.rc_context({"svg.fonttype": "none"}):     # text stays text in the SVG
        assert infer.main(["--checkpoint", setup["ckpt"], "--features", setup["both"], "--plot", svg,
                           "--gt", setup["gt"], "--top", "30"]) == 0
    printed = capsys.readouterr().out
    text = Path(svg).read_text()
    assert f">{setup['vid']}<" in text                           # the title
    assert "ground truth" in text
    gt = json.loads(Path(setup["gt"]).read_text())["database"][setup["vid"]]["annotations"]
    shown = {line.split()[0] for line in printed.splitlines()[2:] if line and not line.startswith("figure")}
    for name in {a["label"] for a in gt} | shown:
        assert text.count(f">{name}<") == 1, name                # each class named once
    png = str(tmp_path / "p.png")
    assert infer.main(["--checkpoint", setup["ckpt"], "--rgb", setup["rgb"], "--flow", setup["flow"],
                       "--plot", png, "--gt", setup["gt"]]) == 0
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
