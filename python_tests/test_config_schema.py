"""Config validation (sal_ext.config.schema): every key of every preset, one pass before any
data is read or any model is built, one-line errors naming the key, the value and the rule."""
import math

import numpy as np
import pytest
import torch

from sal_ext import config as C
from sal_ext import infer, train
from sal_ext.config.schema import RULES, ConfigError, leaves, validate_config

# key: (a valid value, a value of the wrong type, a value out of range / not allowed or None)
CASES = {
    "name": ("mine", 3, None),
    "dataset": ("activitynet", 1, "foo"),
    "data_root": ("/data/x", 5, None),
    "num_classes": (20, "x", 0),
    "feature_dim": (2048, 2048.0, 0),
    "num_segments": (64, 1.5, 0),
    "class_names": ([f"c{i}" for i in range(20)], "abc", [1, 2]),
    "val_fraction": (0.2, "x", 1.0),
    "monitor_test": (True, "yes", 1),
    "model.hidden": (32, "abc", -3),
    "model.encoder_kernel": (5, 3.0, 4),
    "model.fusion_lambda": (0.3, "x", 1.5),
    "model.dropout": (0.0, True, 1.0),
    "loss.r": (4, "8", 0),
    "loss.mil_select": ("cas", 0, "max"),
    "loss.mil_topk_divisor": (4, 4.5, 0),
    "loss.bg_topk_divisor": (None, "x", -1),
    "loss.select_weights": ([0.5, 0.25, 0.25], 0.3, [0.5, 0.5]),
    "loss.pseudo_topk": (40, [40], 0),
    "loss.pseudo_extra": (0, 1.0, -1),
    "loss.pseudo_require_label": (False, 1, None),
    "loss.confidence_mask": (True, "yes", None),
    "loss.ema_momentum": (0.99, "x", 2),
    "loss.var_scale": (6.0, None, 0),
    "loss.q": (1.0, "x", 0),
    "loss.w_mil": (2.0, "x", float("nan")),
    "loss.w_mc": (0, None, -1.0),
    "loss.w_bg": (1.0, [1], float("inf")),
    "loss.w_act": (1.0, "1", -0.5),
    "loss.w_se": (3, False, -3),
    "loss.w_mix": (0.0, {}, -1e-9),
    "optim.lr": (1e-3, "fast", 0),
    "optim.betas": ([0.8, 0.99], 0.9, [0.9, 1.0]),
    "optim.weight_decay": (0, "x", -1e-4),
    "optim.impl": ("loop", 1, "sgd"),
    "optim.set_to_none": (False, 0, None),
    "train.batch_size": (8, 2.0, 0),
    "train.epochs": (3, "x", 0),
    "train.max_steps": (100, 1.5, -5),
    "train.eval_every": (None, "x", 0),
    "train.eval_from_epoch": (0, 0.5, -1),
    "train.eval_at_end": (False, None, None),
    "train.eval_batch_size": (1, "x", 0),
    "train.save_every": (None, 1.0, 0),
    "train.seed": (0, "x", -1),
    "train.drop_last": (True, "true", None),
    "train.test_split": ("train", 0, "dev"),
    "inference.class_threshold": (0.1, "x", float("nan")),
    "inference.score_weight": (0.5, None, 1.5),
    "inference.topk_r": (4, 4.0, 0),
    "inference.fuse_weights": ([0.6, 0.2, 0.2], "x", [0, 0, 0]),
    "inference.act_thresholds": ([0.5], 0.5, []),
    "inference.upsample": (8, 24.0, 0),
    "inference.outer_ratio": (0.25, "x", -0.1),
    "inference.gamma": (0.0, "x", float("inf")),
    "inference.nms_method": ("hard", 1, "foo"),
    "inference.nms_threshold": (0.7, "x", 1.5),
    "inference.nms_sigma": (0.35, None, 0),
    "inference.nms_plus_one": (False, 1, None),
    "inference.fps": (30.0, "x", 0),
    "inference.frames_per_snippet": (8, 16.0, 0),
    "inference.max_detections": (100, 1.5, 0),
    "inference.oic_skip_first_only": (False, "no", None),
    "inference.version": ("VERSION 1.3", 1.3, None),
    "inference.external_data": ({"used": True}, [1], None),
    "eval.tiou_thresholds": ([0.1, 0.3, 0.7], 0.5, []),
    "eval.subset": ("test", 1, None),
    "eval.select_metric": ("0.3:0.7", 5, "bogus"),
    "eval.protocols": (["activitynet", "wtalc"], "activitynet", ["foo"]),
    "eval.ambiguous_file": ("Ambiguous_test.txt", 1, None),
    "synthetic.seed": (1, "x", -1),
    "synthetic.num_train": (10, 1.5, 0),
    "synthetic.num_test": (10, "x", 0),
    "synthetic.num_classes": (20, "x", 21),
    "synthetic.feature_dim": (2048, "x", 0),
    "synthetic.min_len": (16, "x", 4),
    "synthetic.max_len": (400, "x", 7),
}


def _with(key, value, preset="synthetic"):
    cfg = C.get_preset(preset)
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return cfg


def _one_line_error(cfg, *fragments):
    with pytest.raises(ConfigError) as e:
        validate_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_cases_cover_every_key():
    keys = set()
    for name in C.PRESETS:
        keys |= {k for k, _ in leaves(C.get_preset(name))}
    assert keys <= set(RULES), keys - set(RULES)
    assert set(CASES) == set(RULES), set(RULES) ^ set(CASES)
    for key in ("eval.protocols", "eval.ambiguous_file"):  # the evaluator's (issue 9) keys
        assert key in RULES


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_presets_are_valid(name):
    assert validate_config(C.get_preset(name)) is not None


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_key(key):
    good, wrong_type, bad = CASES[key]
    validate_config(_with(key, good))
    _one_line_error(_with(key, wrong_type), key, repr(wrong_type))
    if bad is not None:
        _one_line_error(_with(key, bad), key)


def test_messages_name_key_value_and_rule():
    msg = _one_line_error(_with("model.hidden", -3), "model.hidden=-3", "an integer >= 1")
    assert msg == "invalid config value model.hidden=-3: expected an integer >= 1"
    _one_line_error(_with("loss.q", 0), "loss.q=0", "(0, 1]")
    _one_line_error(_with("inference.nms_method", "foo"), "'foo'", "'sal', 'hard', 'linear', 'gaussian'")
    _one_line_error(_with("model.encoder_kernel", 4), "an odd integer")
    _one_line_error(_with("inference.act_thresholds", []), "act_thresholds=[]", "list of 1 to 255")


def test_cross_field_rules():
    cfg = C.get_preset("synthetic")
    cfg["train"]["epochs"] = None
    _one_line_error(cfg, "train.epochs", "train.max_steps")
    _one_line_error(_with("feature_dim", 2047, "thumos14"), "feature_dim=2047", "even")
    _one_line_error(_with("num_classes", 5), "num_classes=5", "synthetic.num_classes=20")
    cfg = _with("num_classes", 5)
    cfg["data_root"] = "/some/data"               # then the synthetic section is not used
    validate_config(cfg)
    _one_line_error(_with("train.test_split", "val", "thumos14"), "test_split='val'")
    validate_config(_with("train.test_split", "val", "activitynet13"))
    _one_line_error(_with("inference.upsample", 2 ** 30), "upsample * num_segments")
    _one_line_error(_with("class_names", ["a", "b"]), "class_names has 2 entries", "num_classes=20")
    _one_line_error(_with("eval.select_metric", "0.15:0.5"), "select_metric='0.15:0.5'", "0.1:0.7")
    validate_config(_with("eval.select_metric", "average"))
    validate_config(_with("eval.select_metric", "0.5:0.95", "activitynet13"))
    _one_line_error(_with("eval.select_metric", "0.1:0.7", "activitynet13"), "select_metric")
    cfg = C.get_preset("synthetic")
    cfg["synthetic"]["max_len"] = 50
    cfg["synthetic"]["min_len"] = 60
    _one_line_error(cfg, "synthetic.max_len=50")
    _one_line_error(_with("eval.protocols", ["wtalc", "wtalc"]), "each protocol once")


def test_structure_errors():
    cfg = C.get_preset("thumos14")
    cfg["model"] = 3
    _one_line_error(cfg, "model=3", "section", "model.hidden")
    cfg = C.get_preset("thumos14")
    cfg["loss"]["hiddn"] = 3
    _one_line_error(cfg, "unknown config key 'loss.hiddn'")
    cfg = C.get_preset("thumos14")
    del cfg["train"]["seed"]
    _one_line_error(cfg, "missing config key train.seed")


def test_set_unknown_key_lists_close_matches():
    cfg = C.get_preset("synthetic")
    with pytest.raises(KeyError) as e:
        C.apply_overrides(cfg, ["hiden=3"])
    assert "close matches: model.hidden" in e.value.args[0]
    with pytest.raises(KeyError) as e:
        C.apply_overrides(cfg, ["model.hiden=3"])
    assert "model.hidden" in e.value.args[0]
    with pytest.raises(KeyError) as e:
        C.apply_overrides(cfg, ["eval_evry=3"])
    assert "train.eval_every" in e.value.args[0]
    with pytest.raises(KeyError) as e:
        C.apply_overrides(cfg, ["zzzzzz=3"])
    assert "close matches" not in e.value.args[0]


# the cases of issue 10, each through the command line: a one-line error, before any data is
# read (the data root below does not exist as a data set, only the synthetic preset would
# generate data, and a bad value must stop that too)
ISSUE_CASES = [
    ("q=0", "loss.q=0"), ("class_threshold=NaN", "inference.class_threshold=nan"),
    ("train.max_steps=-5", "train.max_steps=-5"), ("select_metric=bogus", "eval.select_metric='bogus'"),
    ("ema_momentum=2", "loss.ema_momentum=2"), ("eval_every=0", "train.eval_every=0"),
    ("model.hidden=-3", "model.hidden=-3"), ("model.hidden=0", "model.hidden=0"),
    ("model.hidden=abc", "model.hidden='abc'"), ("model.hidden=1.5", "model.hidden=1.5"),
    ("train.batch_size=0", "train.batch_size=0"), ("loss.r=0", "loss.r=0"),
    ("w_mil=NaN", "loss.w_mil=nan"), ("fps=0", "inference.fps=0"), ("upsample=0", "inference.upsample=0"),
    ("act_thresholds=[]", "inference.act_thresholds=[]"), ("nms_method=foo", "inference.nms_method='foo'"),
    ("tiou_thresholds=[]", "eval.tiou_thresholds=[]"), ("dataset=foo", "dataset='foo'"),
    ("num_classes=0", "num_classes=0"),
]


def _exit_one_line(fn, argv, *fragments):
    with pytest.raises(SystemExit) as e:
        fn(argv)
    msg = e.value.code
    assert isinstance(msg, str) and "\n" not in msg, msg   # SystemExit(str): status 1
    for frag in fragments:
        assert frag in msg, msg
    return msg


@pytest.mark.parametrize("item,shown", ISSUE_CASES)
def test_train_cli_refuses_before_data(item, shown, tmp_path, monkeypatch):
    def no_data(*a, **k):
        raise AssertionError("data was read before the config was validated")
    monkeypatch.setattr(train, "ensure_synthetic_data", no_data)
    monkeypatch.setattr(train, "build_split", no_data)
    out = tmp_path / "run"
    _exit_one_line(train.main, ["--set", item, "--out", str(out), "--no-progress"], shown, "expected")
    assert not out.exists()


@pytest.mark.parametrize("item,shown", ISSUE_CASES)
def test_infer_cli_refuses_before_model(item, shown, tmp_path, monkeypatch):
    from sal_ext.model import SAL
    path = str(tmp_path / "ref.pkl")
    torch.save(SAL(in_dim=64, num_classes=20, hidden=8).state_dict(), path)
    feats = str(tmp_path / "v.npy")
    np.save(feats, np.zeros((40, 64), np.float32))

    def no_model(*a, **k):
        raise AssertionError("the model was built before the config was validated")
    monkeypatch.setattr(infer, "build_model", no_model)
    _exit_one_line(infer.main, ["--checkpoint", path, "--preset", "thumos14", "--features", feats,
                                "--set", "feature_dim=64", "--set", "model.hidden=8", "--set", item],
                   shown, "expected")


def test_train_cli_close_matches_and_backend(tmp_path, monkeypatch):
    _exit_one_line(train.main, ["--set", "hiden=3"], "unknown config key 'hiden'", "model.hidden")
    monkeypatch.setenv("SAL_EXT_BACKEND", "gpu")
    _exit_one_line(train.main, ["--out", str(tmp_path / "r")], "SAL_EXT_BACKEND", "'gpu'")
    assert not (tmp_path / "r").exists()


def test_backend_env_one_line_in_every_cli(tmp_path):
    import json
    import subprocess
    import sys
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": {"v": {"subset": "test", "duration": 10.0,
                                                 "annotations": [{"label": "a", "segment": [1.0, 2.0]}]}}}))
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps({"results": {"v": [{"label": "a", "score": 0.5, "segment": [1.0, 2.0]}]}}))
    env = {**__import__("os").environ, "SAL_EXT_BACKEND": "gpu", "OMP_NUM_THREADS": "1"}
    for argv in (["sal_ext.train", "--out", str(tmp_path / "r")],
                 ["sal_ext.infer", "--checkpoint", str(tmp_path / "x.pt"), "--features", "x.npy"],
                 ["sal_ext.evaluate", "--gt", str(gt), "--pred", str(pred)]):
        r = subprocess.run([sys.executable, "-m"] + argv, capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode != 0, (argv, r.stdout)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "SAL_EXT_BACKEND" in lines[0] and "gpu" in lines[0], (argv, r.stderr)


def test_resume_with_a_different_network_is_refused(tmp_path):
    from sal_ext.data.synthetic import ensure_synthetic
    root = ensure_synthetic(cache_dir=str(tmp_path / "synth"), seed=0, num_train=8, num_test=4,
                            num_classes=20, feature_dim=64, min_len=40, max_len=60)
    run = str(tmp_path / "run")
    tiny = ["--set", "feature_dim=64", "--set", "model.hidden=8", "--set", "num_segments=16",
            "--batch-size", "4", "--no-progress"]
    assert train.main(["--data-root", root, "--out", run, "--max-steps", "1"] + tiny) == 0
    before = torch.load(f"{run}/last.pt", weights_only=False)["step"]
    _exit_one_line(train.main, ["--resume", run, "--max-steps", "2", "--set", "model.hidden=16"],
                   "--resume: model.hidden=16 differs from the checkpoint's 8")
    _exit_one_line(train.main, ["--resume", run, "--set", "hidden=0"], "model.hidden=0")
    assert torch.load(f"{run}/last.pt", weights_only=False)["step"] == before
    # settings that leave the network alone may change
    assert train.main(["--resume", run, "--max-steps", "2", "--set", "inference.nms_threshold=0.5",
                       "--no-progress"]) == 0
