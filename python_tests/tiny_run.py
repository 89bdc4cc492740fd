"""The tiny training run the trainer tests share: a small synthetic THUMOS-layout set (12 train /
6 test videos, 64-wide features; the ``tiny_root`` fixture of conftest.py writes it once) and
the flags that train a small network on it in seconds on a CPU."""

TINY = ["--set", "feature_dim=64", "--set", "model.hidden=8", "--set", "num_segments=32",
        "--batch-size", "4", "--no-progress", "--seed", "3"]


def write_tiny_set(folder) -> str:
    """Writes the tiny synthetic set under `folder`; returns its data root."""
    from sal_ext.data.synthetic import ensure_synthetic
    return ensure_synthetic(cache_dir=str(folder), seed=0, num_train=12, num_test=6, num_classes=20,
                            feature_dim=64, min_len=40, max_len=80)
