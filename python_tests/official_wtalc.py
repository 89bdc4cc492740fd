"""An independent restatement of the W-TALC / CO2-Net evaluation (the oracle for
sal_ext's protocol="wtalc"), written from harlanhong/MM2021-CO2-Net eval/eval_detection.py
(ground truth in snippets: round(t * 25 / 16)) and proposal_methods.py ``filter_segments``
(set-of-snippets IoU > 0 with an ambiguous segment removes the prediction), then the official
ActivityNet AP (official_anet) on snippet units. Predictions arrive in seconds here and are
converted with the same round(t * 25 / 16). Plain Python loops; Python's round.

Only change: where both snippet ranges are empty the original divides by zero; the prediction
is kept.
"""
import numpy as np

import official_anet as official


def filter_segments(segment_predict, videonames, ambilist, fps=25, frames=16):
    """segment_predict rows: [video index, start, end, ...] in snippets -> kept rows' indices."""
    keep = []
    for i in range(len(segment_predict)):
        vn = videonames[int(segment_predict[i][0])]
        hit = False
        for a in ambilist:
            if a[0] == vn:
                gt = range(int(round(float(a[-2]) * fps / frames)), int(round(float(a[-1]) * fps / frames)))
                pd = range(int(segment_predict[i][1]), int(segment_predict[i][2]))
                union = set(gt).union(set(pd))
                if not union:
                    continue
                if float(len(set(gt).intersection(set(pd)))) / float(len(union)) > 0:
                    hit = True
        if not hit:
            keep.append(i)
    return keep


def wtalc_ap(gt, pred, ambilist, thr, subset="test", fps=25, frames=16):
    """gt/pred: the JSON dicts; ambilist: [video, label, start, end] rows (strings ok).
    Returns ([n_tiou, n_classes] AP, class names, number of predictions filtered)."""
    classes, gv, gl, gs, vids = {}, [], [], [], {}
    for v, d in gt["database"].items():
        if d["subset"] != subset:
            continue
        for a in d["annotations"]:
            if a["label"] == "Ambiguous":
                continue
            gv.append(vids.setdefault(v, len(vids)))
            gl.append(classes.setdefault(a["label"], len(classes)))
            gs.append([round(a["segment"][0] * fps / frames), round(a["segment"][1] * fps / frames)])
    rows, pl, ps = [], [], []
    for v, items in pred["results"].items():
        for it in items:
            if it["label"] not in classes:
                continue
            rows.append([vids.setdefault(v, len(vids)), round(it["segment"][0] * fps / frames),
                         round(it["segment"][1] * fps / frames)])
            pl.append(classes[it["label"]])
            ps.append(it["score"])
    names = list(vids)
    keep = filter_segments(rows, names, ambilist, fps, frames)
    rows = np.array(rows, float).reshape(-1, 3)[keep]
    ap = official.official_ap(rows[:, 0].astype(int), np.array(pl)[keep], np.array(ps)[keep], rows[:, 1:],
                              np.array(gv), np.array(gl), np.array(gs, float), thr, len(classes))
    return ap, list(classes), len(pl) - len(keep)
