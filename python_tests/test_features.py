"""sal_ext.features: the I3D network (pytorch-i3d's names and numerics), decoding and 25 fps
resampling, RGB scaling, TV-L1 flow, the command (layout, bad files, resume, kill, determinism)
and the round trip features -> sal_ext.data check -> training -> sal_ext.infer --video.

The videos are tiny (64x48, 2 s) and the network runs on 16x16 crops (--resize 20 --crop 16)
so that the whole file stays fast on CPU; the default 224 crop's shapes are checked on the meta
device."""
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sal_ext.features import chunks, decode, flow
from sal_ext.features.__main__ import main as features_main
from sal_ext.features.i3d import I3D, load_i3d, same_padding

sys.path.insert(0, os.path.dirname(__file__))
from video_clips import (square_frame, write_audio_only, write_clip, write_garbage,  # noqa: E402
                         write_no_frames, write_truncated)

SMALL = ["--resize", "20", "--crop", "16", "--no-progress"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The networks on one thread, as the command runs them beside its flow worker on a small
    machine (two OpenMP threads on two busy cores wait on each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# pytorch-i3d's InceptionI3d state dict, written out by hand from its layer table
# ---------------------------------------------------------------------------------------------
MIXED = {  # name: (in, [b0, b1a, b1b, b2a, b2b, b3b])
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]), "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (480, [192, 96, 208, 16, 48, 64]), "Mixed_4c": (512, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (512, [128, 128, 256, 24, 64, 64]), "Mixed_4e": (512, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (528, [256, 160, 320, 32, 128, 128]), "Mixed_5b": (832, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (832, [384, 192, 384, 48, 128, 128]),
}


def reference_state_dict(in_channels: int, seed: int = 0, num_classes: int = 400):
    """Keys and shapes of pytorch-i3d's InceptionI3d(num_classes, in_channels=...), random values
    (He-scaled convolutions, BatchNorm statistics near the identity)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def unit(prefix, cin, cout, k):
        fan = cin * k[0] * k[1] * k[2]
        sd[f"{prefix}.conv3d.weight"] = torch.randn(cout, cin, *k, generator=g) * (2.0 / fan) ** 0.5
        sd[f"{prefix}.bn.weight"] = 1 + 0.1 * torch.randn(cout, generator=g)
        sd[f"{prefix}.bn.bias"] = 0.1 * torch.randn(cout, generator=g)
        sd[f"{prefix}.bn.running_mean"] = 0.1 * torch.randn(cout, generator=g)
        sd[f"{prefix}.bn.running_var"] = 0.5 + torch.rand(cout, generator=g)
        sd[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)

    unit("Conv3d_1a_7x7", in_channels, 64, (7, 7, 7))
    unit("Conv3d_2b_1x1", 64, 64, (1, 1, 1))
    unit("Conv3d_2c_3x3", 64, 192, (3, 3, 3))
    for name, (cin, w) in MIXED.items():
        unit(f"{name}.b0", cin, w[0], (1, 1, 1))
        unit(f"{name}.b1a", cin, w[1], (1, 1, 1))
        unit(f"{name}.b1b", w[1], w[2], (3, 3, 3))
        unit(f"{name}.b2a", cin, w[3], (1, 1, 1))
        unit(f"{name}.b2b", w[3], w[4], (3, 3, 3))
        unit(f"{name}.b3b", cin, w[5], (1, 1, 1))
    sd["logits.conv3d.weight"] = 0.01 * torch.randn(num_classes, 1024, 1, 1, 1, generator=g)
    sd["logits.conv3d.bias"] = torch.zeros(num_classes)
    return sd


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    paths = {}
    for m, c, seed in (("rgb", 3, 1), ("flow", 2, 2)):
        paths[m] = str(d / f"{m}_imagenet.pt")
        torch.save(reference_state_dict(c, seed), paths[m])
    return paths


def test_reference_state_dict_loads_strictly_and_gives_1024(weights):
    for m, c in (("rgb", 3), ("flow", 2)):
        net = I3D(m)
        net.load_state_dict(reference_state_dict(c), strict=True)
        net.eval()
        with torch.no_grad():
            y = net(torch.rand(2, c, 16, 16, 16) * 2 - 1)
        assert y.shape == (2, 1024) and torch.isfinite(y).all()
        # load_i3d: the same file through the user path, logits kept but not run
        loaded = load_i3d(weights[m], m)
        with torch.no_grad():
            x = torch.rand(1, c, 16, 16, 16) * 2 - 1
            before = loaded(x)
            loaded.logits.conv3d.weight.fill_(float("nan"))
            assert torch.equal(loaded(x), before)


def test_default_chunk_ends_in_a_2x7x7_map_pooled_to_one_vector():
    with torch.device("meta"):
        net = I3D("rgb").eval()
    seen = {}
    net.Mixed_5c.register_forward_hook(lambda mod, inp, out: seen.__setitem__("5c", tuple(out.shape)))
    net.Conv3d_1a_7x7.register_forward_hook(lambda mod, inp, out: seen.__setitem__("1a", tuple(out.shape)))
    y = net(torch.empty(3, 3, 16, 224, 224, device="meta"))
    assert seen["1a"] == (3, 64, 8, 112, 112)
    assert seen["5c"] == (3, 1024, 2, 7, 7)        # AvgPool3d((2, 7, 7), stride 1) -> 1 x 1 x 1
    assert tuple(y.shape) == (3, 1024)


def test_batchnorm_and_padding_follow_pytorch_i3d():
    bns = [m for m in I3D("flow").modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(bns) == 3 + 6 * len(MIXED)
    assert all(m.eps == 0.001 and m.momentum == 0.01 for m in bns)
    # TensorFlow "same": output ceil(n / s), total padding (ceil(n/s) - 1) * s + k - n, smaller half first
    for n in range(1, 40):
        for k in (1, 2, 3, 7):
            for s in (1, 2):
                lo, hi = same_padding((n,), (k,), (s,))
                total = max((-(-n // s) - 1) * s + k - n, 0)
                assert (lo, hi) == (total // 2, total - total // 2), (n, k, s)
                assert (n + lo + hi - k) // s + 1 == -(-n // s)


def test_weight_file_errors_are_one_line(weights, tmp_path):
    with pytest.raises(ValueError, match="--rgb-weights .*no such file"):
        load_i3d(str(tmp_path / "none.pt"), "rgb")
    with pytest.raises(ValueError) as e:
        load_i3d(weights["flow"], "rgb")
    assert "flow weights" in str(e.value) and "\n" not in str(e.value)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch weight file.*a text file starting with 'not a"):
        load_i3d(str(bad), "flow")
    objects = tmp_path / "objects.pt"
    torch.save({"net": object}, objects)  # not loadable with weights_only=True
    with pytest.raises(ValueError, match="holds Python objects besides tensors"):
        load_i3d(str(objects), "flow")
    other = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError) as e:
        load_i3d(str(other), "flow")
    msg = str(e.value)
    assert "missing parameter(s), e.g. Conv3d_1a_7x7.conv3d.weight" in msg, msg
    assert "1 unexpected, e.g. fc.weight" in msg and "\n" not in msg, msg


# ---------------------------------------------------------------------------------------------
# decoding, resampling, scaling, flow
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    write_clip(str(d / "c25.mp4"), 2.0, 25)
    write_clip(str(d / "c30.mp4"), 2.0, 30)
    times, t = [], 0.0
    while t < 2.0 - 1e-9:                      # variable frame rate: 30 ms and 50 ms in turn
        times.append(round(t, 3))
        t += 0.03 if len(times) % 2 else 0.05
    write_clip(str(d / "vfr.mkv"), 2.0, 25, times=times)
    write_clip(str(d / "odd.webm"), 2.0, 25, w=65, h=49, codec="libvpx-vp9")
    bad = tmp_path_factory.mktemp("bad")
    write_audio_only(str(bad / "audio.m4a"))
    write_no_frames(str(bad / "empty.mp4"))
    write_truncated(str(bad / "trunc.mkv"), str(tmp_path_factory.mktemp("full") / "full.mkv"))
    write_garbage(str(bad / "garbage.mp4"))
    return {"dir": str(d), "bad": str(bad), "vfr_times": times}


def _expected_x(t):          # square_frame's left edge at time t (64 wide, a 12-pixel square)
    return int(round(4 + 25 * t)) % (64 - 12)


def _square_x(frame):
    row = frame[frame.shape[0] // 2].astype(int)
    hit = np.nonzero((row[:, 0] > 150) & (row[:, 2] < 120))[0]
    return int(hit[0])


def test_resampling_to_25_fps(clips):
    f25 = list(decode.decode_frames(os.path.join(clips["dir"], "c25.mp4"), 25, 48))
    f30 = list(decode.decode_frames(os.path.join(clips["dir"], "c30.mp4"), 25, 48))
    assert len(f25) == len(f30) == 50           # 2 s at 25 fps from either rate
    assert chunks.num_chunks(len(f25)) == chunks.num_chunks(len(f30)) == 3
    assert f25[0].shape == (48, 64, 3)
    # 30 fps -> 25 fps: frame k shows the input frame shown at k / 25 s (the last one at or before it)
    for k, fr in enumerate(f30):
        i = (k * 30) // 25
        assert abs(_square_x(fr) - _expected_x(i / 30)) <= 1, k
    # variable frame rate
    info = {}
    fv = list(decode.decode_frames(os.path.join(clips["dir"], "vfr.mkv"), 25, 48, info))
    times = clips["vfr_times"]
    assert len(fv) == 50 and info["decoded_frames"] == len(times)
    for k, fr in enumerate(fv):
        t = max(s for s in times if s <= k / 25 + 1e-9)
        assert abs(_square_x(fr) - _expected_x(t)) <= 1, k
    # odd size (VP9): resized to a shorter side of 20, aspect kept
    fo = list(decode.decode_frames(os.path.join(clips["dir"], "odd.webm"), 25, 20))
    assert len(fo) == 50 and fo[0].shape == (20, 27, 3)


def test_rgb_scaling_and_crop():
    x = np.array([0, 255, 51], np.uint8).reshape(1, 1, 3)
    np.testing.assert_allclose(chunks.rgb_to_input(x).ravel(), [-1.0, 1.0, 51 / 127.5 - 1], rtol=0, atol=1e-6)
    img = np.arange(6 * 9 * 1).reshape(6, 9, 1)
    c = chunks.center_crop(img, 4)
    assert c.shape == (4, 4, 1) and c[0, 0, 0] == img[1, 2, 0]
    assert [chunks.num_chunks(n) for n in (0, 16, 17, 32, 33, 50)] == [0, 0, 1, 1, 2, 3]


def test_tvl1_flow_of_a_moving_square():
    a, b = square_frame(0.0, 64, 48), square_frame(0.08, 64, 48)     # 2 pixels to the right
    f = flow.TVL1()(flow.gray(a), flow.gray(b))
    assert f.shape == (48, 64, 2) and f.dtype == np.float32
    inside = f[20:28, 6:14]                    # inside the square at time 0 (x 4..15, y 18..29)
    assert 1.5 < inside[..., 0].mean() < 2.5 and abs(inside[..., 1].mean()) < 0.3
    assert np.abs(f[2:10, 40:60]).max() < 0.5     # the static background
    back = flow.TVL1()(flow.gray(b), flow.gray(a))[20:28, 8:16]
    assert -2.5 < back[..., 0].mean() < -1.5
    scaled = flow.flow_to_input(np.array([-45.0, -10.0, 0.0, 4.0, 30.0], np.float32))
    np.testing.assert_allclose(scaled, [-1.0, -0.5, 0.0, 0.2, 1.0])


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------
def _run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = features_main(argv)
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def extracted(clips, weights, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data"))
    argv = ["--videos", clips["dir"], *[os.path.join(clips["bad"], f) for f in sorted(os.listdir(clips["bad"]))],
            "--out", out, "--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"], *SMALL,
            "--workers", "2"]
    rc, stdout, stderr = _run_cli(argv)
    return {"out": out, "argv": argv, "rc": rc, "stdout": stdout, "stderr": stderr}


def test_cli_writes_the_thumos_layout_and_reports_each_bad_file(extracted, clips):
    out, rc, err = extracted["out"], extracted["rc"], extracted["stderr"]
    assert rc == 1                                   # some failed
    assert "8 videos: 4 extracted, 0 already done (skipped), 4 failed" in extracted["stdout"]
    for name, what in (("audio.m4a", "no video stream"), ("empty.mp4", "0 frames"),
                       ("trunc.mkv", "truncated"), ("garbage.mp4", "cannot open it as a video")):
        lines = [ln for ln in err.splitlines() if ln.startswith("error: ") and name in ln]
        assert len(lines) == 1 and what in lines[0], (name, err)
        assert os.path.join(clips["bad"], name) in lines[0]
    assert "Traceback" not in err
    rec = json.loads(Path(out, "features.json").read_text())
    assert rec["settings"]["fps"] == 25.0 and rec["settings"]["crop"] == 16 and rec["settings"]["flow"] == "tvl1"
    assert sorted(rec["videos"]) == ["test/c25", "test/c30", "test/odd", "test/vfr"]
    mask = os.umask(0)
    os.umask(mask)
    mode = 0o666 & ~mask                                  # a new file's, under the umask
    for key, entry in rec["videos"].items():
        assert entry["T"] == 3 and entry["frames"] == 50 and entry["split"] == "test"
        for m in ("rgb", "flow"):
            p = Path(out, "features", "test", m, key.split("/")[1] + ".npy")
            a = np.load(p)
            assert a.shape == (3, 1024) and a.dtype == np.float32 and np.isfinite(a).all()
            assert p.stat().st_mode & 0o777 == mode
    leftovers = [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")]
    assert leftovers == []


def test_deterministic_and_the_same_in_process(extracted, clips, weights, tmp_path):
    rc, _, _ = _run_cli(["--videos", os.path.join(clips["dir"], "c25.mp4"), "--out", str(tmp_path),
                         "--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"], *SMALL,
                         "--workers", "0", "--batch-size", "2"])
    assert rc == 0
    for m in ("rgb", "flow"):
        a = np.load(Path(extracted["out"], "features", "test", m, "c25.npy"))
        b = np.load(tmp_path / "features" / "test" / m / "c25.npy")
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)   # batches of 8 vs 2: the same rows


def test_resume_skips_done_videos_and_refuses_other_settings(extracted):
    out = extracted["out"]
    p = Path(out, "features", "test", "rgb", "c25.npy")
    before = p.stat().st_mtime_ns
    rc, stdout, _ = _run_cli(extracted["argv"][:-2] + ["--workers", "0"])
    assert rc == 1 and "4 already done (skipped), 4 failed" in stdout
    assert p.stat().st_mtime_ns == before
    argv = list(extracted["argv"])
    argv[argv.index("--resize") + 1] = "24"
    rc, _, _ = _run_cli(argv)
    assert isinstance(rc, str) and "\n" not in rc and "other settings" in rc and "resize 20 -> 24" in rc


def test_bad_arguments_are_one_line(weights, clips, tmp_path):
    base = ["--out", str(tmp_path / "o"), "--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"]]
    for argv, frag in ((["--videos", str(tmp_path / "nope")] + base, "no such file or folder"),
                       (["--videos", str(tmp_path)] + base, "no video files"),
                       (["--videos", clips["dir"], "--crop", "300"] + base, "--resize (256) must be >= --crop (300)"),
                       (["--videos", clips["dir"], "--dtype", "float16", "--device", "cpu"] + base, "float16"),
                       (["--videos", clips["dir"], "--out", str(tmp_path / "o"), "--rgb-weights", weights["flow"],
                         "--flow-weights", weights["flow"]], "flow weights")):
        rc, _, _ = _run_cli(argv)
        assert isinstance(rc, str) and rc.startswith("python -m sal_ext.features: error:") and "\n" not in rc
        assert frag in rc, rc


def test_without_the_video_extra_one_line(tmp_path):
    code = ("import sys, runpy; sys.modules['av'] = None; "
            "sys.argv = ['x', '--videos', 'v', '--out', 'o', '--rgb-weights', 'r', '--flow-weights', 'f']; "
            "runpy.run_module('sal_ext.features', run_name='__main__')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0 and "pip install '.[video]'" in p.stderr, p.stderr


def test_raft_without_torchvision_is_one_line(weights, clips, tmp_path):
    try:
        import torchvision.models.optical_flow  # noqa: F401
        pytest.skip("torchvision imports here: RAFT is available")
    except Exception:
        pass
    rc, _, _ = _run_cli(["--videos", clips["dir"], "--out", str(tmp_path), "--rgb-weights", weights["rgb"],
                         "--flow-weights", weights["flow"], "--flow", "raft"])
    assert isinstance(rc, str) and "\n" not in rc and "torchvision" in rc


def test_resume_after_a_kill(weights, clips, tmp_path):
    """SIGKILL once the first video is written: no half file, and the next run does the rest."""
    vids = tmp_path / "v"
    vids.mkdir()
    os.link(os.path.join(clips["dir"], "c25.mp4"), vids / "a.mp4")
    write_clip(str(vids / "b.mp4"), 4.0, 25)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "sal_ext.features", "--videos", str(vids), "--out", str(out),
            "--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"], *SMALL, "--workers", "0"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rec_path = out / "features.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        try:
            if "test/a" in json.loads(rec_path.read_text())["videos"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "features" / "test" / "rgb" / "b.npy").exists()
    assert np.load(out / "features" / "test" / "flow" / "a.npy").shape == (3, 1024)
    rc, stdout, _ = _run_cli(argv[3:])
    assert rc == 0 and "2 videos: 1 extracted, 1 already done (skipped), 0 failed" in stdout, stdout
    assert np.load(out / "features" / "test" / "rgb" / "b.npy").shape == ((100 - 1) // 16, 1024)


def test_infer_video_flags_refused_in_one_line(weights, clips, tmp_path):
    from sal_ext import infer
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"never loaded")
    video = os.path.join(clips["dir"], "c25.mp4")
    w = ["--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"]]
    for argv, frag in ((["--video", video, "--features", video] + w, "--features cannot be combined with --video"),
                       (["--video", video], "--video needs --rgb-weights"),
                       (["--video", str(tmp_path / "none.mp4")] + w, "no such file"),
                       (["--videos", str(tmp_path / "none")] + w, "no such folder"),
                       (["--videos", clips["dir"], "--plot", "p.png"] + w, "--plot is for one video"),
                       (["--features", video] + w, "--rgb-weights/--flow-weights make features from --video")):
        with pytest.raises(SystemExit) as e:
            infer.main(["--checkpoint", str(ck)] + argv)
        msg = e.value.code
        assert isinstance(msg, str) and "\n" not in msg and frag in msg, msg


def test_infer_video_checks_the_checkpoint_before_extracting(weights, clips, tmp_path, monkeypatch):
    from sal_ext import infer

    def no_extraction(*a, **k):
        raise AssertionError("features extracted before the checkpoint was checked")
    monkeypatch.setattr(infer, "video_features", no_extraction)
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"never loaded")
    w = ["--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"], "--no-progress"]
    for src in (["--video", os.path.join(clips["dir"], "c25.mp4")], ["--videos", clips["dir"]]):
        with pytest.raises(SystemExit) as e:
            infer.main(["--checkpoint", str(ck)] + src + w)
        assert "not a PyTorch checkpoint" in str(e.value.code), e.value.code
    # a model trained on other features (64 columns) is refused before minutes of extraction
    monkeypatch.setattr(infer, "load_checkpoint", lambda *a, **k: (None, {"feature_dim": 64}))
    for src in (["--video", os.path.join(clips["dir"], "c25.mp4")], ["--videos", clips["dir"]]):
        with pytest.raises(SystemExit) as e:
            infer.main(["--checkpoint", str(ck)] + src + w)
        assert "the model expects 64 feature columns, the I3D extractor makes 2048" in str(e.value.code)


# ---------------------------------------------------------------------------------------------
# round trip: features -> sal_ext.data check -> 10 training steps -> sal_ext.infer --video
# ---------------------------------------------------------------------------------------------
def test_round_trip_to_detections(extracted, clips, weights, tmp_path):
    from sal_ext import infer, train
    from sal_ext.data.__main__ import main as data_main
    src = Path(extracted["out"], "features", "test")
    root = tmp_path / "data"
    labels = {"c25": "BaseballPitch", "c30": "BaseballPitch", "vfr": "BasketballDunk", "odd": "BasketballDunk"}
    db = {}
    for split, prefix, subset in (("train", "train_", "validation"), ("test", "", "test")):
        names = []
        for vid, label in labels.items():
            for m in ("rgb", "flow"):
                dst = root / "features" / split / m / f"{prefix}{vid}.npy"
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes((src / m / f"{vid}.npy").read_bytes())
            names.append(prefix + vid)
            db[prefix + vid] = {"subset": subset, "duration": 2.0,
                                "annotations": [{"label": label, "segment": [0.2, 1.5]}]}
        (root / f"split_{split}.txt").write_text("\n".join(names) + "\n")
    (root / "gt.json").write_text(json.dumps({"database": db}))
    with contextlib.redirect_stdout(io.StringIO()) as said:
        assert data_main(["check", "--dataset", "thumos14", "--data-root", str(root), "--no-progress"]) == 0
    assert "OK" in said.getvalue()
    run = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert train.main(["--data-root", str(root), "--out", str(run), "--max-steps", "10", "--batch-size", "2",
                           "--set", "model.hidden=8", "--set", "num_segments=8", "--no-progress",
                           "--seed", "0"]) == 0
    ckpt = str(run / "best.pt") if (run / "best.pt").exists() else str(run / "last.pt")
    res_video, res_feats = tmp_path / "video.json", tmp_path / "feats.json"
    with contextlib.redirect_stdout(io.StringIO()) as said:
        assert infer.main(["--checkpoint", ckpt, "--video", os.path.join(clips["dir"], "c25.mp4"),
                           "--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"], *SMALL,
                           "--workers", "0", "--out", str(res_video)]) == 0
        assert infer.main(["--checkpoint", ckpt, "--rgb", str(src / "rgb" / "c25.npy"),
                           "--flow", str(src / "flow" / "c25.npy"), "--out", str(res_feats)]) == 0
    assert "c25: 3 snippets" in said.getvalue()
    got = json.loads(res_video.read_text())["results"]
    assert list(got) == ["c25"] and got == json.loads(res_feats.read_text())["results"]
    # a folder of videos: one results JSON, every video keyed by its file stem
    two = tmp_path / "two"
    two.mkdir()
    for name in ("c25.mp4", "odd.webm"):
        os.link(os.path.join(clips["dir"], name), two / name)
    res_dir = tmp_path / "dir.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert infer.main(["--checkpoint", ckpt, "--videos", str(two), "--rgb-weights", weights["rgb"],
                           "--flow-weights", weights["flow"], *SMALL, "--out", str(res_dir)]) == 0
    both = json.loads(res_dir.read_text())["results"]
    assert sorted(both) == ["c25", "odd"] and both["c25"] == got["c25"]
    # an undecodable video: one line naming it
    with pytest.raises(SystemExit) as e:
        infer.main(["--checkpoint", ckpt, "--video", os.path.join(clips["bad"], "garbage.mp4"), "--no-progress",
                    "--rgb-weights", weights["rgb"], "--flow-weights", weights["flow"]])
    assert "garbage.mp4: cannot open it as a video" in str(e.value.code) and "\n" not in str(e.value.code)
