"""Tests of sal_ext.data: sampling math, datasets, checker, command line, synthetic set."""
import json
import os
import shutil
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
import torch

from sal_ext.data import (
    THUMOS14_CLASSES,
    ActivityNetFeatures,
    Thumos14Features,
    WTALCFeatures,
    build_dataset,
    check_dataset,
    ensure_synthetic,
    load_ground_truth,
    random_perturb_indices,
    uniform_indices,
    write_synthetic_thumos,
)
from sal_ext.data.__main__ import main as cli_main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------------------------
# Sampling: a numpy re-statement of the reference's random_perturb / uniform_sampling
# ----------------------------------------------------------------------------------------------


def ref_uniform(length, num_segments):
    if num_segments == length:
        return np.arange(num_segments).astype(int)
    samples = np.arange(num_segments) * length / num_segments
    return np.floor(samples).astype(int)


def ref_random(length, num_segments, choice):
    """The reference's loop, with np.random.choice replaced by `choice(range)`."""
    if num_segments == length:
        return np.arange(num_segments).astype(int)
    samples = np.arange(num_segments) * length / num_segments
    for i in range(num_segments):
        if i < num_segments - 1:
            if int(samples[i]) != int(samples[i + 1]):
                samples[i] = choice(range(int(samples[i]), int(samples[i + 1]) + 1))
            else:
                samples[i] = int(samples[i])
        else:
            if int(samples[i]) < length - 1:
                samples[i] = choice(range(int(samples[i]), length))
            else:
                samples[i] = int(samples[i])
    return samples.astype(int)


def ref_random_support(length, num_segments):
    """Per segment, the (lowest, highest) index the reference can pick."""
    lo = ref_random(length, num_segments, lambda r: r.start)
    hi = ref_random(length, num_segments, lambda r: r.stop - 1)
    return lo, hi


SIZES = [(1, 1), (1, 7), (3, 750), (5, 5), (7, 5), (50, 750), (749, 750), (750, 750), (751, 750),
         (1000, 750), (2000, 750), (4321, 750), (12, 50), (300, 50), (100, 1)]


@pytest.mark.parametrize("T,n", SIZES)
def test_uniform_matches_reference(T, n):
    got = uniform_indices(T, n)
    assert got.shape == (n,) and got.dtype == np.int64
    np.testing.assert_array_equal(got, ref_uniform(T, n))
    assert got.min() >= 0 and got.max() < T


@pytest.mark.parametrize("T,n", SIZES)
def test_random_perturb_support_matches_reference(T, n):
    lo, hi = ref_random_support(T, n)
    rng = np.random.default_rng(123)
    draws = np.stack([random_perturb_indices(T, n, rng) for _ in range(200)])
    assert draws.shape == (200, n) and draws.dtype == np.int64
    assert (draws >= lo).all() and (draws <= hi).all()
    # where the reference draws, the whole range is reachable (both ends seen in 200 draws)
    width = hi - lo
    small = (width > 0) & (width <= 3)
    if small.any():
        assert (draws.min(0)[small] == lo[small]).all() and (draws.max(0)[small] == hi[small]).all()
    # the reference itself (global numpy state) stays inside the same support
    np.random.seed(0)
    ref = ref_random(T, n, lambda r: np.random.choice(r))
    assert (ref >= lo).all() and (ref <= hi).all()


def test_random_perturb_special_cases():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(random_perturb_indices(750, 750, rng), np.arange(750))
    np.testing.assert_array_equal(random_perturb_indices(1, 9, rng), np.zeros(9, np.int64))
    short = random_perturb_indices(3, 750, rng)  # short video: rows repeat, non-decreasing bins
    assert set(np.unique(short)) <= {0, 1, 2} and len(short) == 750
    a = random_perturb_indices(2000, 750, np.random.default_rng(5))
    b = random_perturb_indices(2000, 750, np.random.default_rng(5))
    c = random_perturb_indices(2000, 750, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    # uniformity of one draw: bin [0, 2] for T=3*n... every value of a 3-wide range appears ~1/3
    draws = np.stack([random_perturb_indices(40, 20, np.random.default_rng(s)) for s in range(600)])
    counts = np.bincount(draws[:, 0], minlength=3)  # segment 0 draws from {0, 1, 2}
    assert counts[:3].min() > 150


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_sampling_bad_sizes(bad):
    with pytest.raises((TypeError, ValueError)):
        uniform_indices(bad, 10)
    with pytest.raises((TypeError, ValueError)):
        random_perturb_indices(10, bad, np.random.default_rng(0))
    with pytest.raises(TypeError):
        random_perturb_indices(10, 5, np.random.RandomState(0))


# ----------------------------------------------------------------------------------------------
# Synthetic set through Thumos14Features
# ----------------------------------------------------------------------------------------------

TINY = dict(seed=3, num_train=6, num_test=4, min_len=20, max_len=60)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_synthetic_thumos(str(tmp_path_factory.mktemp("synth") / "thumos"), **TINY)


def _rows(root, split, vid):
    base = os.path.join(root, "features", split)
    rgb = np.load(os.path.join(base, "rgb", vid + ".npy"))
    flow = np.load(os.path.join(base, "flow", vid + ".npy"))
    return np.concatenate([rgb, flow], axis=1)


def test_synthetic_layout(tiny):
    gt = load_ground_truth(os.path.join(tiny, "gt.json"))
    train = Path(tiny, "split_train.txt").read_text().split()
    test = Path(tiny, "split_test.txt").read_text().split()
    assert len(train) == 6 and len(test) == 4
    for split, vids, subset in (("train", train, "validation"), ("test", test, "test")):
        for vid in vids:
            x = _rows(tiny, split, vid)
            entry = gt["database"][vid]
            assert entry["subset"] == subset
            assert x.dtype == np.float32 and x.shape[1] == 2048 and 20 <= x.shape[0] <= 60
            assert (x >= 0).all() and (x == 0).mean() > 0.1
            assert entry["duration"] == pytest.approx(x.shape[0] * 16 / 25, abs=1e-3)
            labels = {a["label"] for a in entry["annotations"]}
            assert 1 <= len(labels) <= 2 and labels <= set(THUMOS14_CLASSES)
            for a in entry["annotations"]:
                s, e = a["segment"]
                assert 0 <= s < e <= entry["duration"]
    assert check_dataset("thumos14", tiny, progress=False) == []


def test_synthetic_deterministic(tmp_path):
    kw = dict(seed=11, num_train=2, num_test=1, min_len=20, max_len=30, feature_dim=64)
    a = write_synthetic_thumos(str(tmp_path / "a"), **kw)
    b = write_synthetic_thumos(str(tmp_path / "b"), **kw)
    c = write_synthetic_thumos(str(tmp_path / "c"), **{**kw, "seed": 12})
    files = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert len(files) == 2 * 3 + 4
    for f in files:
        assert Path(a, f).read_bytes() == Path(b, f).read_bytes(), f
    vid = "video_validation_0000001"
    x, y = _rows(a, "train", vid), _rows(c, "train", vid)
    assert x.shape[1] == 64 and (x.shape != y.shape or not np.array_equal(x, y))
    with pytest.raises(ValueError, match="new or empty"):
        write_synthetic_thumos(a, **kw)


def test_thumos_dataset_items(tiny):
    gt = load_ground_truth(os.path.join(tiny, "gt.json"))["database"]
    for split, subset in (("train", "validation"), ("test", "test")):
        ds = Thumos14Features(tiny, split, num_segments=50, sampling="uniform", progress=False)
        assert len(ds) == (6 if split == "train" else 4)
        assert ds.num_classes == 20 and ds.class_names == THUMOS14_CLASSES and ds.feature_dim == 2048
        assert ds.gt_subset == subset and set(ds.gt["database"]) == set(ds.video_ids)
        for i, vid in enumerate(ds.video_ids):
            item = ds[i]
            full = _rows(tiny, split, vid)
            assert item["video_id"] == vid and item["t_orig"] == full.shape[0]
            assert item["features"].dtype == torch.float32 and item["features"].shape == (50, 2048)
            np.testing.assert_array_equal(item["features"].numpy(), full[uniform_indices(full.shape[0], 50)])
            want = np.zeros(20, np.float32)
            for a in gt[vid]["annotations"]:
                want[THUMOS14_CLASSES.index(a["label"])] = 1
            np.testing.assert_array_equal(item["label"].numpy(), want)
            assert ds.gt["database"][vid]["annotations"] == gt[vid]["annotations"]
            again = ds[i]
            assert torch.equal(again["features"], item["features"])
    lazy = Thumos14Features(tiny, "test", num_segments=50, sampling="uniform", cache=False)
    for i in range(len(lazy)):
        assert torch.equal(lazy[i]["features"], ds[i]["features"])
    full = Thumos14Features(tiny, "test", num_segments=None, sampling="uniform")
    assert full[0]["features"].shape[0] == full[0]["t_orig"]


def test_random_sampling_reproducible(tiny):
    def make(seed):
        return build_dataset("thumos14", tiny, "train", num_segments=100, sampling="random", seed=seed)

    a, b, c = make(0), make(0), make(1)
    items = lambda ds: [ds[i]["features"] for i in range(len(ds))]  # noqa: E731
    first = items(a)
    assert all(torch.equal(x, y) for x, y in zip(first, items(b)))
    assert all(torch.equal(x, y) for x, y in zip(first, items(a)))  # same epoch, same draws
    assert any(not torch.equal(x, y) for x, y in zip(first, items(c)))
    a.set_epoch(1)
    second = items(a)
    assert any(not torch.equal(x, y) for x, y in zip(first, second))
    b.set_epoch(1)
    assert all(torch.equal(x, y) for x, y in zip(second, items(b)))
    for i in range(len(a)):  # indices stay inside the reference's support
        lo, hi = ref_random_support(int(a.t_orig[i]), 100)
        idx = a.sample_indices(i)
        assert (idx >= lo).all() and (idx <= hi).all()
        np.testing.assert_array_equal(a[i]["features"].numpy(), _rows(tiny, "train", a.video_ids[i])[idx])
    # DataLoader workers (persistent too) give the same batches as the main process, epoch by epoch
    loader = torch.utils.data.DataLoader(a, batch_size=3, shuffle=False, num_workers=2, persistent_workers=True)
    batches = list(loader)
    assert torch.equal(torch.cat([bt["features"] for bt in batches]), torch.stack(second))
    assert batches[0]["label"].shape == (3, 20) and len(batches[0]["video_id"]) == 3
    assert batches[0]["t_orig"].tolist() == a.t_orig[:3].tolist()
    a.set_epoch(0)
    assert torch.equal(torch.cat([bt["features"] for bt in loader]), torch.stack(first))


def test_dataset_bad_arguments(tiny):
    with pytest.raises(ValueError, match="sampling"):
        Thumos14Features(tiny, "train", num_segments=10, sampling="dense")
    with pytest.raises(ValueError, match="num_segments"):
        Thumos14Features(tiny, "train", num_segments=0, sampling="uniform")
    with pytest.raises(ValueError, match="split"):
        Thumos14Features(tiny, "validation", num_segments=10, sampling="uniform")
    with pytest.raises(ValueError, match="dataset"):
        build_dataset("kinetics", tiny, "train", num_segments=10, sampling="uniform")
    ds = Thumos14Features(tiny, "train", num_segments=10, sampling="uniform")
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(ValueError):
        ds.set_epoch(-1)


def test_ensure_synthetic_cache(tmp_path, monkeypatch):
    kw = dict(seed=1, num_train=2, num_test=1, min_len=20, max_len=25, feature_dim=32)
    a = ensure_synthetic(str(tmp_path / "cache"), **kw)
    assert os.path.basename(a).startswith("synthetic-v1-") and os.path.dirname(a) == str(tmp_path / "cache")
    stamp = os.path.getmtime(os.path.join(a, "gt.json"))
    assert ensure_synthetic(str(tmp_path / "cache"), **kw) == a
    assert os.path.getmtime(os.path.join(a, "gt.json")) == stamp
    assert [f for f in os.listdir(tmp_path / "cache") if f.startswith(".tmp")] == []
    other = ensure_synthetic(str(tmp_path / "cache"), **{**kw, "seed": 2})
    assert other != a
    monkeypatch.setenv("SAL_EXT_CACHE", str(tmp_path / "env"))
    b = ensure_synthetic(**kw)
    assert os.path.dirname(b) == str(tmp_path / "env") and os.path.basename(b) == os.path.basename(a)
    with pytest.raises(TypeError):
        ensure_synthetic(str(tmp_path / "cache"), colour="red")


def test_synthetic_is_learnable(tmp_path):
    """Class from mean features (nearest class mean); actions from flow (a direction from train)."""
    root = write_synthetic_thumos(str(tmp_path / "s"), seed=0, num_train=60, num_test=20, min_len=60,
                                  max_len=120)
    tr = Thumos14Features(root, "train", num_segments=None, sampling="uniform")
    te = Thumos14Features(root, "test", num_segments=None, sampling="uniform")

    def mean_feats(ds):
        return np.stack([ds[i]["features"].numpy().mean(0) for i in range(len(ds))])

    xtr, xte = mean_feats(tr), mean_feats(te)
    mu = xtr.mean(0)
    centroids = np.stack([(xtr[tr.labels[:, c] > 0] - mu).mean(0) for c in range(20)])
    pred = ((xte - mu) @ centroids.T).argmax(1)
    acc = te.labels[np.arange(len(te)), pred].mean()
    assert acc >= 0.8, acc

    def snippets(ds):
        xs, ys = [], []
        for i, vid in enumerate(ds.video_ids):
            f = ds[i]["features"].numpy()[:, 1024:]
            y = np.zeros(len(f), bool)
            for a in ds.gt["database"][vid]["annotations"]:
                s, e = a["segment"]
                y[int(np.ceil(s * 25 / 16)):int(np.floor(e * 25 / 16))] = True
            xs.append(f)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    ftr, ytr = snippets(tr)
    fte, yte = snippets(te)
    direction = ftr[ytr].mean(0) - ftr[~ytr].mean(0)
    score = fte @ direction
    # AUC of action vs background snippets
    order = np.argsort(score)
    ranks = np.empty(len(score))
    ranks[order] = np.arange(len(score))
    auc = (ranks[yte].mean() - (yte.sum() - 1) / 2) / (~yte).sum()
    assert auc > 0.85, auc


# ----------------------------------------------------------------------------------------------
# The checker finds planted problems
# ----------------------------------------------------------------------------------------------


@pytest.fixture()
def broken(tiny, tmp_path):
    root = str(tmp_path / "broken")
    shutil.copytree(tiny, root)
    train = Path(root, "split_train.txt").read_text().split()
    test = Path(root, "split_test.txt").read_text().split()
    ftr = os.path.join(root, "features", "train")
    fte = os.path.join(root, "features", "test")
    os.remove(os.path.join(ftr, "flow", train[0] + ".npy"))  # missing flow file
    x = np.load(os.path.join(ftr, "rgb", train[1] + ".npy"))
    np.save(os.path.join(ftr, "rgb", train[1] + ".npy"), x[:-1])  # row mismatch
    x = np.load(os.path.join(ftr, "flow", train[2] + ".npy"))
    x[3, 7] = np.nan
    np.save(os.path.join(ftr, "flow", train[2] + ".npy"), x)  # NaN
    x = np.load(os.path.join(fte, "rgb", test[0] + ".npy"))
    np.save(os.path.join(fte, "rgb", test[0] + ".npy"), x[:, :1000])  # wrong width
    with open(os.path.join(fte, "flow", test[2] + ".npy"), "wb") as f:
        f.write(b"not a numpy file")  # unreadable
    gt = json.loads(Path(root, "gt.json").read_text())
    db = gt["database"]
    db[train[3]]["annotations"][0]["label"] = "Skateboarding"  # unknown label
    ann = db[test[1]]["annotations"][0]
    ann["segment"] = [ann["segment"][0], db[test[1]]["duration"] + 5.0]  # past the end
    db[train[4]]["annotations"][0]["segment"] = [-2.0, 1.0]  # starts before 0
    a = db[train[5]]["annotations"][0]
    a["segment"] = [a["segment"][1], a["segment"][0]]  # ends before it starts
    del db[test[3]]  # not in the ground truth ...
    os.remove(os.path.join(fte, "rgb", test[3] + ".npy"))  # ... and its features are still checked
    Path(root, "gt.json").write_text(json.dumps(gt))
    return root, train, test


def test_check_finds_each_problem(broken):
    root, train, test = broken
    problems = check_dataset("thumos14", root, progress=False)
    expect = [
        (train[0], "missing flow features", os.path.join("train", "flow", train[0] + ".npy")),
        (train[1], "rows", train[1] + ".npy"),
        (train[2], "NaN", os.path.join("train", "flow", train[2] + ".npy")),
        (test[0], "width 1000, expected 1024", os.path.join("test", "rgb", test[0] + ".npy")),
        (test[2], "unreadable", os.path.join("test", "flow", test[2] + ".npy")),
        (train[3], "'Skateboarding' is not one of the 20 classes", "gt.json"),
        (test[1], "ends past the video", "gt.json"),
        (train[4], "starts before 0", "gt.json"),
        (train[5], "ends before it starts", "gt.json"),
        (test[3], "not in the ground truth", "gt.json"),
        (test[3], "missing rgb features", os.path.join("test", "rgb", test[3] + ".npy")),
    ]
    for vid, what, fname in expect:
        hits = [p for p in problems if f"video {vid}:" in p and what in p and fname in p]
        assert len(hits) == 1, (vid, what, problems)
    assert len(problems) == len(expect), problems
    with pytest.raises(ValueError) as exc:
        Thumos14Features(root, "train", num_segments=10, sampling="uniform")
    msg = str(exc.value)
    assert "6 problem(s)" in msg and train[3] in msg and "python -m sal_ext.data check" in msg
    with pytest.raises(ValueError, match=r"5 problem\(s\)"):
        Thumos14Features(root, "test", num_segments=10, sampling="uniform", cache=False)


def test_check_missing_files(tmp_path):
    problems = check_dataset("thumos14", str(tmp_path), progress=False)
    assert any("split_train.txt" in p and "missing" in p for p in problems)
    assert any("gt.json" in p and "missing" in p for p in problems)
    (tmp_path / "gt.json").write_text("{not json")
    (tmp_path / "split_train.txt").write_text("v1\nv1\n")
    problems = check_dataset("thumos14", str(tmp_path), splits=["train"], progress=False)
    assert any("unreadable" in p and "gt.json" in p for p in problems)
    assert any("video v1: listed more than once" in p for p in problems)
    with pytest.raises(ValueError, match="unreadable"):
        load_ground_truth(str(tmp_path / "gt.json"))


def test_lazy_dataset_reports_bad_rows(tiny, tmp_path):
    root = str(tmp_path / "lazy")
    shutil.copytree(tiny, root)
    vid = Path(root, "split_test.txt").read_text().split()[0]
    path = os.path.join(root, "features", "test", "rgb", vid + ".npy")
    x = np.load(path)
    x[:] = np.inf
    np.save(path, x)
    ds = Thumos14Features(root, "test", num_segments=10, sampling="uniform", cache=False)  # headers are fine
    with pytest.raises(ValueError, match=f"video {vid}: rgb features contain"):
        ds[0]


def test_cli(tiny, broken, tmp_path, capsys):
    assert cli_main(["check", "--dataset", "thumos14", "--data-root", tiny, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "train: 6 videos" in out and "test: 4 videos" in out and "classes: 20" in out
    root, train, _ = broken
    assert cli_main(["check", "--dataset", "thumos14", "--data-root", root, "--no-progress"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 11 and any(train[0] in ln for ln in lines)
    assert cli_main(["check", "--dataset", "thumos14", "--data-root", root, "--splits", "test"]) == 1
    assert len(capsys.readouterr().out.strip().splitlines()) == 5
    out_dir = str(tmp_path / "cli_synth")
    assert cli_main(["synth", "--out", out_dir, "--seed", "2", "--num-train", "2", "--num-test", "1",
                     "--min-len", "20", "--max-len", "30", "--feature-dim", "32"]) == 0
    assert check_dataset("thumos14", out_dir, feature_dim=32, progress=False) == []
    # the real command line: exit status as a process
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "sal_ext.data", "check", "--dataset", "thumos14",
                           "--data-root", root, "--splits", "test"], capture_output=True, text=True, env=env,
                          cwd=REPO)
    assert proc.returncode == 1 and len(proc.stdout.strip().splitlines()) == 5, proc.stderr

    # a missing class-name file or an unwritable --out: one line and status 2, no traceback
    missing = os.path.join(tiny, "missing.txt")
    capsys.readouterr()
    assert cli_main(["check", "--dataset", "thumos14", "--data-root", tiny, "--class-names", missing]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: No such file or directory"
    assert cli_main(["synth", "--out", os.path.join(tiny, "gt.json", "x"), "--num-train", "1", "--num-test", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    # a --data-root that is not there (or a file): one line naming it, not every file "missing"
    for root, what in ((str(tmp_path / "nosuch"), "no such folder"), (os.path.join(tiny, "gt.json"), "is not a folder")):
        assert cli_main(["check", "--dataset", "thumos14", "--data-root", root]) == 2
        said = capsys.readouterr()
        assert said.err.strip() == f"error: --data-root {root}: {what}" and said.out == "", said


# ----------------------------------------------------------------------------------------------
# W-TALC and ActivityNet layouts
# ----------------------------------------------------------------------------------------------


def _save_obj(path, items):
    arr = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        arr[i] = x
    np.save(path, arr, allow_pickle=True)


def make_wtalc(root, *, bad=False):
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "Thumos14reduced-Annotations"))
    ann = os.path.join(root, "Thumos14reduced-Annotations")
    classes = [b"BaseballPitch", b"Diving", b"LongJump"]
    vids = [b"video_validation_1", b"video_validation_2", b"video_test_1", b"video_test_2", b"video_test_3"]
    subset = [b"validation", b"validation", b"test", b"test", b"test"]
    seg_labels = [["Diving", "Diving"], ["LongJump"], ["BaseballPitch", "LongJump"], [], ["Diving"]]
    segments = [[[1.0, 3.5], [5.0, 7.0]], [[0.0, 2.0]], [[0.5, 1.5], [2.0, 4.0]], [], [[3.0, 6.0]]]
    labels_all = [["Diving"], ["LongJump"], ["BaseballPitch", "LongJump"], ["Diving"], ["Diving"]]
    lengths = [20, 15, 12, 9, 14]
    duration = np.array([T * 16 / 25 for T in lengths])
    if bad:
        seg_labels[1] = ["Skateboarding"]
        segments[4] = [[3.0, 60.0]]
    np.save(os.path.join(ann, "videoname.npy"), np.array(vids))
    np.save(os.path.join(ann, "subset.npy"), np.array(subset))
    np.save(os.path.join(ann, "classlist.npy"), np.array(classes))
    np.save(os.path.join(ann, "duration.npy"), duration)
    _save_obj(os.path.join(ann, "labels.npy"), seg_labels)
    _save_obj(os.path.join(ann, "segments.npy"), [np.array(s) if s else [] for s in segments])
    _save_obj(os.path.join(ann, "labels_all.npy"), labels_all)
    feats = [rng.random((T, 2048)).astype(np.float32) for T in lengths]
    _save_obj(os.path.join(root, "Thumos14reduced-I3D-JOINTFeatures.npy"), feats)
    return feats, labels_all, segments


def test_wtalc_layout(tmp_path):
    root = str(tmp_path / "wtalc")
    feats, labels_all, segments = make_wtalc(root)
    tr = WTALCFeatures(root, "train", num_segments=8, sampling="uniform")
    te = build_dataset("wtalc", root, "test", num_segments=None, sampling="uniform")
    assert tr.class_names == ("BaseballPitch", "Diving", "LongJump") and tr.num_classes == 3
    assert tr.video_ids == ["video_validation_1", "video_validation_2"] and tr.gt_subset == "validation"
    assert te.video_ids == ["video_test_1", "video_test_2", "video_test_3"] and te.gt_subset == "test"
    np.testing.assert_array_equal(tr[0]["features"].numpy(), feats[0][uniform_indices(20, 8)])
    np.testing.assert_array_equal(tr[0]["label"].numpy(), [0, 1, 0])
    np.testing.assert_array_equal(te[0]["label"].numpy(), [1, 0, 1])
    np.testing.assert_array_equal(te[1]["label"].numpy(), [0, 1, 0])  # from labels_all only
    assert te[2]["t_orig"] == 14 and torch.equal(te[2]["features"], torch.from_numpy(feats[4]))
    entry = te.gt["database"]["video_test_1"]
    assert entry["subset"] == "test" and entry["duration"] == pytest.approx(12 * 0.64)
    assert entry["annotations"] == [{"label": "BaseballPitch", "segment": [0.5, 1.5]},
                                    {"label": "LongJump", "segment": [2.0, 4.0]}]
    assert te.gt["database"]["video_test_2"]["annotations"] == []
    gt = load_ground_truth(os.path.join(root, "Thumos14reduced-Annotations"))
    assert len(gt["database"]) == 5 and gt["database"]["video_validation_1"]["subset"] == "validation"
    assert check_dataset("wtalc", root, progress=False) == []


def test_wtalc_problems(tmp_path):
    root = str(tmp_path / "wtalc_bad")
    make_wtalc(root, bad=True)
    problems = check_dataset("wtalc", root, progress=False)
    assert len(problems) == 2, problems
    assert any("video video_validation_2:" in p and "'Skateboarding'" in p and "segments.npy" in p for p in problems)
    assert any("video video_test_3:" in p and "ends past the video" in p for p in problems)
    with pytest.raises(ValueError, match="Skateboarding"):
        WTALCFeatures(root, "train", num_segments=8, sampling="uniform")
    assert check_dataset("wtalc", str(tmp_path), progress=False)[0].startswith("no '<name>-I3D-JOINTFeatures.npy'")
    with open(os.path.join(root, "Thumos14reduced-I3D-JOINTFeatures.npy"), "wb") as f:
        f.write(b"garbage")
    problems = check_dataset("wtalc", root, splits=["test"], progress=False)
    assert len(problems) == 2 and sum("feature file is unreadable" in p for p in problems) == 1, problems


def test_activitynet_layout(tmp_path):
    root = tmp_path / "anet"
    rng = np.random.default_rng(1)
    db = {}
    feats = {}
    for split, folder, subset, vids in (("train", "train", "training", ["v_a", "v_b", "v_c"]),
                                        ("test", "validation", "validation", ["v_d", "v_e"])):
        (root / folder).mkdir(parents=True)
        (root / f"split_{split}.txt").write_text("\n".join(vids) + "\n")
        for k, vid in enumerate(vids):
            T = 30 + 7 * k
            feats[vid] = rng.random((T, 2048)).astype(np.float32)
            np.save(root / folder / f"{vid}.npy", feats[vid])
            label = ["Zumba", "Archery", "BMX"][k % 3]
            db[vid] = {"subset": subset, "duration": T * 0.64,
                       "annotations": [{"label": label, "segment": [1.0, 5.0]}]}
    db["v_unused"] = {"subset": "validation", "duration": 10.0,
                      "annotations": [{"label": "Ballet", "segment": [0.0, 1.0]}]}
    (root / "gt.json").write_text(json.dumps({"database": db}))
    tr = ActivityNetFeatures(str(root), "train", num_segments=50, sampling="random", seed=4)
    te = build_dataset("activitynet", str(root), "val", num_segments=50, sampling="uniform")
    assert tr.class_names == ("Archery", "BMX", "Ballet", "Zumba")  # sorted over the whole gt
    assert tr.gt_subset == "training" and te.gt_subset == "validation"
    assert te.video_ids == ["v_d", "v_e"] and set(te.gt["database"]) == {"v_d", "v_e"}
    np.testing.assert_array_equal(te[1]["features"].numpy(), feats["v_e"][uniform_indices(37, 50)])
    np.testing.assert_array_equal(te[1]["label"].numpy(), [1, 0, 0, 0])
    np.testing.assert_array_equal(tr[0]["label"].numpy(), [0, 0, 0, 1])
    idx = tr.sample_indices(2)
    np.testing.assert_array_equal(tr[2]["features"].numpy(), feats["v_c"][idx])
    names = ["Archery", "BMX", "Zumba", "Extra"]
    given = ActivityNetFeatures(str(root), "train", num_segments=5, sampling="uniform", class_names=names)
    assert given.num_classes == 4 and given[0]["label"].tolist() == [0, 0, 1, 0]
    assert check_dataset("activitynet", str(root), progress=False) == []
    np.save(root / "validation" / "v_d.npy", feats["v_d"][:, :1024])
    problems = check_dataset("activitynet", str(root), progress=False)
    assert len(problems) == 1 and "video v_d:" in problems[0] and "width 1024, expected 2048" in problems[0]
