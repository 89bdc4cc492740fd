"""Random ground-truth/prediction files for the evaluator tests, and the official ActivityNet
flow on them (classes from the ground truth of the subset, every prediction of a known label
in the per-class lists, whatever its video), computed with the numpy port official_anet."""
import numpy as np

import official_anet as official


def random_files(seed=0, n_videos=8, n_classes=4, n_pred=500, outside=0):
    """`outside` > 0 also puts that many predictions on videos the subset does not annotate:
    a video of another subset, videos absent from the ground truth and a subset video without
    annotations (the official code counts all of them as false positives)."""
    rng = np.random.default_rng(seed)
    names = [f"video_{i:03d}" for i in range(n_videos)]
    classes = [f"Class{c}" for c in range(n_classes)]
    db, results = {}, {}
    for i, v in enumerate(names):
        anns = []
        for _ in range(rng.integers(1, 6)):
            s = int(rng.integers(0, 40))
            anns.append({"label": classes[rng.integers(n_classes)], "segment": [s * 0.1, (s + int(rng.integers(1, 15))) * 0.1]})
        db[v] = {"subset": "test", "annotations": anns}
        results[v] = []
    db["train_video"] = {"subset": "validation", "annotations": [{"label": "TrainOnly", "segment": [0, 1]}]}
    if outside:
        db["empty_test"] = {"subset": "test", "annotations": []}
    scores = rng.permutation(n_pred + outside) / (n_pred + outside)
    for k in range(n_pred):
        v = names[rng.integers(n_videos)]
        anns = db[v]["annotations"]
        if rng.random() < 0.6:
            a = anns[rng.integers(len(anns))]
            s = a["segment"][0] + int(rng.integers(-3, 4)) * 0.1
            e = a["segment"][1] + int(rng.integers(-3, 4)) * 0.1
            lab = a["label"]
        else:
            s = int(rng.integers(0, 40)) * 0.1
            e = s + int(rng.integers(1, 15)) * 0.1
            lab = classes[rng.integers(n_classes)]
        s, e = min(s, e), max(s, e) + 0.05
        results[v].append({"label": lab, "score": float(scores[k]), "segment": [s, e]})
    others = ["train_video", "empty_test", "ghost_a", "ghost_b"]
    for k in range(outside):
        v = others[rng.integers(len(others))]
        s = int(rng.integers(0, 40)) * 0.1
        results.setdefault(v, []).append({"label": classes[rng.integers(n_classes)],
                                          "score": float(scores[n_pred + k]), "segment": [s, s + 1.0]})
    return {"database": db}, {"results": results}


def official_map(gt, pred, thr, subset="test"):
    """[n_tiou, n_classes] AP and the class names, as the official evaluator computes them."""
    classes, gv, gl, gs = {}, [], [], []
    vids = {}
    for v, d in gt["database"].items():
        if d["subset"] != subset:
            continue
        for a in d["annotations"]:
            gv.append(vids.setdefault(v, len(vids)))
            gl.append(classes.setdefault(a["label"], len(classes)))
            gs.append(a["segment"])
    pv, pl, ps, pseg = [], [], [], []
    for v, items in pred["results"].items():
        for it in items:
            pv.append(vids.setdefault(v, len(vids)))  # a video without ground truth: never matches
            pl.append(classes[it["label"]])           # the official KeyError on unknown labels
            ps.append(it["score"])
            pseg.append(it["segment"])
    ap = official.official_ap(np.array(pv), np.array(pl), np.array(ps), np.array(pseg, float).reshape(-1, 2),
                              np.array(gv), np.array(gl), np.array(gs, float), thr, len(classes))
    return ap, list(classes)


def thumos_like_files(seed=0, n_videos=10, n_classes=4, n_pred=400, outside=20, n_amb=8, ties=False):
    """Seconds on a free grid (exercises the snippet rounding), segments >= 1 s (no
    zero-length segment after rounding to 0.64 s snippets), 'Ambiguous' annotations in the
    ground truth, and ambiguous rows for a separate list. `ties`: scores from a few values."""
    rng = np.random.default_rng(seed)
    names = [f"video_test_{i:07d}" for i in range(n_videos)]
    classes = [f"Action{c}" for c in range(n_classes)]
    db, results = {}, {v: [] for v in names}
    for v in names:
        anns = []
        for _ in range(rng.integers(1, 6)):
            s = float(rng.uniform(0, 60))
            anns.append({"label": classes[rng.integers(n_classes)], "segment": [s, s + float(rng.uniform(1, 8))]})
        if rng.random() < 0.5:
            s = float(rng.uniform(0, 60))
            anns.append({"label": "Ambiguous", "segment": [s, s + float(rng.uniform(0.5, 4))]})
        db[v] = {"subset": "test", "annotations": anns}
    db["video_validation_1"] = {"subset": "validation", "annotations": [{"label": classes[0], "segment": [1.0, 5.0]}]}
    amb = []
    for _ in range(n_amb):
        s = float(rng.uniform(0, 60))
        amb.append((names[rng.integers(n_videos)], s, s + float(rng.uniform(0.3, 4))))
    n = n_pred + outside
    scores = (rng.integers(0, 5, n) / 5.0 + 0.1) if ties else rng.permutation(n) / n + 1e-3
    for k in range(n):
        if k < n_pred:
            v = names[rng.integers(n_videos)]
            real = [a for a in db[v]["annotations"] if a["label"] != "Ambiguous"]
            if rng.random() < 0.6:
                a = real[rng.integers(len(real))]
                s0, e0 = a["segment"]
                d = (e0 - s0) * rng.normal(0, 0.25, 2)
                s, e = s0 + d[0], max(e0 + d[1], s0 + d[0] + 1.0)
                lab = a["label"] if rng.random() < 0.85 else classes[rng.integers(n_classes)]
            else:
                s = float(rng.uniform(0, 60))
                e, lab = s + float(rng.uniform(1, 8)), classes[rng.integers(n_classes)]
        else:
            v = ["video_validation_1", "video_test_9999999"][rng.integers(2)]
            s = float(rng.uniform(0, 10))
            e, lab = s + float(rng.uniform(1, 5)), classes[rng.integers(n_classes)]
        results.setdefault(v, []).append({"label": lab, "score": float(scores[k]), "segment": [float(s), float(e)]})
    return {"database": db}, {"results": results}, amb
