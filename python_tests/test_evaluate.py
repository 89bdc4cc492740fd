import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import official_anet as official
from eval_cases import official_map as _official_map, random_files as _random_files
from sal_ext import evaluate as ev


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dataset", ["thumos14", "activitynet"])
def test_detection_map_equals_official(seed, dataset):
    gt, pred = _random_files(seed)
    res = ev.detection_map(gt, pred, dataset=dataset)
    thr = ev.default_thresholds(dataset)
    ap, classes = _official_map(gt, pred, thr)
    np.testing.assert_allclose(res["mAP"], ap.mean(axis=1), rtol=0, atol=1e-9)
    assert res["tiou"] == thr.tolist()
    assert abs(res["average"] - ap.mean()) < 1e-9
    assert list(res["per_class"]) == classes
    for c, name in enumerate(classes):
        np.testing.assert_allclose(res["per_class"][name], ap[:, c], rtol=0, atol=1e-9)
    assert res["subset"] == "test" and res["num_pred"] == 500
    assert res["num_gt"] == sum(len(d["annotations"]) for d in gt["database"].values() if d["subset"] == "test")
    if dataset == "thumos14":
        assert set(res["averages"]) == {"0.1:0.5", "0.3:0.7", "0.1:0.7"}
        assert abs(res["averages"]["0.1:0.5"] - np.mean(res["mAP"][:5])) < 1e-12
        assert abs(res["averages"]["0.3:0.7"] - np.mean(res["mAP"][2:])) < 1e-12
    else:
        assert set(res["averages"]) == {"0.5:0.95"}
    assert 0.05 < res["average"] < 1.0  # not a trivial case


def test_detection_map_paths_and_arrays(tmp_path):
    gt, pred = _random_files(5)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    a = ev.detection_map(str(tmp_path / "gt.json"), tmp_path / "pred.json", tiou_thresholds=[0.3, 0.5])
    b = ev.detection_map(gt, pred, tiou_thresholds=np.array([0.3, 0.5]))
    assert a["mAP"] == b["mAP"] and a["tiou"] == [0.3, 0.5]
    # the array form (for the trainer), tensors in, with the torch fallback too
    subset, videos, classes, gv, gl, gs = ev.load_ground_truth(gt)
    pv, pl, ps, pseg = ev.load_predictions(pred, videos, classes)
    for backend in ("kernel", "torch"):
        c = ev.detection_map_arrays(torch.as_tensor(pv), torch.as_tensor(pl), torch.as_tensor(ps).float(),
                                    torch.as_tensor(pseg), gv, gl, gs, len(classes), [0.3, 0.5],
                                    class_names=classes, backend=backend)
        np.testing.assert_allclose(c["mAP"], a["mAP"], rtol=0, atol=1e-6)  # float32 scores: same order
    c = ev.detection_map_arrays(pv, pl, ps, pseg, gv, gl, gs, len(classes) + 3, [0.3, 0.5])
    assert c["mAP"] == a["mAP"]  # classes without ground truth are not averaged
    assert sorted(c["per_class"]) == list(range(len(classes)))


def _small():
    gt = {"database": {
        "a": {"subset": "test", "annotations": [{"label": "Jump", "segment": [0.0, 10.0]},
                                                {"label": "Run", "segment": [20.0, 30.0]}]},
        "b": {"subset": "test", "annotations": [{"label": "Jump", "segment": [5.0, 6.0]}]},
        "c": {"subset": "train", "annotations": [{"label": "Swim", "segment": [0.0, 1.0]}]},
    }}
    pred = {"results": {
        "a": [{"label": "Jump", "score": 0.9, "segment": [0.0, 10.0]},
              {"label": "Run", "score": 0.8, "segment": [20.0, 30.0]}],
        "b": [{"label": "Jump", "score": 0.7, "segment": [5.0, 6.0]}],
    }}
    return gt, pred


def test_perfect_detector_and_missing_class():
    gt, pred = _small()
    res = ev.detection_map(gt, pred)
    assert res["mAP"] == [1.0] * 7 and res["average"] == 1.0
    assert res["num_gt"] == 3 and res["num_pred"] == 3
    pred["results"]["a"] = pred["results"]["a"][:1]  # no prediction of class Run: AP 0
    res = ev.detection_map(gt, pred)
    assert res["per_class"]["Run"] == [0.0] * 7 and res["mAP"] == [0.5] * 7
    # subset "train" and "all": the class list follows the subset
    with pytest.warns(UserWarning, match="2 prediction"):  # Jump is no class of "train"
        res = ev.detection_map(gt, pred, subset="train")
    assert list(res["per_class"]) == ["Swim"] and res["mAP"] == [0.0] * 7
    with pytest.raises(ValueError, match="subset 'nope'"):
        ev.detection_map(gt, pred, subset="nope")


def test_subset_default_all_when_no_test():
    gt, pred = _small()
    for d in gt["database"].values():
        d["subset"] = "validation"
    res = ev.detection_map(gt, pred)
    assert res["subset"] is None and set(res["per_class"]) == {"Jump", "Run", "Swim"}


def test_unknown_label_warns_once_and_unknown_videos_are_false_positives():
    gt, pred = _small()
    pred["results"]["a"] += [{"label": "Fly", "score": 0.99, "segment": [0, 1]},
                             {"label": "Fly", "score": 0.98, "segment": [0, 1]},
                             {"label": "Dive", "score": 0.97, "segment": [0, 1]}]
    pred["results"]["zzz"] = [{"label": "Jump", "score": 0.99, "segment": [0, 10]}]
    pred["results"]["c"] = [{"label": "Jump", "score": 0.99, "segment": [0, 10]}]  # train video
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = ev.detection_map(gt, pred)
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 1, msgs
    assert "'Fly'" in msgs[0] and "'Dive'" in msgs[0] and "3 prediction" in msgs[0]
    # Jump ranking: zzz 0.99 FP, c 0.99 FP, a 0.9 TP, b 0.7 TP: precision 1/3 at recall 1/2,
    # 1/2 at recall 1; interpolated AP = 0.5 * 1/2 + 0.5 * 1/2 = 0.5; Run: 1.0; mAP 0.75
    assert res["per_class"]["Jump"] == [0.5] * 7 and res["mAP"] == [0.75] * 7
    assert res["num_pred"] == 5 and res["unknown_videos"] == 2
    assert res["dropped"] == {"unknown_label": 3, "unknown_video": 0}
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = ev.detection_map(gt, pred, drop_unknown_videos=True)  # the opt-in: the old numbers
    msgs = [str(w.message) for w in rec]
    assert len(msgs) == 2, msgs
    assert any("'zzz'" in m and "'c'" in m and "2 prediction" in m for m in msgs)
    assert res["mAP"] == [1.0] * 7 and res["num_pred"] == 3
    assert res["dropped"] == {"unknown_label": 3, "unknown_video": 2}


@pytest.mark.parametrize("mutate, match", [
    (lambda g, p: g.pop("database"), "`database`"),
    (lambda g, p: p.pop("results"), "`results`"),
    (lambda g, p: g["database"]["b"].pop("annotations"), "'b'.*`annotations`"),
    (lambda g, p: g["database"]["b"].pop("subset"), "'b'.*`subset`"),
    (lambda g, p: g["database"]["a"]["annotations"][1].pop("label"), "'a', annotation 1.*`label`"),
    (lambda g, p: g["database"]["a"]["annotations"][0].update(segment=[3.0, 1.0]), "'a', annotation 0.*end < start"),
    (lambda g, p: g["database"]["b"]["annotations"][0].update(segment=["x", 1.0]), "'b'.*`segment`"),
    (lambda g, p: g["database"]["b"]["annotations"][0].update(segment=[1.0]), "'b'.*`segment`"),
    (lambda g, p: p["results"]["b"][0].update(score=float("nan")), "'b', entry 0.*`score`"),
    (lambda g, p: p["results"]["b"][0].update(score="high"), "'b', entry 0.*`score`"),
    (lambda g, p: p["results"]["a"][1].pop("score"), "'a', entry 1.*`score`"),
    (lambda g, p: p["results"]["a"][1].update(segment=[5, 4]), "'a', entry 1.*end < start"),
    (lambda g, p: p["results"]["a"][1].update(segment=[0, float("inf")]), "'a', entry 1.*finite"),
    (lambda g, p: p["results"]["a"][0].update(segment=None), "'a', entry 0.*`segment`"),
    (lambda g, p: p["results"]["a"][0].update(label=None), "'a', entry 0.*`label`"),
])
def test_malformed_inputs(mutate, match):
    gt, pred = _small()
    mutate(gt, pred)
    with pytest.raises(ValueError, match=match):
        ev.detection_map(gt, pred)


def test_zero_length_is_legal_and_never_matches():
    gt, pred = _small()
    gt["database"]["b"]["annotations"][0]["segment"] = [5.0, 5.0]
    pred["results"]["b"][0]["segment"] = [5.0, 5.0]
    res = ev.detection_map(gt, pred)
    np.testing.assert_allclose(res["per_class"]["Jump"], [0.5] * 7)  # one of two Jump found


def test_parse_tiou():
    assert np.array_equal(ev.parse_tiou("0.1:0.7:0.1"), np.linspace(0.1, 0.7, 7))
    assert np.array_equal(ev.parse_tiou("0.5:0.95:0.05"), np.linspace(0.5, 0.95, 10))
    assert ev.parse_tiou("0.3, 0.5,0.7").tolist() == [0.3, 0.5, 0.7]
    assert ev.parse_tiou("0.5").tolist() == [0.5]
    for bad in ("a,b", "0.1:0.7", "0.1:0.7:0.25", "0.7:0.1:0.1", "0,0.5", "1.2", ""):
        with pytest.raises(ValueError, match="tiou"):
            ev.parse_tiou(bad)


def _write(tmp_path, gt, pred):
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(gt))
    p.write_text(json.dumps(pred))
    return str(g), str(p)


def test_cli_json_last_line(tmp_path, capsys):
    gt, pred = _random_files(3)
    g, p = _write(tmp_path, gt, pred)
    ev.main(["--gt", g, "--pred", p, "--json", "--per-class"])
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    want = ev.detection_map(g, p)
    assert data["tiou"] == want["tiou"] and data["mAP"] == want["mAP"] and data["average"] == want["average"]
    assert set(data["per_class"]) == set(want["per_class"])
    assert any("mAP" in line for line in out[:-1]) and any("0.1:0.5" in line for line in out[:-1])
    ev.main(["--gt", g, "--pred", p, "--json", "--tiou", "0.3,0.5"])
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["tiou"] == [0.3, 0.5] and "per_class" not in data
    ev.main(["--gt", g, "--pred", p, "--json", "--tiou", "0.5:0.95:0.05", "--dataset", "activitynet"])
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["tiou"] == np.linspace(0.5, 0.95, 10).tolist() and "0.5:0.95" in data["averages"]
    with pytest.raises(SystemExit):
        ev.main(["--gt", g, "--pred", p, "--tiou", "0.7:0.1:0.1"])
    assert "tiou" in capsys.readouterr().err
    missing = str(tmp_path / "missing.json")  # the message names the file, without "[Errno 2]"
    with pytest.raises(SystemExit):
        ev.main(["--gt", g, "--pred", missing])
    assert capsys.readouterr().err.strip() == f"sal_ext.evaluate: error: {missing}: No such file or directory"


def test_cli_subprocess(tmp_path):
    gt, pred = _small()
    g, p = _write(tmp_path, gt, pred)
    r = subprocess.run([sys.executable, "-m", "sal_ext.evaluate", "--gt", g, "--pred", p, "--json",
                        "--dataset", "activitynet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["mAP"] == [1.0] * 10 and data["average"] == 1.0
    gt["database"]["a"]["annotations"][0]["segment"] = [3, 1]
    g, p = _write(tmp_path, gt, pred)
    r = subprocess.run([sys.executable, "-m", "sal_ext.evaluate", "--gt", g, "--pred", p],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "end < start" in r.stderr


def test_average_recall_hand_case():
    gt = {"database": {
        "v1": {"subset": "test", "annotations": [{"label": "A", "segment": [0, 10]}]},
        "v2": {"subset": "test", "annotations": [{"label": "A", "segment": [0, 10]},
                                                 {"label": "B", "segment": [20, 30]}]},
    }}
    props = {"results": {
        "v1": [{"score": 0.9, "segment": [0, 10]}, {"score": 0.1, "segment": [50, 60]}],
        "v2": [{"score": 0.8, "segment": [20, 30]}, {"score": 0.7, "segment": [0, 4]},
               {"score": 0.2, "segment": [0, 10]}],
    }}
    res = ev.average_recall_vs_proposals(gt, props, max_avg_nr_proposals=2.5)
    # keep all 5 proposals; at fraction f of each video's list: v1 keeps int(2f), v2 int(3f)
    want = np.array([0.0] * 33 + [1 / 3] * 16 + [2 / 3] * 50 + [1.0])
    np.testing.assert_allclose(res["ar"], want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["an"], np.arange(1, 101) / 100 * 2.5, rtol=0, atol=1e-12)
    assert np.array(res["recall"]).shape == (10, 100)
    area = np.sum((want[1:] + want[:-1]) / 2 * 0.025)
    assert abs(res["area"] - area) < 1e-12 and abs(res["auc"] - 100 * area / 2.5) < 1e-9
    # fewer proposals: ratio = 1 * 2 / 5 -> v1 keeps int(0.8) = 0, v2 int(1.2) = 1 (the [20, 30] one)
    res = ev.average_recall_vs_proposals(gt, props, max_avg_nr_proposals=1)
    assert res["ar_at_max"] == pytest.approx(1 / 3)
    # a lower threshold lets [0, 4] (tIoU 0.4) recall v2's [0, 10]
    res = ev.average_recall_vs_proposals(gt, props, max_avg_nr_proposals=2.5, tiou_thresholds=[0.4])
    assert res["recall"][0][66] == pytest.approx(1.0)  # f = 0.67: v1 keeps 1, v2 keeps 2


def test_fast_and_checked_parsers_agree():
    gt, pred = _random_files(4)
    a = ev.detection_map(gt, pred)
    first = next(iter(pred["results"].values()))
    first[0]["score"] = np.float64(first[0]["score"])  # not a plain float: the item-by-item parser
    with pytest.raises(ev._SlowPath):
        ev._fast_predictions(pred["results"], {}, {}, True)
    b = ev.detection_map(gt, pred)
    assert a["mAP"] == b["mAP"] and a["num_pred"] == b["num_pred"]


@pytest.mark.parametrize("max_avg", [3, 10, 100])
def test_average_recall_equals_official(max_avg):
    gt, pred = _random_files(max_avg, n_videos=10, n_pred=400)
    gt["database"]["empty"] = {"subset": "test", "annotations": []}  # no GT: not in the video list
    for d in pred["results"].values():
        for it in d:
            it.pop("label")
    pred["results"]["video_002"] = []  # a GT video without proposals
    res = ev.average_recall_vs_proposals(gt, pred, max_avg_nr_proposals=max_avg)
    subset, videos, classes, gv, gl, gs = ev.load_ground_truth(gt)
    pv, _, ps, pseg = ev.load_predictions(pred, videos, classes, with_labels=False, what="proposals")
    thr = np.linspace(0.5, 0.95, 10)
    recall, ar, an = official.average_recall_vs_avg_nr_proposals(gv, gs, pv, pseg, ps, max_avg, thr)
    np.testing.assert_allclose(res["recall"], recall, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["ar"], ar, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["an"], an, rtol=0, atol=1e-12)
    assert abs(res["area"] - np.trapezoid(ar, an)) < 1e-9
    assert 0 < res["ar_at_max"] <= 1
