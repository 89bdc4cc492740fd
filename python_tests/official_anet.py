"""An independent, straightforward numpy port of ActivityNet's official detection evaluator
(Evaluation/eval_detection.py `compute_average_precision_detection`, Evaluation/utils.py
`segment_iou` and `interpolated_prec_rec`): the oracle the tests compare sal_ext against.

Kept literal (loops, per-prediction tIoU vectors, the same break/continue structure); the
only changes: numpy arrays instead of pandas frames and `kind="stable"` in the argsorts (the
official default argsort is not stable for large arrays, so its tie order is unspecified).
It keeps the official NaN tIoU of two zero-length segments (tests avoid those here).
"""
import numpy as np


def segment_iou(target_segment, candidate_segments):
    tt1 = np.maximum(target_segment[0], candidate_segments[:, 0])
    tt2 = np.minimum(target_segment[1], candidate_segments[:, 1])
    segments_intersection = (tt2 - tt1).clip(0)
    segments_union = (candidate_segments[:, 1] - candidate_segments[:, 0]) \
        + (target_segment[1] - target_segment[0]) - segments_intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return segments_intersection.astype(float) / segments_union


def interpolated_prec_rec(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def compute_average_precision_detection(gt_video, gt_seg, pred_video, pred_seg, pred_score, tiou_thresholds):
    """One class: ground truth (video [G], seg [G,2]) and predictions (video, seg, score)."""
    ap = np.zeros(len(tiou_thresholds))
    if len(pred_score) == 0:
        return ap
    npos = float(len(gt_video))
    lock_gt = np.ones((len(tiou_thresholds), len(gt_video))) * -1
    sort_idx = np.argsort(pred_score, kind="stable")[::-1]
    pred_video, pred_seg = pred_video[sort_idx], pred_seg[sort_idx]
    tp = np.zeros((len(tiou_thresholds), len(sort_idx)))
    fp = np.zeros((len(tiou_thresholds), len(sort_idx)))
    groups = {}
    for j, v in enumerate(gt_video):
        groups.setdefault(v, []).append(j)
    for idx in range(len(sort_idx)):
        if pred_video[idx] not in groups:
            fp[:, idx] = 1
            continue
        gt_index = np.asarray(groups[pred_video[idx]])
        tiou_arr = segment_iou(pred_seg[idx], gt_seg[gt_index])
        tiou_sorted_idx = np.argsort(tiou_arr, kind="stable")[::-1]
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < tiou_thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, gt_index[jdx]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, gt_index[jdx]] = idx
                break
            if fp[tidx, idx] == 0 and tp[tidx, idx] == 0:
                fp[tidx, idx] = 1
    tp_cumsum = np.cumsum(tp, axis=1).astype(float)
    fp_cumsum = np.cumsum(fp, axis=1).astype(float)
    recall_cumsum = tp_cumsum / npos
    precision_cumsum = tp_cumsum / (tp_cumsum + fp_cumsum)
    for tidx in range(len(tiou_thresholds)):
        ap[tidx] = interpolated_prec_rec(precision_cumsum[tidx, :], recall_cumsum[tidx, :])
    return ap


def official_ap(pv, pl, ps, pseg, gv, gl, gseg, thresholds, num_classes):
    """[n_tiou, num_classes] AP for every class with ground truth (NaN for the others)."""
    ap = np.full((len(thresholds), num_classes), np.nan)
    for c in range(num_classes):
        g = gl == c
        if not g.any():
            continue
        p = pl == c
        ap[:, c] = compute_average_precision_detection(gv[g], gseg[g], pv[p], pseg[p], ps[p], thresholds)
    return ap


def average_recall_vs_avg_nr_proposals(gt_video, gt_seg, prop_video, prop_seg, prop_score,
                                       max_avg_nr_proposals, tiou_thresholds):
    """Literal port of Evaluation/eval_proposal.py (arrays instead of data frames)."""
    video_lst = np.unique(gt_video)
    ratio = max_avg_nr_proposals * float(video_lst.shape[0]) / prop_video.shape[0]
    score_lst = []
    total_nr_proposals = 0
    for videoid in video_lst:
        this_video_ground_truth = gt_seg[gt_video == videoid]
        sel = prop_video == videoid
        if not sel.any():
            score_lst.append(np.zeros((this_video_ground_truth.shape[0], 1)))
            continue
        this_video_proposals = prop_seg[sel]
        sort_idx = np.argsort(prop_score[sel], kind="stable")[::-1]
        this_video_proposals = this_video_proposals[sort_idx, :]
        nr_proposals = np.minimum(int(this_video_proposals.shape[0] * ratio), this_video_proposals.shape[0])
        total_nr_proposals += nr_proposals
        this_video_proposals = this_video_proposals[:nr_proposals, :]
        tiou = np.empty((this_video_ground_truth.shape[0], this_video_proposals.shape[0]))
        for i in range(this_video_proposals.shape[0]):
            tiou[:, i] = segment_iou(this_video_proposals[i, :], this_video_ground_truth)
        score_lst.append(tiou)
    pcn_lst = np.arange(1, 101) / 100.0 * (max_avg_nr_proposals * float(video_lst.shape[0]) / total_nr_proposals)
    matches = np.empty((video_lst.shape[0], pcn_lst.shape[0]))
    positives = np.empty(video_lst.shape[0])
    recall = np.empty((len(tiou_thresholds), pcn_lst.shape[0]))
    for ridx, tiou in enumerate(tiou_thresholds):
        for i, score in enumerate(score_lst):
            positives[i] = score.shape[0]
            true_positives_tiou = score >= tiou
            pcn_proposals = np.minimum((score.shape[1] * pcn_lst).astype(int), score.shape[1])
            for j, nr_proposals in enumerate(pcn_proposals):
                matches[i, j] = np.count_nonzero((true_positives_tiou[:, :nr_proposals]).sum(axis=1))
        recall[ridx, :] = matches.sum(axis=0) / positives.sum()
    avg_recall = recall.mean(axis=0)
    proposals_per_video = pcn_lst * (float(total_nr_proposals) / video_lst.shape[0])
    return recall, avg_recall, proposals_per_video
