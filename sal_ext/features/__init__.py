"""Two-stream I3D features from video files: what sal_ext's loaders read, from your own videos.

    python -m sal_ext.features --videos DIR --out DATA --rgb-weights rgb_imagenet.pt \\
        --flow-weights flow_imagenet.pt

Modules: :mod:`.i3d` (the network, pytorch-i3d's parameter names), :mod:`.decode` (PyAV
decoding, 25 fps resampling), :mod:`.flow` (TV-L1), :mod:`.raft` (RAFT, needs torchvision),
:mod:`.chunks` (16-frame chunks, crop, scaling), :mod:`.settings` (the convention and its
sources), :mod:`.producer` (one video's network inputs), :mod:`.pipeline` (workers, batching),
:mod:`.outputs` (layout, atomic writes, resume), :mod:`.extract` (the command's work, also used
in memory by ``sal_ext.infer --video``), :mod:`.flags` (the flags both commands share),
``__main__`` (the command line).

Needs the ``[video]`` extra (PyAV, OpenCV contrib): ``pip install '.[video]'``. Without it,
using any name of this package raises :class:`MissingExtra` (an ImportError) saying so.
"""
from ._extra import MissingExtra, require_video_extra

_PUBLIC = {"I3D": ".i3d", "load_i3d": ".i3d", "FEATURE_DIM": ".i3d", "Settings": ".settings",
           "find_videos": ".extract", "build_networks": ".extract", "features_in_memory": ".extract",
           "extract_to_folder": ".extract", "decode_frames": ".decode", "VideoError": ".decode"}


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'sal_ext.features' has no attribute {name!r}")
    require_video_extra()
    import importlib
    return getattr(importlib.import_module(_PUBLIC[name], __name__), name)


__all__ = sorted(_PUBLIC) + ["MissingExtra", "require_video_extra"]
