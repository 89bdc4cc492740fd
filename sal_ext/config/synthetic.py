"""The synthetic preset: the built-in synthetic set (sal_ext.data.synthetic) with the THUMOS14
method, sized so that ``python -m sal_ext.train`` finishes in minutes on a 2-core CPU.
What each key may hold (its ``synthetic`` section too): :mod:`sal_ext.config.schema`.
"""
from __future__ import annotations

import copy
from typing import Any, Dict

from .thumos14 import THUMOS14

# Built-in synthetic set: THUMOS layout, THUMOS method, smaller network and clips so that
# the default `python -m sal_ext.train` runs in minutes on 2 CPU cores: 5000 steps (200 epochs
# of 25 batches of 4), an evaluation every 500 steps. What it prints and how long it takes are
# measured, with the machine and thread count, in README.md's default-run block (rewritten by
# `python tools/readme_default_run.py`). hidden 64 instead of 512 (fc1 is hidden^2 x hidden).
# lr 3e-4: at 1e-3 the encoder's ReLUs all die within ~30 steps on these features; at the
# reference's 1e-4 learning starts only after ~400 steps.
SYNTHETIC: Dict[str, Any] = copy.deepcopy(THUMOS14)
SYNTHETIC.update({
    "name": "synthetic",
    "dataset": "thumos14",
    "num_segments": 100,
    "model": {"hidden": 64, "encoder_kernel": 3, "fusion_lambda": 0.1, "dropout": 0.5},
    "synthetic": {"seed": 0, "num_train": 100, "num_test": 60, "num_classes": 20,
                  "feature_dim": 2048, "min_len": 80, "max_len": 400},
})
SYNTHETIC["optim"].update({"lr": 3e-4})
SYNTHETIC["train"].update({
    "batch_size": 4, "epochs": 200, "eval_every": 500, "eval_from_epoch": 0, "seed": 0, "save_every": None,
})
