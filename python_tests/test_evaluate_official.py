"""The default protocol is the official ActivityNet evaluator's, including its false positives
for predictions on videos the evaluated subset does not annotate (issue 9)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from eval_cases import official_map, random_files
from sal_ext import evaluate as ev


def _hand_case(where):
    """Jump at [0, 10] in test video a and [20, 30] in test video b, both found (scores 0.9 and
    0.5); one more Jump prediction, score 0.7, on `where`, which has no Jump ground truth."""
    gt = {"database": {
        "a": {"subset": "test", "annotations": [{"label": "Jump", "segment": [0.0, 10.0]}]},
        "b": {"subset": "test", "annotations": [{"label": "Jump", "segment": [20.0, 30.0]}]},
        "e": {"subset": "test", "annotations": []},
        "t": {"subset": "training", "annotations": [{"label": "Jump", "segment": [0.0, 10.0]}]},
    }}
    pred = {"results": {
        "a": [{"label": "Jump", "score": 0.9, "segment": [0.0, 10.0]}],
        "b": [{"label": "Jump", "score": 0.5, "segment": [20.0, 30.0]}],
        where: [{"label": "Jump", "score": 0.7, "segment": [0.0, 10.0]}],
    }}
    return gt, pred


# By hand: ranking TP (0.9), FP (0.7), TP (0.5): precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1;
# made monotone from the right: 1 up to recall 1/2, 2/3 up to recall 1;
# interpolated AP = 0.5 * 1 + 0.5 * 2/3 = 5/6 at every threshold.
@pytest.mark.parametrize("where", ["t", "zzz", "e"], ids=["other-subset", "absent-from-gt", "no-annotations"])
def test_hand_cases_equal_the_official_code(where):
    gt, pred = _hand_case(where)
    thr = ev.default_thresholds("thumos14")
    res = ev.detection_map(gt, pred)
    assert res["mAP"] == pytest.approx([5 / 6] * 7, abs=1e-15)
    ap, classes = official_map(gt, pred, thr)
    assert classes == ["Jump"]
    np.testing.assert_allclose(res["mAP"], ap.mean(axis=1), rtol=0, atol=1e-12)
    assert res["num_pred"] == 3 and res["dropped"]["unknown_video"] == 0
    # the opt-in drops the prediction of a video outside the subset, never one of a subset video
    if where == "e":
        res = ev.detection_map(gt, pred, drop_unknown_videos=True)
        assert res["mAP"] == pytest.approx([5 / 6] * 7, abs=1e-15)
    else:
        with pytest.warns(UserWarning, match="1 prediction"):
            res = ev.detection_map(gt, pred, drop_unknown_videos=True)
        assert res["mAP"] == [1.0] * 7 and res["num_pred"] == 2


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dataset", ["thumos14", "activitynet"])
def test_random_cases_with_outside_videos_equal_official(seed, dataset):
    gt, pred = random_files(seed, outside=40 + 20 * seed)
    thr = ev.default_thresholds(dataset)
    res = ev.detection_map(gt, pred, dataset=dataset)
    ap, classes = official_map(gt, pred, thr)
    np.testing.assert_allclose(res["mAP"], ap.mean(axis=1), rtol=0, atol=1e-9)
    for c, name in enumerate(classes):
        np.testing.assert_allclose(res["per_class"][name], ap[:, c], rtol=0, atol=1e-9)
    assert res["num_pred"] == sum(len(v) for v in pred["results"].values())
    with pytest.warns(UserWarning, match="not in the ground-truth subset"):
        dropped = ev.detection_map(gt, pred, dataset=dataset, drop_unknown_videos=True)
    assert dropped["average"] >= res["average"]  # dropping false positives can only help


def test_cli_flag_and_dropped_line(tmp_path):
    gt, pred = _hand_case("zzz")
    pred["results"]["a"].append({"label": "Fly", "score": 0.1, "segment": [0, 1]})
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(gt))
    p.write_text(json.dumps(pred))
    cmd = [sys.executable, "-m", "sal_ext.evaluate", "--gt", str(g), "--pred", str(p), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["mAP"] == pytest.approx([5 / 6] * 7, abs=1e-12)
    assert "1 prediction(s) with a label absent from the ground truth dropped" in r.stdout
    assert "1 video(s) outside the subset counted as false positives" in r.stdout
    r = subprocess.run(cmd + ["--drop-unknown-videos"], capture_output=True, text=True, timeout=120)
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["mAP"] == [1.0] * 7 and data["dropped"] == {"unknown_label": 1, "unknown_video": 1}


@pytest.mark.parametrize("seed", [0, 1])
def test_average_recall_counts_outside_proposals_like_official(seed):
    import official_anet as official
    gt, pred = random_files(seed, n_videos=10, n_pred=300, outside=60)
    for d in pred["results"].values():
        for it in d:
            it.pop("label")
    res = ev.average_recall_vs_proposals(gt, pred, max_avg_nr_proposals=10)
    subset, videos, classes, gv, gl, gs = ev.load_ground_truth(gt)
    pv, _, ps, pseg = ev.load_predictions(pred, videos, classes, with_labels=False)
    assert (pv >= len(videos)).sum() > 0  # outside proposals are there, and count in the ratio
    recall, ar, an = official.average_recall_vs_avg_nr_proposals(gv, gs, pv, pseg, ps, 10, np.linspace(0.5, 0.95, 10))
    np.testing.assert_allclose(res["ar"], ar, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["an"], an, rtol=0, atol=1e-12)
