"""Placeholder: being written (see issue 2)."""


def segment_iou(*args, **kwargs):
    raise NotImplementedError("segment_iou is not written yet")


def detection_ap(*args, **kwargs):
    raise NotImplementedError("detection_ap is not written yet")
