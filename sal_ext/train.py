"""``python -m sal_ext.train``: train SAL and report temporal action localization mAP; with
``--seeds``, a seed sweep. ``python -m sal_ext.train --help`` says everything
(sal_ext.train_args.DESCRIPTION).

Where things are: the flags and the config they build (sal_ext.train_args), one run
(sal_ext.single_run), the trainer (sal_ext.trainer), a split's evaluation pass
(sal_ext.splits), run folders and logs (sal_ext.run_folder), seed sweeps (sal_ext.sweep).
The names this module had before that split are still importable from it.
"""
from __future__ import annotations

import sys

from . import single_run, sweep
from .model import build_model, load_reference_state_dict  # noqa: F401  (old names)
from .run_folder import append_jsonl, truncate_jsonl  # noqa: F401
from .single_run import (check_backend_env, load_resume_checkpoint, resume_command,  # noqa: F401
                         run)
from .splits import (base_dataset, build_split, collate, detection_map, ensure_synthetic_data,  # noqa: F401
                     evaluate_split, evaluate_split_sharded, final_protocols, format_table,
                     postprocess_outputs, private_generator, run_inference)
from .train_args import (PROG, RESUME_FIXED, _message, _nonnegative_int, _positive_int,  # noqa: F401
                         _user_error, build_config, parse_args, resume_mismatch)
from .trainer import (LOSS_TERMS, NonFiniteLoss, Trainer, atomic_save, make_optimizer,  # noqa: F401
                      rng_state, select_metric, set_rng_state, set_seed)


def main(argv=None) -> int:
    """The command line: a seed sweep (--seeds, or --resume of a sweep folder) or one run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return single_run.guarded(lambda: _dispatch(argv))


def _dispatch(argv) -> int:
    args = parse_args(argv)
    if args.seeds is not None or sweep.is_sweep(args.resume):
        try:
            return sweep.main(args, argv)
        except sweep.SweepError as exc:
            raise _user_error(exc) from None
    if args.jobs is not None:
        raise _user_error("--jobs runs the seeds of a sweep: give --seeds too")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
