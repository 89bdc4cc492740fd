import json
import os

import numpy as np
import pytest
import torch

import sal_reference_np as R
from sal_ext.config import get_preset, inference_config
from sal_ext.inference import InferenceConfig, THUMOS_ACT_THRESHOLDS, postprocess, save_results


def _inputs(N=10, T=60, C=5, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    cas = torch.randn(N, T, C, generator=g) * scale
    a_rgb, a_flow = torch.rand(N, T, generator=g), torch.rand(N, T, generator=g)
    sc = torch.randn(N, C, generator=g)
    t_orig = torch.randint(20, 900, (N,), generator=g)
    labels = (torch.rand(N, C, generator=g) > 0.7).float()
    return cas, a_rgb, a_flow, sc, t_orig, [f"video_{i}" for i in range(N)], [f"cls{i}" for i in range(C)], labels


def _reference(inputs, cfg: InferenceConfig):
    cas, a_rgb, a_flow, sc, t_orig, vids, names, labels = inputs
    equal = all(abs(w - 1 / 3) < 1e-9 for w in cfg.fuse_weights)
    return R.postprocess_reference(
        cas, a_rgb, a_flow, sc, t_orig, vids, names, class_thresh=cfg.class_threshold,
        beta=cfg.score_weight, r=cfg.topk_r, thresholds=np.array(cfg.act_thresholds), scale=cfg.upsample,
        outer_ratio=cfg.outer_ratio, gamma=cfg.gamma, nms_thresh=cfg.nms_threshold, nms_alpha=cfg.nms_sigma,
        fps=cfg.fps, frames=cfg.frames_per_snippet, fuse=None if equal else cfg.fuse_weights, labels=labels)


def _assert_same_detections(got: dict, want: dict):
    assert list(got) == list(want)  # same videos, same order
    n = 0
    for vid in want:
        a, b = want[vid], got[vid]
        assert len(a) == len(b), vid
        for x, y in zip(a, b):
            assert x["label"] == y["label"] and x["segment"] == y["segment"], (vid, x, y)
            assert abs(x["score"] - y["score"]) <= 1e-6, (vid, x, y)
        n += len(a)
    return n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_thumos(seed):
    inputs = _inputs(seed=seed, T=[60, 100, 37][seed])
    cfg = InferenceConfig()
    out = postprocess(*inputs[:7], cfg, labels=inputs[7])
    want, pred, acc = _reference(inputs, cfg)
    assert _assert_same_detections(out["results"]["results"], want) > 100
    np.testing.assert_array_equal(out["pred_multi_hot"].numpy(), pred)
    assert out["classification_accuracy"] == acc
    assert out["results"]["version"] == "VERSION 1.3" and out["results"]["external_data"] == {}


def test_matches_reference_activitynet():
    inputs = _inputs(N=8, T=50, C=30, seed=5, scale=3.0)
    cfg = InferenceConfig.activitynet()
    assert (cfg.class_threshold, cfg.score_weight, cfg.topk_r, cfg.nms_threshold, cfg.nms_sigma) == \
        (0.1, 0.5, 4, 0.7, 0.35)
    out = postprocess(*inputs[:7], cfg)
    want, pred, _ = _reference(inputs, cfg)
    assert _assert_same_detections(out["results"]["results"], want) > 50
    np.testing.assert_array_equal(out["pred_multi_hot"].numpy(), pred)
    assert out["classification_accuracy"] is None


def test_matches_reference_smooth_cas():
    # smooth, THUMOS-like CAS: long runs, many overlapping proposals across thresholds
    N, T, C = 6, 120, 4
    inputs = list(_inputs(N=N, T=T, C=C, seed=3))
    base = torch.randn(N, T // 10, C).repeat_interleave(10, 1) * 3
    inputs[0] = base + 0.1 * torch.randn(N, T, C)
    inputs[1] = torch.sigmoid(3 * torch.randn(N, T // 6)).repeat_interleave(6, 1)
    inputs[2] = inputs[1] * 0.9
    cfg = InferenceConfig(upsample=8)
    want, _, _ = _reference(inputs, cfg)
    _assert_same_detections(postprocess(*inputs[:7], cfg)["results"]["results"], want)


def test_thresholds_are_the_reference_values():
    assert np.array_equal(np.array(THUMOS_ACT_THRESHOLDS), np.arange(0.1, 1.0, 0.1))


@pytest.mark.parametrize("name", ["thumos14", "activitynet13"])
def test_preset_thresholds_are_the_reference_values(name):
    # the preset used to list 0.3, 0.7 as plain decimals (not 0.30000000000000004, ...): the
    # runs above a threshold at boundary positions depend on the exact values
    cfg = get_preset(name)
    want = np.arange(0.1, 1.0, 0.1)
    for thr in (cfg["inference"]["act_thresholds"], inference_config(cfg).act_thresholds,
                json.loads(json.dumps(cfg))["inference"]["act_thresholds"]):
        assert np.array_equal(np.array(thr, dtype=np.float64), want), thr


def test_class_threshold_and_argmax_fallback():
    cas, a_rgb, a_flow, sc, t_orig, vids, names, _ = _inputs(N=3, T=40, C=5)
    cas = torch.zeros(3, 40, 5)
    sc = torch.tensor([[5.0, 0, 0, 0, 0],        # one class >= 0.25
                       [3.0, 3.0, 0, 0, 0],      # two classes
                       [0.1, 0.3, 0.0, 0.15, 0.05]])  # none >= 0.25 -> the argmax only
    out = postprocess(cas, a_rgb, a_flow, sc, t_orig, vids, names)
    assert out["pred_multi_hot"].tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 0, 0, 0]]
    assert float(out["video_scores"][2].max()) < 0.25
    torch.testing.assert_close(out["video_scores"].sum(1), torch.ones(3))
    assert {d["label"] for d in out["results"]["results"]["video_2"]} <= {"cls1"}
    # class threshold >= 1: the argmax is predicted, but nothing is localized (reference quirk)
    out = postprocess(cas, a_rgb, a_flow, sc, t_orig, vids, names, InferenceConfig(class_threshold=1.0))
    assert out["pred_multi_hot"].sum(1).tolist() == [1, 1, 1]
    assert out["results"]["results"] == {}


def test_accuracy():
    cas, a_rgb, a_flow, sc, t_orig, vids, names, _ = _inputs(N=5, T=30, C=3)
    out = postprocess(cas, a_rgb, a_flow, sc, t_orig, vids, names)
    pred = out["pred_multi_hot"]
    assert out["classification_accuracy"] is None
    assert postprocess(cas, a_rgb, a_flow, sc, t_orig, vids, names, labels=pred)["classification_accuracy"] == 1.0
    wrong = pred.clone()
    wrong[1] = 1 - wrong[1]
    wrong[3, 0] = 1 - wrong[3, 0]
    acc = postprocess(cas, a_rgb, a_flow, sc, t_orig, vids, names, labels=wrong)["classification_accuracy"]
    assert acc == pytest.approx(3 / 5)


def test_seconds_and_json_shape():
    cas, a_rgb, a_flow, sc, t_orig, vids, names, _ = _inputs(N=4, T=50, C=3)
    out = postprocess(cas, a_rgb, a_flow, sc, t_orig, vids, names)
    res = out["results"]["results"]
    assert set(out["timings"]) == {"proposals", "nms", "json"}
    for n, vid in enumerate(vids):
        duration = 16 * int(t_orig[n]) / 25.0
        for d in res[vid]:
            assert set(d) == {"label", "score", "segment"} and d["label"] in names
            s, e = d["segment"]
            assert 0 <= s < e <= duration + 1e-9
            # segment ends are multiples of f = 16 * T_orig / (24 * T * 25)
            f = 16 * int(t_orig[n]) / (24 * 50 * 25.0)
            assert abs(s / f - round(s / f)) < 1e-6 and abs(e / f - round(e / f)) < 1e-6
    json.dumps(out["results"])


def test_max_detections():
    inputs = _inputs(N=4, T=60, C=3)
    full = postprocess(*inputs[:7])["results"]["results"]
    capped = postprocess(*inputs[:7], InferenceConfig(max_detections=5))["results"]["results"]
    for vid in full:
        top = sorted((d["score"] for d in full[vid]), reverse=True)[:5]
        assert sorted((d["score"] for d in capped[vid]), reverse=True) == top
        assert len(capped[vid]) == min(5, len(full[vid]))


def test_save_results(tmp_path):
    inputs = _inputs(N=3, T=30, C=3)
    out = postprocess(*inputs[:7])
    path = tmp_path / "sub" / "result.json"
    save_results(out, str(path))
    assert json.loads(path.read_text()) == json.loads(json.dumps(out["results"]))
    save_results(out["results"], str(path))  # overwrite in place
    assert os.listdir(path.parent) == ["result.json"]


def test_bad_inputs():
    cas, a_rgb, a_flow, sc, t_orig, vids, names, labels = _inputs(N=3, T=20, C=4)
    with pytest.raises(ValueError, match="`cas`"):
        postprocess(cas[0], a_rgb, a_flow, sc, t_orig, vids, names)
    with pytest.raises(ValueError, match="`a_rgb`"):
        postprocess(cas, a_rgb[:, :5], a_flow, sc, t_orig, vids, names)
    with pytest.raises(ValueError, match="`sc`"):
        postprocess(cas, a_rgb, a_flow, sc[:, :2], t_orig, vids, names)
    with pytest.raises(ValueError, match="`t_orig`"):
        postprocess(cas, a_rgb, a_flow, sc, t_orig.float(), vids, names)
    with pytest.raises(ValueError, match="`video_ids`"):
        postprocess(cas, a_rgb, a_flow, sc, t_orig, vids[:2], names)
    with pytest.raises(ValueError, match="`class_names`"):
        postprocess(cas, a_rgb, a_flow, sc, t_orig, vids, names[:3])
    with pytest.raises(ValueError, match="`labels`"):
        postprocess(cas, a_rgb, a_flow, sc, t_orig, vids, names, labels=labels[:, :2])
    bad = cas.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        postprocess(bad, a_rgb, a_flow, sc, t_orig, vids, names)
