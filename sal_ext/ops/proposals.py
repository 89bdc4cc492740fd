"""Placeholder: being written (see issue 2)."""


def oic_proposals(*args, **kwargs):
    raise NotImplementedError("oic_proposals is not written yet")
