"""The job panel of the training tabs: Start / Stop / Resume, the status line, the log tail, the CLI
command, and the "after training" row (try in Chat or Compare, evaluate, export).

A training run is a child process (:class:`studio.engine.train.jobs.JobManager`), so closing the
page never stops it; the panel re-attaches on page load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from studio.engine.train.jobs import JobManager, tail_file
from studio.engine.train.metrics import PROGRESS_FILE, read_json
from studio.engine.train.phase import PHASES
from studio.engine.train.runs import (
    CONFIG_FILE,
    LOG_FILE,
    checkpoint_step,
    effective_status,
    exportable_adapter,
    find_adapter,
    find_last_checkpoint,
    format_duration,
    list_runs,
    read_status,
)
from studio.errors import StoppedError, StudioError
from studio.ui.components import _gr_error, as_gradio_error, wait_finished, wait_until
from studio.ui.i18n import CATALOG as _CATALOG
from studio.ui.i18n import t, tr, user_error


# --------------------------------------------------------------------------- job panel
def status_line(run_dir: str | Path | None) -> str:
    """One line about a run for the panel: status, step/total, elapsed, ETA, checkpoint.

    ``"running · step 12/100 (12%) · elapsed 0:30 · 2.5 s/step · 3:43 left · run <id>"`` (rate
    and time left from the measured rate, ``progress.json``); before step 1 the phase that
    runs (``"running · data doctor: 4000/9600 rows (41%) · elapsed 0:12 · 0:17 left · run <id>"``,
    :mod:`studio.engine.train.phase`); finished,
    stopped and failed runs say how they ended (failed: the recorded error).
    """
    if not run_dir:
        return tr("job.no_run")
    run = Path(run_dir)
    st = read_status(run)
    prog = read_json(run / PROGRESS_FILE)
    status = effective_status(st) if st else "not started"
    if status == "stopped" and st.get("before_training"):  # Stop before step 1: no run to resume or try
        status = "stopped before training"
    key = "job.status." + status.replace(" ", "_")
    parts = [tr(key) if key in _CATALOG else status]
    step, total = prog.get("step"), prog.get("max_steps")
    if status == "running" and prog.get("phase") in PHASES:  # before step 1: doctor, offline grading
        done, n = int(prog.get("done") or 0), int(prog.get("total") or 0)
        parts.append(tr("job.phase." + prog["phase"], done=f"{done:,}", total=f"{n:,}", pct=f"{100 * done // max(1, n)}"))
        if prog.get("elapsed_s") is not None:
            parts.append(tr("job.elapsed", t=format_duration(prog["elapsed_s"])))
        if prog.get("eta_s") is not None:
            parts.append(tr("job.eta", t=format_duration(prog["eta_s"])))
        if _stop_asked(run, st):
            parts.append(_stopping_early(run))
        parts.append(tr("job.run", name=run.name))
        return " · ".join(parts)
    if step is not None:
        parts.append(tr("job.step_of", step=step, total=total, pct=f"{100 * step / total:.0f}") if total
                     else tr("job.step", step=step))
    if status == "running":
        if prog.get("elapsed_s") is not None:
            parts.append(tr("job.elapsed", t=format_duration(prog["elapsed_s"])))
        rate = prog.get("steps_per_s")
        if rate:  # the measured rate, as steps/s or (slow RL steps) s/step
            parts.append(tr("job.rate_steps", rate=f"{rate:.2f}") if rate >= 1
                         else tr("job.rate_s_step", sec=f"{1 / rate:.1f}"))
        if prog.get("eta_s") is not None:
            parts.append(tr("job.eta", t=format_duration(prog["eta_s"])))
        if _stop_asked(run, st):
            parts.append(tr("job.stopping") if step else _stopping_early(run))  # before step 1: nothing to save
    else:
        if st.get("started") and st.get("ended"):
            parts.append(tr("job.took", t=format_duration(st["ended"] - st["started"])))
        if status == "stopped before training":
            parts.append(tr("job.nothing_trained"))
        if status == "stopped":
            ck = find_last_checkpoint(run)
            if ck and st.get("stopped_before_step"):  # a resumed run stopped before its next step
                kept = checkpoint_step(ck)
                parts.append(tr("job.kept_checkpoint", next=kept + 1, step=kept))
            else:
                parts.append(tr("job.resume_from", name=ck.name) if ck else tr("job.no_checkpoint"))
        if status == "finished" and find_adapter(run):
            parts.append(tr("job.adapter", path=find_adapter(run)))
        if status == "failed" and st.get("error"):
            parts.append(str(st["error"])[:300])
    parts.append(tr("job.run", name=run.name))
    return " · ".join(parts)


def _stopping_early(run: Path) -> str:
    """The "stopping" part before this start's first step: nothing to save — and a resumed
    run keeps the checkpoint it started from (it is not left "without a checkpoint")."""
    ck = find_last_checkpoint(run)
    return tr("job.stopping_kept", step=checkpoint_step(ck)) if ck else tr("job.stopping_early")


def _stop_asked(run: Path, st: dict) -> bool:
    return bool(st.get("stop_requested") or read_json(run / "job.json").get("stop_requested"))


@dataclass
class JobPanel:
    """Components and handlers made by :func:`job_panel`.

    Attributes:
        run_dir_state: ``gr.State`` with this session's run folder ("" before any run).
        start_btn, stop_btn, resume_btn: the buttons.
        status: ``gr.Textbox`` with :func:`status_line`.
        log: ``gr.Textbox`` with the tail of ``train.log`` (plain text).
        cli: ``gr.Code`` with the equivalent command (``studio sft --config …``).
        timer: the polling ``gr.Timer`` (share it with :func:`live_curves`).
        recipe_btn: the recipe's start button (None without a recipe).
        manager: the :class:`JobManager`.
        fns: the handlers by name (``start``, ``stop``, ``resume``, ``poll``, ``attach``) for
            tests and for tabs that add their own triggers.
    """

    run_dir_state: Any
    start_btn: Any
    stop_btn: Any
    resume_btn: Any
    status: Any
    log: Any
    cli: Any
    timer: Any
    manager: JobManager
    fns: dict[str, Callable] = field(default_factory=dict)
    recipe_btn: Any = None


def open_tab_js(key: str) -> str:
    """Browser JS that opens the top-level tab labelled by catalog ``key`` (in either
    language): the hand-over buttons land the user where the adapter now is."""
    import json

    from studio.ui.i18n import LANGS

    names = json.dumps([tr(key, lang) for lang in LANGS])
    return ("() => { const names = " + names + "; const b = Array.from(document.querySelectorAll("
            "'button[role=tab]')).find(e => names.includes(e.textContent.trim())); if (b) b.click(); }")


def after_training(ctx, run_dir_state, config_cls, kind: str, no_run_key: str = "common.no_run_yet"):
    """"Try it in Chat", "Compare with base", "Evaluate" (before/after table on held-out
    prompts, :func:`studio.engine.train.skill_eval.evaluate_run`) and "Export merged" for a run.

    Shared by the SFT and RL tabs. The adapter is the run's final ``adapter/`` or, while a
    run is stopped, its last complete checkpoint. Try/Compare hand the folder to the other
    tabs through ``ctx.extra["chat_adapter"]`` / ``ctx.extra["compare_adapter"]``; Export
    merges it into the run's base model and verifies the round trip
    (:func:`studio.engine.train.export.merge_adapter`). API names: ``<kind>_try``,
    ``<kind>_compare``, ``<kind>_export``. Returns the message Markdown component.
    """
    import gradio as gr

    from studio.ui.app import GPU_CONCURRENCY_ID

    with gr.Accordion(t("common.after_training"), open=True):
        with gr.Row():
            try_btn = gr.Button(t("common.try_in_chat"))
            cmp_btn = gr.Button(t("common.compare_with_base"))
            eval_btn = gr.Button(t("common.evaluate_btn"), elem_id=f"{kind}-evaluate-btn")
        with gr.Row():
            export_dir = gr.Textbox(label=t("common.export_dir"), placeholder="<run>/merged")
            export_btn = gr.Button(t("common.export_btn"))
        msg = gr.Markdown(elem_id=f"{kind}-after-msg", min_height=40)
        with gr.Accordion(t("eval.by_answer"), open=False, elem_id=f"{kind}-by-answer"):
            answers = gr.Markdown()

    def adapter_of(run_dir: str) -> Path:
        if not run_dir:
            raise StudioError(tr(no_run_key))
        if (Path(run_dir) / "model" / "config.json").is_file():  # finetuning: full — a whole model, no adapter
            raise StudioError(tr("common.full_model", path=Path(run_dir) / "model"))
        a = exportable_adapter(run_dir)
        if a is None:
            raise StudioError(tr("common.no_adapter_yet"))
        return a

    def evaluate_before_after(run_dir, progress=gr.Progress()):
        """Before/after table on the run's held-out prompts (base vs base + adapter / the
        trained model) and the by-answer view; a progress bar says how many prompts of how
        many are scored and the time left."""
        from studio.engine.train.skill_eval import evaluate_run
        from studio.ui.evaluation import before_after_markdown, by_answer_markdown, progress_text

        if not run_dir:  # said in the panel, not only a toast that is gone before it is read
            return tr("common.pick_run"), ""

        def tick(state: dict) -> None:
            progress((int(state["done"]), int(state["total"])), desc=progress_text(state), unit=tr("eval.unit"))

        try:
            # 240: an RL run's whole held-out set (the first 60 of the workshop's favour answer 1
            # and showed +12 for a +8 run); 240 stratified for an SFT run's 480
            before, after = evaluate_run(run_dir, n=240, progress=tick)
        except Exception as e:  # noqa: BLE001
            raise as_gradio_error(e, f"the {kind} tab") from None
        return before_after_markdown(before, after), by_answer_markdown(before, after)

    def hand_over(run_dir, slot: str, key: str):
        try:
            a = adapter_of(run_dir)
        except Exception as e:  # noqa: BLE001
            raise as_gradio_error(e, f"the {kind} tab") from None
        ctx.extra[slot] = str(a)
        return tr(key, path=a)

    def export(run_dir, out):
        from studio.engine.train.export import merge_adapter

        try:
            a = adapter_of(run_dir)
            cfg = config_cls.from_yaml(Path(run_dir) / "config.yaml")
            target = out.strip() if out and out.strip() else str(Path(run_dir) / "merged")
            rep = merge_adapter(cfg.model, a, target)
        except Exception as e:  # noqa: BLE001
            raise as_gradio_error(e, f"the {kind} tab") from None
        ok = rep.get("verified") and rep.get("match")
        if not ok:
            return tr("common.merged_unverified", path=rep.get("out_dir", target))
        text = tr("common.merged_verified", path=rep.get("out_dir", target), n=rep.get("tokens_compared", 0))
        if rep.get("adapter_changes_output") is False:  # the check could not tell merged from unmerged
            text += " " + tr("common.merged_same_as_base")
        return text

    try_btn.click(lambda r: hand_over(r, "chat_adapter", "common.adapter_for_chat"), [run_dir_state], msg,
                  api_name=f"{kind}_try").success(None, js=open_tab_js("tab.chat"))
    cmp_btn.click(lambda r: hand_over(r, "compare_adapter", "common.adapter_for_compare"), [run_dir_state], msg,
                  api_name=f"{kind}_compare").success(None, js=open_tab_js("tab.compare"))
    export_btn.click(export, [run_dir_state, export_dir], msg, api_name=f"{kind}_export",
                     concurrency_id=GPU_CONCURRENCY_ID)
    eval_btn.click(evaluate_before_after, [run_dir_state], [msg, answers], api_name=f"{kind}_evaluate",
                   concurrency_id=GPU_CONCURRENCY_ID)
    return msg


class _PanelHandlers:
    """The job panel's event handlers (Start, Stop, Resume, the poll, the page-load attach)
    for one kind of run; :func:`job_panel` lays out the panel and wires them."""

    def __init__(self, ctx, kind: str, make_config, jm: JobManager, *, resume_args: Sequence[str],
                 graceful_timeout: float, log_lines: int, command):
        self.ctx, self.kind, self.make_config, self.jm = ctx, kind, make_config, jm
        self.public = bool(getattr(ctx, "public", False))
        self.resume_args, self.graceful_timeout = resume_args, graceful_timeout
        self.log_lines, self.command = log_lines, command
        # the stop event of the Start being prepared (its checks, a recipe's first-use data):
        # one at a time, and the panel's Stop sets it (there is no job to stop yet)
        self._prep_lock = threading.Lock()
        self._prep: threading.Event | None = None
        self._prep_note = ""  # what the last stopped preparation left: the status line says it
        # how far the preparation is: {"phase", "done", "total", "t0"} (``prep_progress``)
        self._prep_progress: dict | None = None

    def prep_progress(self, phase: str, done: int, total: int) -> None:
        """The preparation's progress callback (``check_data``'s ``progress``): the phase
        ("generating" scenes, "checking" rows) and how far it is; the poll shows it."""
        cur = self._prep_progress
        if cur is None or cur["phase"] != phase:
            cur = {"phase": phase, "t0": time.monotonic()}
        self._prep_progress = {**cur, "done": int(done), "total": int(total)}

    def preparing_text(self) -> str:
        """The status line while a Start is prepared: what runs, how far, the time left
        (from the rate so far), e.g. ``"preparing: checking the data: 4,200/16,800 rows (25%)
        · elapsed 0:06 · 0:18 left · Stop cancels"``; before any count, the general line."""
        prog = self._prep_progress
        if not prog or not prog.get("total"):
            return tr("job.preparing")
        done, total = prog["done"], prog["total"]
        elapsed = time.monotonic() - prog["t0"]
        parts = [tr("job.prep." + prog["phase"], done=f"{done:,}", total=f"{total:,}", pct=100 * done // total),
                 tr("job.elapsed", t=format_duration(elapsed))]
        if done and elapsed > 0:
            parts.append(tr("job.eta", t=format_duration((total - done) * elapsed / done)))
        parts.append(tr("job.stop_cancels"))
        return " · ".join(parts)

    def preparing(self) -> bool:
        """True while a Start is being prepared (before its job exists)."""
        with self._prep_lock:
            return self._prep is not None

    def preparing_now(self):
        """The panel the moment Start or the recipe button is pressed: the status says what
        happens before the run starts, and Stop is live (it ends the preparation)."""
        return (tr("job.preparing"), *self.buttons(True, False))

    def cli_text(self, run_dir: Path, resume: bool = False) -> str:
        return JobManager.display_command(self.kind, _display_path(run_dir), list(self.resume_args) if resume else [])

    def buttons(self, running: bool, has_run: bool):
        import gradio as gr

        return (gr.update(interactive=not running and not self.public),
                gr.update(interactive=running),
                gr.update(interactive=not running and has_run and not self.public))

    def launch(self, run: Path, resume: bool):
        cmd = self.command(run, resume) if self.command else None
        return self.jm.start(self.kind, run, cmd=cmd, extra_args=list(self.resume_args) if resume and cmd is None else ())

    def prepare(self, *values) -> str:
        """Checks + the run folder with its config.yaml; returns the folder (not started).

        The recipe button passes its config maker as the only value; it gets the stop
        event (``fn(stop=event)``), so Stop ends a recipe's first-use data generation within
        one scene and its partial data is deleted (:class:`~studio.errors.StoppedError`).
        Returns "" when Stop ended the preparation: no run folder is left, and
        :attr:`_prep_note` says what happened (Stop shows it in the status line).
        """
        ev = None
        try:
            if self.public:
                raise user_error(tr("job.public_off"))
            cur = self.jm.current()
            if cur is not None:
                raise user_error(tr("job.busy", kind=cur.kind, id=cur.id))
            with self._prep_lock:
                if self._prep is not None:
                    raise user_error(tr("job.preparing_busy"))
                ev = self._prep = threading.Event()
            self._prep_progress = None
            try:
                if values and callable(values[0]):  # the recipe button: its own config maker, no form
                    run_dir, text = _call_with(values[0], stop=ev, progress=self.prep_progress)
                else:
                    run_dir, text = _call_with(self.make_config, *values, stop=ev, progress=self.prep_progress)
            except StoppedError as e:  # the generation (its partial data deleted) or the data check
                checking = getattr(e, "phase", "") == "checking"
                return self._stopped(ev, tr("job.prep_stopped" if checking else "job.prep_stopped_data"))
            run = Path(run_dir)
            if ev.is_set():  # Stop came after the checks: the fresh (empty) folder goes, nothing starts
                try:
                    run.rmdir()
                except OSError:
                    pass
                return self._stopped(ev, tr("job.prep_stopped"))
            run.mkdir(parents=True, exist_ok=True)
            if text is not None:
                tmp = run / f".{CONFIG_FILE}.tmp"
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(run / CONFIG_FILE)
        except Exception as e:  # noqa: BLE001 - every failure becomes a gr.Error
            raise _gr_error(e) from None
        finally:
            if ev is not None:
                with self._prep_lock:
                    if self._prep is ev:
                        self._prep = None
                ev.finished = True  # type: ignore[attr-defined]
        return str(run)

    def _stopped(self, ev: threading.Event, note: str) -> str:
        ev.note = self._prep_note = note  # type: ignore[attr-defined]
        return ""

    def start_prepared(self, run_dir):
        if not run_dir:  # Stop ended the preparation: say so, and watch no run (as after a refusal)
            return ("", self._prep_note, "", "", *self.buttons(False, False))
        run = Path(run_dir)
        try:
            self.launch(run, resume=False)
        except Exception as e:  # noqa: BLE001
            raise _gr_error(e) from None
        return (str(run), status_line(run), tail_file(run / LOG_FILE, self.log_lines), self.cli_text(run),
                *self.buttons(True, True))

    def start(self, *values):
        run = self.prepare(*values)
        if not run:
            raise user_error(self._prep_note)
        return self.start_prepared(run)

    def stop(self, run_dir):
        with self._prep_lock:
            prep = self._prep
        if prep is not None and self.jm.current() is None:  # no job yet: end the preparation
            prep.set()
            if not wait_finished(prep, timeout=10.0):
                return tr("job.prep_stopping")
            if getattr(prep, "note", None):
                return prep.note
            # it had just passed its checks: its job starts in a moment, and is stopped below
            wait_until(lambda: self.jm.current() is not None, timeout=3.0)
        try:
            cur = self.jm.current()
            if cur is None:
                raise user_error(tr("job.none_running"))
            if cur.kind != self.kind and (not run_dir or Path(run_dir).resolve() != cur.run_dir):
                raise user_error(tr("job.other_kind", kind=cur.kind, id=cur.id))
            self.jm.stop(graceful_timeout=self.graceful_timeout, wait=False)
        except Exception as e:  # noqa: BLE001
            raise _gr_error(e) from None
        line = status_line(cur.run_dir)
        said = (tr("job.stopping"), tr("job.stopping_early"))
        return line if any(w in line for w in said) else line + " · " + tr("job.stopping")

    def resume(self, run_dir):
        try:
            if self.public:
                raise user_error(tr("job.public_off"))
            if not run_dir:
                raise user_error(tr("job.nothing_to_resume"))
            run = Path(run_dir)
            cur = self.jm.current()
            if cur is not None:
                raise user_error(tr("job.busy", kind=cur.kind, id=cur.id))
            if find_last_checkpoint(run) is None:
                raise user_error(tr("job.no_complete_checkpoint", name=run.name))
            self.launch(run, resume=True)
        except Exception as e:  # noqa: BLE001
            raise _gr_error(e) from None
        return (str(run), status_line(run), tail_file(run / LOG_FILE, self.log_lines), self.cli_text(run, True),
                *self.buttons(True, True))

    def poll(self, run_dir):
        import gradio as gr

        if self.preparing():  # a Start is being prepared: no job yet, Stop ends it
            return (self.preparing_text(), gr.skip(), *self.buttons(True, False))
        if not run_dir:  # nothing to watch: keep what the panel says (e.g. why a Start was refused)
            return (gr.skip(), gr.skip(), *self.buttons(False, False))
        st = read_status(run_dir)
        running = bool(st) and effective_status(st) == "running"
        text = tail_file(Path(run_dir) / LOG_FILE, self.log_lines)
        return (status_line(run_dir), text, *self.buttons(running, True))

    def refused(self):
        """After a refused Start: the panel no longer shows the previous run (its failure
        would read as this Start's); the run stays in the picker."""
        return "", tr("job.not_started"), "", "", *self.buttons(False, False)

    def attach(self):
        """Page load: the running job of this kind, else this kind's newest run, else nothing."""
        cur = self.jm.current()
        run = None
        if cur is not None and cur.kind == self.kind:
            run = cur.run_dir
        else:
            runs = list_runs(self.ctx.runs_dir, kind=self.kind)
            run = Path(runs[0].path) if runs else None
        if run is None:
            return ("", status_line(None), "", "", *self.buttons(cur is not None, False))
        st_text, log_text, *btn_updates = self.poll(str(run))
        return (str(run), st_text, log_text, self.cli_text(run), *btn_updates)



def _call_with(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` with only the keyword arguments ``fn`` takes (a tab's config
    maker may not take ``stop`` or ``progress``)."""
    import inspect

    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)


def job_panel(ctx, kind: str, make_config: Callable[..., tuple[str | Path, str | None]], *,
              inputs: Sequence[Any] = (), resume_args: Sequence[str] = ("--resume",),
              graceful_timeout: float = 60.0, poll_s: float = 2.0, log_lines: int = 60,
              command: Callable[[Path, bool], list[str]] | None = None,
              manager: JobManager | None = None,
              recipe: tuple[Any, Callable[..., tuple[str | Path, str | None]]] | None = None,
              recipe_button: Any = None) -> JobPanel:
    """Add Start / Stop / Resume, a status line, the log tail and the CLI command.

    Args:
        ctx: the :class:`~studio.ui.context.AppContext` (``ctx.runs_dir`` holds the runs;
            ``ctx.public`` disables training).
        kind: the command name (``"sft"``, ``"rl"``).
        make_config: ``fn(*values of inputs) -> (run_dir, config_yaml_text | None)``.
        inputs: the form components whose values go to ``make_config``.
        resume_args: appended to the command when resuming.
        graceful_timeout: seconds the trainer gets to save a checkpoint after Stop.
        poll_s: refresh period of status/log (and of curves sharing ``panel.timer``).
        log_lines: lines of ``train.log`` shown.
        command: ``fn(run_dir, resume) -> argv`` override of the child command (tests).
        manager: a JobManager (default: one for ``ctx.runs_dir``).
        recipe: ``(button label, fn(stop) -> (run_dir, config_yaml_text))``: a second start
            button that runs a ready-made recipe (a new run folder each click) with one
            click, ignoring the form. ``stop`` is a ``threading.Event`` the panel's Stop
            sets while no job exists yet: hand it to the recipe's data generation
            (:func:`studio.engine.train.sft.check_data`), which then raises
            :class:`~studio.errors.StoppedError` and keeps nothing.
        recipe_button: a button the tab already placed (e.g. at its top, where a newcomer
            sees it) to use as the recipe's start button instead of one in the panel's row.

    Returns:
        A :class:`JobPanel`.
    """
    import gradio as gr
    from gradio.context import Context

    h = _PanelHandlers(ctx, kind, make_config, manager or JobManager(ctx.runs_dir), resume_args=resume_args,
                       graceful_timeout=graceful_timeout, log_lines=log_lines, command=command)

    with gr.Group():
        with gr.Row():
            start_btn = gr.Button(t("job.start"), variant="primary", interactive=not h.public)
            recipe_btn = recipe_button if recipe_button is not None or not recipe else gr.Button(
                recipe[0], variant="secondary", interactive=not h.public, scale=2, elem_id=f"{kind}-recipe-btn")
            stop_btn = gr.Button(t("common.stop"), variant="stop", interactive=False, elem_id=f"{kind}-stop-btn")
            resume_btn = gr.Button(t("job.resume"), interactive=False)
        status = gr.Textbox(label=t("common.status"), value=status_line(None), interactive=False, lines=1,
                            max_lines=2, elem_id=f"{kind}-status")
        cli = gr.Code(label=t("job.cli"),
                      language="shell", interactive=False, lines=1)
        log_box = gr.Textbox(label=t("common.log_tail"), lines=10, max_lines=10, interactive=False,
                             autoscroll=True)
    run_dir_state = gr.State("")
    timer = gr.Timer(poll_s)
    btns = [start_btn, stop_btn, resume_btn]
    # From the page: checks first with no visible output, so a refusal (bad value, busy GPU)
    # is a toast and never leaves an "Error" cover on the panel; API clients call
    # /<kind>_start, which does both steps and raises.
    pending = gr.State(None)
    # the moment either start button is pressed: Stop is live while the checks (and a
    # recipe's first-use data generation) run, before any job exists
    for b in (start_btn, recipe_btn):
        if b is not None:
            b.click(h.preparing_now, None, [status, *btns], api_name=False, queue=False, show_progress="hidden")
    started = start_btn.click(h.prepare, inputs=list(inputs), outputs=[pending], api_name=False, show_progress="hidden")
    started.success(h.start_prepared, inputs=[pending], outputs=[run_dir_state, status, log_box, cli, *btns],
                    api_name=False)
    started.failure(h.refused, None, [run_dir_state, status, log_box, cli, *btns], api_name=False, queue=False,
                    show_progress="hidden")
    gr.Button(visible=False).click(h.start, inputs=list(inputs), outputs=[run_dir_state, status, log_box, cli, *btns],
                                   api_name=f"{kind}_start")
    if recipe_btn is not None:
        recipe_fn = recipe[1]
        from_recipe = recipe_btn.click(lambda: h.prepare(recipe_fn), outputs=[pending], api_name=False,
                                       show_progress="hidden")
        from_recipe.success(h.start_prepared, inputs=[pending], outputs=[run_dir_state, status, log_box, cli, *btns],
                            api_name=False)
        from_recipe.failure(h.refused, None, [run_dir_state, status, log_box, cli, *btns], api_name=False,
                            queue=False, show_progress="hidden")
        gr.Button(visible=False).click(lambda: h.start(recipe_fn), outputs=[run_dir_state, status, log_box, cli, *btns],
                                       api_name=f"{kind}_start_recipe")
    stop_btn.click(h.stop, inputs=[run_dir_state], outputs=[status], api_name=f"{kind}_stop")
    resume_btn.click(h.resume, inputs=[run_dir_state], outputs=[run_dir_state, status, log_box, cli, *btns],
                     api_name=f"{kind}_resume")
    timer.tick(h.poll, inputs=[run_dir_state], outputs=[status, log_box, *btns], show_progress="hidden",
               queue=False, api_visibility="undocumented")
    root = Context.root_block
    if root is not None:
        root.load(h.attach, outputs=[run_dir_state, status, log_box, cli, *btns], api_visibility="undocumented")
    return JobPanel(run_dir_state=run_dir_state, start_btn=start_btn, stop_btn=stop_btn, resume_btn=resume_btn,
                    status=status, log=log_box, cli=cli, timer=timer, manager=h.jm,
                    fns={"start": h.start, "prepare": h.prepare, "stop": h.stop, "resume": h.resume, "poll": h.poll,
                         "attach": h.attach}, recipe_btn=recipe_btn)


def _display_path(p: Path) -> Path:
    """``p`` relative to the working directory when it is inside it (shorter CLI lines)."""
    try:
        return Path(p).resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return Path(p)
