"""Measure the *skill* while a model trains: format rate and held-out accuracy by generation.

A falling loss says the model copies the training text; it does not say the model answers
held-out questions in the think/answer format. :class:`SkillEvalCallback` generates greedy
answers for a fixed, stratified slice of a held-out prompt file (``studio tasks``' eval
split, the same rows every time) every ``every`` optimizer steps and at the last step, scores
them with :func:`studio.engine.workshop.evaluate.evaluate` (the RL reward's verifiers and format
rule), and appends one ``kind: "skill"`` line to ``metrics.jsonl``::

    {"step": 200, "kind": "skill", "skill/format_rate": 0.97, "skill/accuracy": 0.81,
     "skill/n": 60, "skill/seconds": 11.2, "skill/acc/shapes": 0.65, ...}

The SFT tab draws ``skill/format_rate`` and ``skill/accuracy`` as curves.
:func:`evaluate_run` scores a finished run the same way, before and after (the Runs tab's
"Evaluate" button).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from studio.errors import InputError

if TYPE_CHECKING:
    from studio.engine.workshop.evaluate import Report

log = logging.getLogger(__name__)


def skill_record(report) -> dict[str, Any]:
    """The ``skill/*`` values of one :class:`studio.engine.workshop.evaluate.Report` (fractions)."""
    groups = report.groups()
    overall = groups[-1]
    out: dict[str, Any] = {"skill/format_rate": overall["format"], "skill/accuracy": overall["accuracy"],
                           "skill/n": overall["n"], "skill/seconds": round(report.seconds, 2)}
    fams: dict[str, list] = {}
    for r in report.results:
        fams.setdefault(r.family, []).append(r.correct)
    for fam, ok in sorted(fams.items()):
        out[f"skill/acc/{fam}"] = sum(ok) / len(ok)
    return out


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


def make_skill_callback(tasks_file: str | Path, processor, writer, *, every: int, n: int = 60,
                        max_new_tokens: int = 64, batch_size: int = 16, log_fn=print, clock=None):
    """A ``TrainerCallback`` that scores format and accuracy on ``tasks_file`` during training.

    Args:
        tasks_file: held-out prompt JSONL (``prompt``, ``images``, ``answer``, ``task_type``,
            ``family``, ``difficulty``), e.g. ``studio tasks --eval-n``'s ``eval.jsonl``.
        processor: the run's processor (its chat template renders the prompts).
        writer: the run's :class:`studio.engine.train.metrics.MetricsWriter`.
        every: score every this many optimizer steps (0: only at the end); always at the
            last step and at step 0 (before any update), so the curve starts where the
            model started.
        n: prompts, stratified over family × difficulty (the same rows each time).
        max_new_tokens: generation budget per prompt (greedy).
        clock: a :class:`studio.engine.train.steptime.StepClock`; each scoring counts as its
            ``eval`` phase (the run's ``time/eval_s``).

    Raises:
        DataError: ``tasks_file`` is not a readable prompt file (checked at once).
    """
    from studio.engine.workshop.task_files import load_task_rows

    load_task_rows(tasks_file)  # fail before training starts, not after the first interval
    Base = _callback_base()

    class SkillEvalCallback(Base):
        """Generates on the held-out slice at step 0, every ``every`` steps and at the end."""

        def __init__(self):
            self.done: set[int] = set()

        def _score(self, model, step: int) -> None:
            if step in self.done:
                return
            self.done.add(step)
            if clock is not None:
                with clock.phase("eval"):
                    return self._score_now(model, step)
            return self._score_now(model, step)

        def _score_now(self, model, step: int) -> None:
            import torch

            from studio.engine.workshop.evaluate import evaluate

            was_training = model.training
            model.eval()
            template = processor.chat_template
            try:
                t0 = time.perf_counter()
                with torch.no_grad():
                    rep = evaluate("training", tasks_file, n=n, mode="thinking", max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, loaded=(model, processor))
                rec = skill_record(rep)
                writer.log_dict(step, rec, kind="skill")
                log_fn(f"skill at step {step}: format {100 * rec['skill/format_rate']:.0f} % · accuracy "
                       f"{100 * rec['skill/accuracy']:.0f} % on {rec['skill/n']} held-out prompts "
                       f"({time.perf_counter() - t0:.0f} s)")
            except Exception as e:  # noqa: BLE001 - a failed measurement must not kill the run
                log.exception("skill evaluation failed")
                log_fn(f"warning: skill evaluation at step {step} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            finally:
                processor.chat_template = template
                if was_training:
                    model.train()

        def on_train_begin(self, args, state, control, model=None, **kw):
            if model is not None and state.is_world_process_zero and int(state.global_step) == 0:
                self._score(model, 0)

        def on_step_end(self, args, state, control, model=None, **kw):
            step = int(state.global_step)
            last = state.max_steps and step >= state.max_steps
            if model is not None and state.is_world_process_zero and ((every and step % every == 0) or last):
                self._score(model, step)

        def on_train_end(self, args, state, control, model=None, **kw):
            if model is not None and state.is_world_process_zero:
                self._score(model, int(state.global_step))

    return SkillEvalCallback()


def evaluate_run(run_dir: str | Path, tasks_file: str | Path | None = None, n: int = 60,
                 progress: Callable[[dict], None] | None = None, max_new_tokens: int = 160) -> tuple[Report, Report]:
    """Score a finished (or stopped) SFT/RL run before and after: its base model, then the
    base with the run's adapter (or its fully fine-tuned ``model/``), on the same held-out
    prompts, both in the think/answer format (a base model scores 0 format, as it should).

    Args:
        run_dir: the run folder (``config.yaml`` and ``adapter/``, ``checkpoint-N/`` or ``model/``).
        tasks_file: held-out prompts; default the run's ``eval_data``, else the workshop's
            ``sample_data/workshop/eval.jsonl``.
        n: prompts, stratified over family × level.
        progress: called at the start of each half and after each batch with
            ``{"stage": "before" | "after", "done", "total", "elapsed_s", "eta_s", ...}``
            (:meth:`studio.engine.train.phase.PhaseProgress.state`: prompts scored of both
            halves, seconds; ``eta_s`` None until the first batch gives a rate).
        max_new_tokens: generation budget per prompt (greedy).

    Raises:
        InputError: no config, nothing trained yet, or no held-out file; DataError: a bad
            prompt file.
    """
    import yaml

    from studio.config import ModelSpec
    from studio.engine.infer.models import load
    from studio.engine.train.phase import PhaseProgress
    from studio.engine.train.runs import find_adapter, find_last_checkpoint
    from studio.engine.workshop.evaluate import evaluate, stratified
    from studio.engine.workshop.task_files import load_task_rows

    run = Path(run_dir)
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        raise InputError(f"{run} has no readable config.yaml; pick a run folder made by the SFT or RL tab.") from None
    base = (cfg.get("model") or {}).get("name_or_path") or "embedded"
    tasks = tasks_file or cfg.get("eval_data") or Path(__file__).resolve().parents[3] / "sample_data" / "workshop" / "eval.jsonl"
    if not Path(tasks).is_file():
        raise InputError(f"No held-out prompt file to score: {tasks} does not exist.")
    trained = run / "model" if (run / "model" / "config.json").is_file() else None
    adapter = None if trained else (find_adapter(run) or find_last_checkpoint(run))
    if trained is None and adapter is None:
        raise InputError(f"{run.name} has no trained model, adapter or checkpoint yet; wait for the first save.")
    total = 2 * len(stratified(load_task_rows(tasks), n))
    counter = PhaseProgress(None, "eval", "before/after evaluation", total, "prompts", main=True)

    def step(stage: str):
        def done(k: int = 0) -> None:
            counter.update(k)
            if progress is not None:
                progress({**counter.state(), "stage": stage})
        return done

    step("before")()
    kw = dict(n=n, mode="thinking", max_new_tokens=max_new_tokens)
    before = evaluate(base, tasks, loaded=load(ModelSpec(name_or_path=base, device="cpu")), progress=step("before"),
                      **kw)
    step("after")()
    if trained is not None:
        after = evaluate(str(trained), tasks, progress=step("after"), **kw)
    else:
        after = evaluate(f"{base} + {adapter}", tasks, progress=step("after"),
                         loaded=load(ModelSpec(name_or_path=base, adapter=str(adapter), device="cpu")), **kw)
    return before, after
