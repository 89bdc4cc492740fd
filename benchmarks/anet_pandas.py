"""A straightforward pandas port (Python 3) of ActivityNet's official detection evaluator
(Evaluation/eval_detection.py ANETdetection + compute_average_precision_detection, and
utils.py segment_iou / interpolated_prec_rec), written for the benchmark only.

Kept as the official code runs: DataFrames built from the loaded JSON, groupby per label and
per video, `iterrows` over sorted predictions, one tIoU vector per prediction. Changes: no
blocked-video download, serial over classes (the official uses joblib with one process per
class; on a 2-core machine that does not help), `np.float` -> float.
"""
import numpy as np
import pandas as pd


def segment_iou(target_segment, candidate_segments):
    tt1 = np.maximum(target_segment[0], candidate_segments[:, 0])
    tt2 = np.minimum(target_segment[1], candidate_segments[:, 1])
    segments_intersection = (tt2 - tt1).clip(0)
    segments_union = (candidate_segments[:, 1] - candidate_segments[:, 0]) \
        + (target_segment[1] - target_segment[0]) - segments_intersection
    return segments_intersection.astype(float) / segments_union


def interpolated_prec_rec(prec, rec):
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def import_ground_truth(data, subset):
    activity_index, cidx = {}, 0
    video_lst, t_start_lst, t_end_lst, label_lst = [], [], [], []
    for videoid, v in data["database"].items():
        if subset != v["subset"]:
            continue
        for ann in v["annotations"]:
            if ann["label"] not in activity_index:
                activity_index[ann["label"]] = cidx
                cidx += 1
            video_lst.append(videoid)
            t_start_lst.append(float(ann["segment"][0]))
            t_end_lst.append(float(ann["segment"][1]))
            label_lst.append(activity_index[ann["label"]])
    ground_truth = pd.DataFrame({"video-id": video_lst, "t-start": t_start_lst,
                                 "t-end": t_end_lst, "label": label_lst})
    return ground_truth, activity_index


def import_prediction(data, activity_index):
    video_lst, t_start_lst, t_end_lst, label_lst, score_lst = [], [], [], [], []
    for videoid, v in data["results"].items():
        for result in v:
            label = activity_index[result["label"]]
            video_lst.append(videoid)
            t_start_lst.append(float(result["segment"][0]))
            t_end_lst.append(float(result["segment"][1]))
            label_lst.append(label)
            score_lst.append(result["score"])
    return pd.DataFrame({"video-id": video_lst, "t-start": t_start_lst, "t-end": t_end_lst,
                         "label": label_lst, "score": score_lst})


def compute_average_precision_detection(ground_truth, prediction, tiou_thresholds):
    ap = np.zeros(len(tiou_thresholds))
    if prediction.empty:
        return ap
    npos = float(len(ground_truth))
    lock_gt = np.ones((len(tiou_thresholds), len(ground_truth))) * -1
    sort_idx = prediction["score"].values.argsort()[::-1]
    prediction = prediction.loc[sort_idx].reset_index(drop=True)
    tp = np.zeros((len(tiou_thresholds), len(prediction)))
    fp = np.zeros((len(tiou_thresholds), len(prediction)))
    ground_truth_gbvn = ground_truth.groupby("video-id")
    for idx, this_pred in prediction.iterrows():
        try:
            ground_truth_videoid = ground_truth_gbvn.get_group(this_pred["video-id"])
        except Exception:
            fp[:, idx] = 1
            continue
        this_gt = ground_truth_videoid.reset_index()
        tiou_arr = segment_iou(this_pred[["t-start", "t-end"]].values,
                               this_gt[["t-start", "t-end"]].values)
        tiou_sorted_idx = tiou_arr.argsort()[::-1]
        for tidx, tiou_thr in enumerate(tiou_thresholds):
            for jdx in tiou_sorted_idx:
                if tiou_arr[jdx] < tiou_thr:
                    fp[tidx, idx] = 1
                    break
                if lock_gt[tidx, this_gt.loc[jdx]["index"]] >= 0:
                    continue
                tp[tidx, idx] = 1
                lock_gt[tidx, this_gt.loc[jdx]["index"]] = idx
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


def anet_detection(gt_data, pred_data, tiou_thresholds, subset="test"):
    """The official evaluate(): returns (ap [n_tiou, n_classes], mAP [n_tiou], average_mAP)."""
    ground_truth, activity_index = import_ground_truth(gt_data, subset)
    prediction = import_prediction(pred_data, activity_index)
    ap = np.zeros((len(tiou_thresholds), len(activity_index)))
    ground_truth_by_label = ground_truth.groupby("label")
    prediction_by_label = prediction.groupby("label")
    for label_name, cidx in activity_index.items():
        try:
            pred_c = prediction_by_label.get_group(cidx).reset_index(drop=True)
        except KeyError:
            pred_c = pd.DataFrame()
        ap[:, cidx] = compute_average_precision_detection(
            ground_truth_by_label.get_group(cidx).reset_index(drop=True), pred_c, tiou_thresholds)
    m_ap = ap.mean(axis=1)
    return ap, m_ap, m_ap.mean()
