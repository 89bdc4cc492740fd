"""The three protocols of sal_ext.evaluate (issue 9): hand cases computed by hand, randomized
agreement with independent restatements of the original code (official_wtalc.py,
official_th14.py), the side-by-side table, and the average labels (issue 10)."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import official_th14
import official_wtalc
from eval_cases import thumos_like_files
from sal_ext import evaluate as ev


def _one(segments_scores, gt_segments, label="Jump", video="v"):
    gt = {"database": {video: {"subset": "test", "annotations": [{"label": label, "segment": s} for s in gt_segments]}}}
    pred = {"results": {video: [{"label": label, "score": sc, "segment": s} for s, sc in segments_scores]}}
    return gt, pred


# --------------------------------------------------------------------------- wtalc
def test_wtalc_hand_case():
    # Ground truth [1, 5] s -> snippets round(1.5625) = 2, round(7.8125) = 8: [2, 8].
    # p2 0.95 [10, 12] s -> [16, 19]; the ambiguous [11.5, 13] s -> range(18, 20) shares 18: removed.
    # p1 0.90 [1.6, 4.8] s -> round(2.5) = 2 (half to even), round(7.5) = 8: [2, 8], tIoU 1.
    # p3 0.70 [0, 0.9] s -> [0, 1]: tIoU 0, a false positive after the only true positive.
    gt, pred = _one([([10.0, 12.0], 0.95), ([1.6, 4.8], 0.9), ([0.0, 0.9], 0.7)], [[1.0, 5.0]])
    amb = [("v", 11.5, 13.0)]
    res = ev.detection_map(gt, pred, [0.5, 0.9], protocol="wtalc", ambiguous=amb)
    assert res["mAP"] == [1.0, 1.0]  # p1 first: AP 1 at both thresholds
    assert res["dropped"]["ambiguous"] == 1 and res["ambiguous_segments"] == 1
    # without the filter p2 (a false positive) ranks first: precision 1/2 at recall 1
    res = ev.detection_map(gt, pred, [0.5, 0.9], protocol="wtalc", ambiguous=[])
    assert res["mAP"] == [0.5, 0.5] and res["dropped"]["ambiguous"] == 0
    # the same in seconds (activitynet): p1's tIoU is 3.2 / 4 = 0.8: a miss at 0.9
    res = ev.detection_map(gt, pred, [0.5, 0.9])
    assert res["mAP"] == [0.5, 0.0]
    # an 'Ambiguous' annotation in the ground truth is the same ambiguous segment, not a class
    gt["database"]["v"]["annotations"].append({"label": "Ambiguous", "segment": [11.5, 13.0]})
    res = ev.detection_map(gt, pred, [0.5, 0.9], protocol="wtalc")
    assert res["mAP"] == [1.0, 1.0] and list(res["per_class"]) == ["Jump"]


def test_wtalc_snippet_rate_and_errors():
    # 10 fps / 10 frames per snippet: 1 snippet a second; [1.6, 4.8] -> [2, 5] vs [1, 5]: 3/4
    gt, pred = _one([([1.6, 4.8], 0.9)], [[1.0, 5.0]])
    res = ev.detection_map(gt, pred, [0.7, 0.8], protocol="wtalc", ambiguous=[], fps=10, frames_per_snippet=10)
    assert res["mAP"] == [1.0, 0.0]
    for kw in ({"fps": 0}, {"frames_per_snippet": -1}, {"fps": float("nan")}, {"fps": "25"}):
        with pytest.raises(ValueError, match=list(kw)[0]):
            ev.detection_map(gt, pred, protocol="wtalc", ambiguous=[], **kw)
    with pytest.warns(UserWarning, match="no ambiguous segments"):
        ev.detection_map(gt, pred, protocol="wtalc")
    with pytest.raises(ValueError, match="protocol"):
        ev.detection_map(gt, pred, protocol="voc")


def test_wtalc_zero_length_after_rounding_never_matches():
    # [1.0, 1.2] s -> round(1.5625) = 2, round(1.875) = 2: zero length, for both (documented;
    # the original's NaN tIoU would match them); [1.0, 5.0] s -> [2, 8] is found
    gt, pred = _one([([1.0, 1.2], 0.9), ([1.0, 5.0], 0.8)], [[1.0, 1.2], [1.0, 5.0]])
    res = ev.detection_map(gt, pred, [0.5], protocol="wtalc", ambiguous=[])
    # ranking: FP (0.9), TP (0.8) over 2 ground truths: precision 1/2 at recall 1/2 -> AP 1/4
    assert res["mAP"] == [0.25]


@pytest.mark.parametrize("seed", range(6))
def test_wtalc_equals_restatement(seed):
    gt, pred, amb = thumos_like_files(seed, ties=seed % 2 == 1)
    thr = np.linspace(0.1, 0.9, 9)
    res = ev.detection_map(gt, pred, protocol="wtalc", ambiguous=amb)
    gt_amb = [(v, a["segment"][0], a["segment"][1]) for v, d in gt["database"].items() if d["subset"] == "test"
              for a in d["annotations"] if a["label"] == "Ambiguous"]
    ap, classes, n_filtered = official_wtalc.wtalc_ap(gt, pred, [(v, "Ambiguous", s, e) for v, s, e in amb + gt_amb], thr)
    assert res["tiou"] == thr.tolist() and res["dropped"]["ambiguous"] == n_filtered > 0
    np.testing.assert_allclose(res["mAP"], ap.mean(axis=1), rtol=0, atol=1e-12)
    for c, name in enumerate(classes):
        np.testing.assert_allclose(res["per_class"][name], ap[:, c], rtol=0, atol=1e-12)
    assert set(res["averages"]) == {"0.1:0.5", "0.3:0.7", "0.1:0.7", "0.1:0.9"}
    assert res["averages"]["0.1:0.7"] == pytest.approx(np.mean(res["mAP"][:7]), abs=1e-15)


# --------------------------------------------------------------------------- thumos14
def test_thumos14_hand_cases():
    # A: each ground truth takes the free detection of largest overlap, whatever its score:
    # [0, 10] takes d2 (overlap 1), d1 (0.6) is a false positive ranked first: AP = (1/2) / 1.
    # ActivityNet matches d1 first (0.6 >= 0.5): AP 1.
    gt, pred = _one([([0.0, 6.0], 0.9), ([0.0, 10.0], 0.5)], [[0.0, 10.0]])
    assert ev.detection_map(gt, pred, [0.5], protocol="thumos14", ambiguous=[])["mAP"] == [0.5]
    assert ev.detection_map(gt, pred, [0.5])["mAP"] == [1.0]
    # D: an ambiguous [5, 7] overlaps the unmatched d1: removed, so d2 alone: AP 1
    assert ev.detection_map(gt, pred, [0.5], protocol="thumos14", ambiguous=[("v", 5.0, 7.0)])["mAP"] == [1.0]
    # B: overlap must be strictly greater: 6 / 10 = 0.6 is not > 0.6 (ActivityNet: >= matches)
    gt, pred = _one([([0.0, 6.0], 0.9)], [[0.0, 10.0]])
    assert ev.detection_map(gt, pred, [0.6], protocol="thumos14", ambiguous=[])["mAP"] == [0.0]
    assert ev.detection_map(gt, pred, [0.6])["mAP"] == [1.0]
    # C: AP is not interpolated: FP, TP, TP over 2 ground truths -> (1/2 + 2/3) / 2 = 7/12;
    # ActivityNet's interpolated AP: precision 2/3 over all recall -> 2/3
    gt, pred = _one([([50.0, 60.0], 0.9), ([0.0, 10.0], 0.8), ([20.0, 30.0], 0.7)], [[0.0, 10.0], [20.0, 30.0]])
    assert ev.detection_map(gt, pred, [0.5], protocol="thumos14", ambiguous=[])["mAP"] == [pytest.approx(7 / 12, abs=1e-15)]
    assert ev.detection_map(gt, pred, [0.5])["mAP"] == [pytest.approx(2 / 3, abs=1e-15)]
    # a class without any detection: AP 0; a detection on a video outside the subset: a false positive
    pred["results"]["elsewhere"] = [{"label": "Jump", "score": 0.95, "segment": [0.0, 10.0]}]
    res = ev.detection_map(gt, pred, [0.5], protocol="thumos14", ambiguous=[])
    assert res["mAP"] == [pytest.approx((1 / 3 + 2 / 4) / 2, abs=1e-15)]  # FP, FP, TP, TP


@pytest.mark.parametrize("seed", range(6))
def test_thumos14_equals_restatement(seed):
    gt, pred, amb = thumos_like_files(seed, ties=seed % 2 == 1)
    thr = np.linspace(0.1, 0.7, 7)
    res = ev.detection_map(gt, pred, protocol="thumos14", ambiguous=amb)
    gtevents, detevents, classes = official_th14.events_from_json(gt, pred, ambiguous=amb)
    want = np.array(official_th14.th14_map(gtevents, detevents, classes, thr))
    np.testing.assert_allclose(res["mAP"], want.mean(axis=1), rtol=0, atol=1e-12)
    for c, name in enumerate(classes):
        np.testing.assert_allclose(res["per_class"][name], want[:, c], rtol=0, atol=1e-12)
    assert 0.02 < res["average"] < 0.9


def test_thumos14_challenge_folder(tmp_path):
    gt, pred, amb = thumos_like_files(3)
    classes = sorted({a["label"] for d in gt["database"].values() for a in d["annotations"]} - {"Ambiguous"})
    (tmp_path / "detclasslist.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(reversed(classes))))
    rows = {c: [] for c in classes + ["Ambiguous"]}
    for v, d in gt["database"].items():
        for a in d["annotations"]:
            rows[a["label"]].append(f"{v} {a['segment'][0]!r} {a['segment'][1]!r}\n" if d["subset"] == "test" else "")
    rows["Ambiguous"] += [f"{v} {s!r} {e!r}\n" for v, s, e in amb]
    for c, lines in rows.items():
        (tmp_path / f"{c}_test.txt").write_text("".join(lines))
    (tmp_path / "Unlisted_test.txt").write_text("video_test_0000000 1 2\n")  # not in detclasslist: ignored
    for protocol in ("thumos14", "wtalc"):
        a = ev.detection_map(str(tmp_path), pred, protocol=protocol)
        b = ev.detection_map(gt, pred, protocol=protocol, ambiguous=amb)
        np.testing.assert_allclose(a["mAP"], b["mAP"], rtol=0, atol=1e-12)  # classes in another order
        assert a["per_class"] == b["per_class"]
        assert list(a["per_class"]) == list(reversed(classes))  # detclasslist.txt's order
    (tmp_path / "Ambiguous_test.txt").write_text("video_test_0000001 1.0\n")
    with pytest.raises(ValueError, match=r"Ambiguous_test.txt, line 1: expected 3 fields"):
        ev.detection_map(str(tmp_path), pred, protocol="thumos14")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no <class>_<subset>.txt"):
        ev.detection_map(str(tmp_path / "empty"), pred)


def test_ambiguous_file_formats(tmp_path):
    gt, pred = _one([([0.0, 6.0], 0.9), ([0.0, 10.0], 0.5)], [[0.0, 10.0]])
    for text in ("v 5.0 7.0\n", "v Ambiguous 5.0 7.0\n\n"):  # the challenge's and W-TALC's format
        f = tmp_path / "amb.txt"
        f.write_text(text)
        assert ev.detection_map(gt, pred, [0.5], protocol="thumos14", ambiguous=str(f))["mAP"] == [1.0]
    f.write_text("v Ambiguous five 7.0\n")
    with pytest.raises(ValueError, match="line 1: 'five' is not a number"):
        ev.detection_map(gt, pred, protocol="thumos14", ambiguous=str(f))
    with pytest.raises(TypeError, match="ambiguous"):
        ev.detection_map(gt, pred, protocol="thumos14", ambiguous=[("v", 1.0)])


# --------------------------------------------------------------------------- averages (issue 10)
def test_average_labels_say_what_they_average():
    gt, pred, _ = thumos_like_files(0)
    res = ev.detection_map(gt, pred)
    assert list(res["averages"]) == ["0.1:0.5", "0.3:0.7", "0.1:0.7"]
    res = ev.detection_map(gt, pred, ev.parse_tiou("0.5:0.95:0.05"))  # covers none of THUMOS14's ranges
    assert res["averages"] == {}
    res = ev.detection_map(gt, pred, ev.parse_tiou("0.1:0.7:0.05"))
    assert list(res["averages"]) == ["0.1:0.5:0.05", "0.3:0.7:0.05", "0.1:0.7:0.05"]
    assert res["averages"]["0.3:0.7:0.05"] == pytest.approx(np.mean(res["mAP"][4:]), abs=1e-15)
    res = ev.detection_map(gt, pred, [0.5, 0.1])  # unsorted, two points: the list
    assert res["averages"] == {"0.1,0.5": pytest.approx(np.mean(res["mAP"]), abs=1e-15)}
    res = ev.detection_map(gt, pred, dataset="activitynet")
    assert list(res["averages"]) == ["0.5:0.95"]


def test_cli_average_lines(tmp_path):
    gt, pred, _ = thumos_like_files(1)
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(gt))
    p.write_text(json.dumps(pred))
    r = subprocess.run([sys.executable, "-m", "sal_ext.evaluate", "--gt", str(g), "--pred", str(p),
                        "--tiou", "0.5:0.95:0.05"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "average mAP@" not in r.stdout and "0.95" in r.stdout


# --------------------------------------------------------------------------- --protocol all
def test_protocol_all_table_and_json(tmp_path, capsys):
    gt, pred, amb = thumos_like_files(2)
    g, p, a = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "amb.txt"
    g.write_text(json.dumps(gt))
    p.write_text(json.dumps(pred))
    a.write_text("".join(f"{v} Ambiguous {s!r} {e!r}\n" for v, s, e in amb))
    ev.main(["--gt", str(g), "--pred", str(p), "--protocol", "all", "--ambiguous", str(a), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    assert list(data["rows"]) == ["activitynet", "wtalc", "thumos14"]
    assert data["tiou"] == pytest.approx(np.linspace(0.1, 0.9, 9).tolist(), abs=1e-12)
    for name in data["rows"]:
        want = ev.detection_map(gt, pred, protocol=name, ambiguous=str(a))
        assert data["protocols"][name]["mAP"] == want["mAP"]
        got = [m for m in data["rows"][name]["mAP"] if m is not None]
        assert got == want["mAP"] and data["rows"][name]["averages"] == want["averages"]
    assert data["rows"]["activitynet"]["mAP"][7:] == [None, None]  # 0.8, 0.9: not its thresholds
    table = [line for line in out if line.split()[0] in ("mAP", "activitynet", "wtalc", "thumos14")]
    assert len(table) == 4 and table[0].split()[2:11] == [f"{t:g}" for t in np.linspace(0.1, 0.9, 9)]
    assert "avg 0.1:0.7" in table[0] and table[1].split()[8:10] == ["-", "-"]
    res = ev.detection_map_protocols(gt, pred, ["thumos14", "activitynet"], ambiguous=amb, tiou_thresholds=[0.3, 0.5])
    assert list(res) == ["thumos14", "activitynet"] and res["thumos14"]["tiou"] == [0.3, 0.5]
    with pytest.raises(ValueError, match="protocol"):
        ev.detection_map_protocols(gt, pred, ["nope"])


def test_protocol_all_warns_once():
    gt, pred, _ = thumos_like_files(4)
    pred["results"]["video_test_0000000"].append({"label": "Nope", "score": 0.5, "segment": [0.0, 1.0]})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ev.detection_map_protocols(gt, pred)
    msgs = [str(w.message) for w in rec]
    assert sum("'Nope'" in m for m in msgs) == 1, msgs


def test_evaluator_does_not_import_the_training_stack_nor_torch():
    # `import sal_ext` and the evaluator load neither torch nor the training code; sal_ext.ops
    # still works as an attribute (loaded then, with torch)
    code = ("import json, sys, sal_ext; light = 'torch' not in sys.modules; import sal_ext.evaluate; "
            "bad = [m for m in sys.modules if m.startswith('sal_ext.') and m.split('.')[1] in "
            "('model', 'losses', 'data', 'train', 'inference', 'infer', 'config', 'ops')]; "
            "torch = [m for m in sys.modules if m.split('.')[0] == 'torch']; "
            "print(json.dumps([light, bad, torch, callable(sal_ext.ops.detection_ap), 'torch' in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [True, [], [], True, True]


def _imported(importtime_stderr: str):
    """Module names from `python -X importtime` output."""
    return [ln.split("|")[-1].strip() for ln in importtime_stderr.splitlines()
            if ln.startswith("import time:") and ln.split("|")[1].strip().isdigit()]


def test_evaluate_command_imports_no_torch(tmp_path):
    # the command itself, as the issue measured it: `python -X importtime -m sal_ext.evaluate ...`
    gt, pred, amb = thumos_like_files(3)
    g, p, a = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "amb.txt"
    g.write_text(json.dumps(gt))
    p.write_text(json.dumps(pred))
    a.write_text("".join(f"{v} {s!r} {e!r}\n" for v, s, e in amb))
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "sal_ext.evaluate", "--gt", str(g), "--pred", str(p),
                        "--protocol", "all", "--ambiguous", str(a), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert list(json.loads(r.stdout.splitlines()[-1])["rows"]) == ["activitynet", "wtalc", "thumos14"]
    mods = _imported(r.stderr)
    assert {"numpy", "sal_ext.numpy_ops.detection", "sal_ext.evaluation.activitynet"} <= set(mods)  # parsed
    assert [m for m in mods if m.split(".")[0] == "torch" or m.startswith("sal_ext.ops")] == []


def test_evaluator_without_the_extension(tmp_path):
    # no sal_ext._C (a build without kernels): every protocol on the numpy fallback, the same
    # numbers as the kernel's to 1e-12, still without torch; backend="kernel" says why it can't
    gt, pred, amb = thumos_like_files(4)
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_text(json.dumps(gt))
    p.write_text(json.dumps(pred))
    code = ("import json, sys; sys.modules['sal_ext._C'] = None\n"
            "from sal_ext import _ext, evaluate as ev\n"
            f"amb = {amb!r}\n"
            f"res = {{k: ev.detection_map({str(g)!r}, {str(p)!r}, protocol=k, ambiguous=amb)['ap'].tolist()\n"
            "       for k in ('activitynet', 'wtalc', 'thumos14')}\n"
            "try:\n"
            f"    ev.detection_map({str(g)!r}, {str(p)!r}, backend='kernel')\n"
            "except RuntimeError as exc:\n"
            "    err = str(exc)\n"
            "print(json.dumps([_ext.available(), 'torch' in sys.modules, err, res]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    available, torch_loaded, err, res = json.loads(r.stdout)
    assert not available and not torch_loaded
    assert err.startswith("detection_ap: no cpu kernel was built") and "\n" not in err
    for k, ap in res.items():
        want = ev.detection_map(str(g), str(p), protocol=k, ambiguous=amb, backend="kernel")["ap"]
        assert (want[~np.isnan(want)] > 0).any()
        np.testing.assert_allclose(np.array(ap, dtype=float), want, rtol=0, atol=1e-12)
