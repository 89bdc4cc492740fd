"""The optional dependencies of sal_ext.features (the ``[video]`` extra): PyAV and OpenCV contrib."""
from __future__ import annotations

INSTALL_HINT = "pip install '.[video]' (or pip install 'sal_ext[video]'), which installs av and opencv-contrib-python-headless"


class MissingExtra(ImportError):
    """sal_ext.features without its extra; str() is one line saying what to install."""


def require_video_extra() -> None:
    missing = []
    try:
        import av  # noqa: F401
    except ImportError:
        missing.append("av (PyAV)")
    try:
        import cv2
        if not hasattr(cv2, "optflow"):
            missing.append("opencv-contrib-python-headless (cv2 has no contrib module optflow)")
    except ImportError:
        missing.append("opencv-contrib-python-headless")
    if missing:
        raise MissingExtra(f"sal_ext.features needs {' and '.join(missing)}: {INSTALL_HINT}")
