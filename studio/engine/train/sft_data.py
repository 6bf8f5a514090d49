"""An SFT run's data: the path (a recipe's data generated on first use), read and checked
before step 1 with progress and Stop, and the train/eval split."""

from __future__ import annotations

import os
import random
from pathlib import Path

from studio.engine.train.phase import PhaseProgress, stop_before_training
from studio.errors import DataError


def split_rows(rows: list, eval_split: float, seed: int) -> tuple[list, list, str]:
    """Shuffle with ``seed`` and hold out ``round(len × eval_split)`` rows (≥ 1 when asked).

    A dataset of one row cannot give both: eval is turned off with a note.

    Returns: (train rows, eval rows, note — "" or a sentence for the log).
    """
    if eval_split <= 0:
        return list(rows), [], ""
    if len(rows) < 2:
        return list(rows), [], (f"eval_split={eval_split:g} needs at least 2 rows but the data has {len(rows)}; "
                                f"eval is turned off for this run.")
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    n_eval = max(1, round(len(rows) * eval_split))
    note = ""
    if round(len(rows) * eval_split) == 0:
        note = f"eval_split={eval_split:g} of {len(rows)} rows rounds to 0; holding out 1 row."
    n_eval = min(n_eval, len(rows) - 1)
    ev = set(idx[:n_eval])
    return [r for i, r in enumerate(rows) if i not in ev], [r for i, r in enumerate(rows) if i in ev], note


def resolve_data_path(path: str) -> str:
    """``path`` with ``~`` expanded (relative paths stay relative to the working folder)."""
    return os.path.expanduser(path)


def ensure_data(cfg, log_fn=print, stop=None, progress=None) -> str:
    """The dataset path of ``cfg``; generated first with ``studio tasks`` when it does not
    exist and ``cfg.tasks`` says how (a recipe's data, made on first use); ``stop``
    (anything with ``is_set()``, e.g. the job's StopFlag) ends that generation at once;
    ``progress(done, total)`` hears of every scene generated.

    Raises:
        DataError: the path does not exist and ``cfg.tasks`` is not set.
        StoppedError: ``stop`` was set during the generation (nothing half-written is kept).
    """
    if not cfg.data:  # the data file is named by the dataset_info.json entry
        return ""
    path = Path(resolve_data_path(cfg.data))
    if path.exists() or not cfg.tasks:
        return str(path)
    import time

    from studio.engine.workshop.workshop_data import write_recipe_data

    t0 = time.perf_counter()
    spec = dict(cfg.tasks)
    log_fn(f"generating the recipe's data ({spec}) into {path.parent} …")
    write_recipe_data(path.parent, stop=stop, progress=progress, **spec)
    if not path.exists():
        raise DataError(f"`tasks` wrote {path.parent} but not {path.name}; point `data` at its sft.jsonl.")
    log_fn(f"data ready in {time.perf_counter() - t0:.0f} s")
    return str(path)


def read_and_check(cfg, run_dir: Path, processor, stop_flag, log_fn):
    """(rows, doctor report): the data read and checked row by row, each phase saying how far
    it is (:class:`~studio.engine.train.phase.PhaseProgress`), and Stop honoured between the
    phases and at every row (:func:`~studio.engine.train.phase.stop_before_training`), not only
    at the first step's end a minute later."""
    from studio.engine.train import data as D, distributed

    row_stop = stop_flag if stop_flag is not None and distributed.world_size() == 1 else None  # no collective per row
    reading: list[PhaseProgress] = []  # made at the first row, when the count is known

    def read(done: int, total: int) -> None:
        if not reading:
            reading.append(PhaseProgress(run_dir, "reading", "reading the data", total, "rows", log_fn=log_fn))
        reading[0].update(done - reading[0].done)
        if row_stop:
            stop_before_training(row_stop, f"while reading the data ({done} of {total} rows)")

    distributed.main_first(lambda: ensure_data(cfg, log_fn, stop=stop_flag))  # a recipe's data: written once
    rows = D.load_rows(ensure_data(cfg, log_fn, stop=stop_flag), dataset_info=cfg.dataset_info or None,
                       dataset=cfg.dataset or None, progress=read)
    if reading:
        reading[0].finish()
    stop_before_training(stop_flag, "while reading the data")
    checking = PhaseProgress(run_dir, "doctor", "data doctor", len(rows), "rows", log_fn=log_fn)

    def checked(n: int) -> None:
        checking.update(n)
        if row_stop:
            stop_before_training(row_stop, f"during the data doctor ({checking.done} of {checking.total} rows checked)")

    report = D.doctor(rows, processor, cfg.max_length, policy=cfg.policy, oversize=cfg.oversize,
                      fps=cfg.fps, max_frames=cfg.max_frames, skipped=dict(rows.skipped), progress=checked)
    checking.finish()
    stop_before_training(stop_flag, "after the data doctor")
    return rows, report
