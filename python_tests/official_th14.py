"""An independent restatement of the THUMOS14 challenge's Matlab evaluation (the oracle for
sal_ext's protocol="thumos14"), written line by line from TH14evalDet_Updated.m's
``TH14eventdetpr`` (zhengshou/scnn experiments/THUMOS14/eval) and intervaloverlapvalseconds.m:
struct arrays become lists of dicts, Matlab's stable sort becomes sorted(), 1-based loops
0-based. The error-analysis categories (BGCls/Loc/OtherCls) are all false positives and are
folded into one flag.
"""


def interval_overlap(i1, i2):
    """intervalsingleoverlapvalseconds with normtype 0."""
    i1, i2 = [min(i1), max(i1)], [min(i2), max(i2)]
    ua = max(i1[1], i2[1]) - min(i1[0], i2[0])
    iw = min(i1[1], i2[1]) - max(i1[0], i2[0])
    return iw / ua if iw > 0 else 0.0


def eventdetpr(detevents, gtevents, cls, overlapthresh):
    """-> (rec, prec, ap) for one class; events: dicts videoname, timeinterval, class, conf."""
    gtvideonames = [g["videoname"] for g in gtevents]
    detvideonames = [d["videoname"] for d in detevents]
    videonames = sorted(set(gtvideonames) | set(detvideonames))
    npos = sum(1 for g in gtevents if g["class"] == cls)
    assert npos > 0
    if not any(d["class"] == cls for d in detevents):
        return [], [], 0.0
    unsort_conf, unsort_flag = [], []
    for vn in videonames:
        gt = [g for g in gtevents if g["videoname"] == vn and g["class"] == cls]
        amb = [g for g in gtevents if g["videoname"] == vn and g["class"] == "Ambiguous"]
        det = [d for d in detevents if d["videoname"] == vn and d["class"] == cls]
        if not det:
            continue
        det = sorted(det, key=lambda d: -d["conf"])  # stable, as Matlab's sort
        conf = [d["conf"] for d in det]
        indfree = [1] * len(det)
        indamb = [0] * len(det)
        if gt:
            ov = [[interval_overlap(g["timeinterval"], d["timeinterval"]) for d in det] for g in gt]
            for k in range(len(gt)):
                ind = [j for j in range(len(det)) if indfree[j] > 0]
                if not ind:
                    continue
                vals = [ov[k][j] for j in ind]
                vm = max(vals)
                im = vals.index(vm)  # Matlab's max: the first maximum
                if vm > overlapthresh:
                    indfree[ind[im]] = 0
        if amb:
            indamb = [sum(interval_overlap(a["timeinterval"], d["timeinterval"]) for a in amb) for d in det]
        for j in range(len(det)):  # idx1..idx4 merged back into detection order
            if indfree[j] == 0:
                unsort_conf.append(conf[j])
                unsort_flag.append(1)
            elif indamb[j] == 0:
                unsort_conf.append(conf[j])
                unsort_flag.append(2)
    order = sorted(range(len(unsort_conf)), key=lambda i: -unsort_conf[i])
    tp = fp = 0
    rec, prec, ap = [], [], 0.0
    for i in order:
        if unsort_flag[i] == 1:
            tp += 1
        else:
            fp += 1
        rec.append(tp / npos)
        prec.append(tp / (fp + tp))
        if unsort_flag[i] == 1:
            ap += prec[-1]
    return rec, prec, ap / npos


def th14_map(gtevents, detevents, classes, thresholds):
    """[n_tiou][n_classes] AP; classes: the detection classes (all must have ground truth)."""
    return [[eventdetpr(detevents, gtevents, c, t)[2] for c in classes] for t in thresholds]


def events_from_json(gt, pred, subset="test", ambiguous=()):
    """gtevents / detevents as TH14evalDet.m builds them from the files, from our JSON dicts:
    every annotation of the subset (Ambiguous ones as class 'Ambiguous'), plus `ambiguous`
    (video, start, end) rows; detections of known classes only (the kit warns on others)."""
    gtevents = []
    for v, d in gt["database"].items():
        if d["subset"] == subset:
            gtevents += [{"videoname": v, "timeinterval": a["segment"], "class": a["label"]} for a in d["annotations"]]
    gtevents += [{"videoname": v, "timeinterval": [s, e], "class": "Ambiguous"} for v, s, e in ambiguous]
    classes = list(dict.fromkeys(g["class"] for g in gtevents if g["class"] != "Ambiguous"))
    detevents = [{"videoname": v, "timeinterval": it["segment"], "class": it["label"], "conf": it["score"]}
                 for v, items in pred["results"].items() for it in items if it["label"] in classes]
    return gtevents, detevents, classes
