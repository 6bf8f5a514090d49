"""Shared Gradio building blocks of the training tabs: a job panel and live curves.

A tab builds its form, then::

    panel = job_panel(ctx, kind="sft", make_config=make_config, inputs=[lr, rank, data, ...])
    curves = live_curves(panel.run_dir_state, groups=SFT_CURVES, timer=panel.timer)

``make_config(*input_values) -> (run_dir, config_yaml_text)`` turns the form into a run
folder and its YAML (typically ``run_dir = new_run_dir(ctx.runs_dir, "sft", name)``;
raise a :class:`~studio.errors.StudioError` for bad input — it is shown as ``gr.Error``).
The panel writes ``config.yaml`` (when the text is not None), starts
``studio <kind> --config <run_dir>/config.yaml`` as a child process through
:class:`~studio.engine.train.jobs.JobManager`, shows the equivalent CLI command, polls
``status.json`` / ``progress.json`` / ``train.log`` every ``poll_s`` seconds, and on page
load re-attaches to the running job (or shows this kind's newest run). Stop sends the
graceful stop (checkpoint, then SIGKILL after ``graceful_timeout``); Resume starts the
same run folder again with ``--resume``.

State: the run folder is per browser session (``gr.State``); the job itself lives in
files under ``ctx.runs_dir``, so every visitor and every restart sees the same job.
Nothing here holds a module-level "running" flag. The only module-level object is a small
cache of incremental metrics readers keyed by file path (read-only data).

Log text is shown in a plain ``gr.Textbox`` (never rendered as HTML/Markdown).

The handler functions are also returned (``panel.fns``) so tests and other tabs can call
them without a browser.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from studio.engine.train.curriculum import TIER_NAMES
from studio.engine.train.jobs import JobManager, tail_file
from studio.engine.train.metrics import PROGRESS_FILE, MetricsReader, read_json, to_long_frame
from studio.engine.train.runs import (
    CONFIG_FILE,
    LOG_FILE,
    effective_status,
    exportable_adapter,
    find_adapter,
    find_last_checkpoint,
    format_duration,
    list_runs,
    read_status,
)
from studio.errors import StudioError
from studio.ui.i18n import CATALOG as _CATALOG
from studio.ui.i18n import curve_label, gr_error, t, tr, unexpected_error, user_error

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- curve groups
@dataclass
class CurveGroup:
    """One plot: a title and the metric keys (exact names or globs) drawn in it.

    Attributes:
        title: plot label.
        keys: metric names from ``metrics.jsonl`` (``train/loss``) or fnmatch globs
            (``rewards/*/mean``, ``curriculum/tier_weight/*``).
        smooth: EMA alpha; when set each series also gets ``"<key> (smoothed)"``.
        y_title: y-axis label (default: none).
    """

    title: str
    keys: list[str]
    smooth: float | None = None
    y_title: str | None = None


#: Curves of the SFT tab (names written by MetricsCallback from TRL's SFTTrainer logs).
SFT_CURVES = [
    CurveGroup("Loss (raw + smoothed) and eval loss", ["train/loss", "eval/loss"], smooth=0.1),
    # the skill, measured by generation on held-out prompts (eval_data; studio.engine.train.skill_eval)
    CurveGroup("Held-out format rate and accuracy", ["skill/format_rate", "skill/accuracy"]),
    CurveGroup("Token accuracy", ["train/mean_token_accuracy", "eval/mean_token_accuracy"]),
    CurveGroup("Learning rate", ["train/learning_rate"]),
    CurveGroup("Grad norm", ["train/grad_norm"]),
    CurveGroup("Tokens / s", ["train/tokens_per_s"]),
]

#: Curves of the RL tab (names written by studio.engine.train.rl's GRPO trainer and TRL).
RL_CURVES = [
    CurveGroup("Reward mean and held-out accuracy", ["rewards/mean", "train/reward", "eval/accuracy"], smooth=0.1),
    CurveGroup("Reward std", ["rewards/std", "train/reward_std"]),
    CurveGroup("Format / forced answer / truncation", ["rollout/format_correct", "rollout/forced_answer",
                                                       "rollout/truncated"]),
    CurveGroup("Tier sampling weights", ["curriculum/tier_weight/*"]),
    CurveGroup("Tier pass rates", ["curriculum/tier_pass_rate/*"]),
    CurveGroup("Prompts per tier", ["curriculum/tier_count/*"]),
    CurveGroup("Zero-variance groups and expansion", ["curriculum/zero_variance_frac", "curriculum/expansion_ema"]),
    CurveGroup("Completion length", ["completions/length_mean", "completions/length_max",
                                     "completions/mean_length", "completions/max_length"]),
    CurveGroup("KL", ["kl/*", "train/kl"]),
    CurveGroup("Loss", ["train/loss"], smooth=0.1),
    CurveGroup("Grad norm", ["train/grad_norm"]),
    CurveGroup("Learning rate", ["train/learning_rate"]),
]

#: What the Runs tab shows for any run (empty plots for metrics a run does not have).
GENERAL_CURVES = [
    CurveGroup("Loss", ["train/loss", "eval/loss"], smooth=0.1),
    CurveGroup("Reward / accuracy", ["rewards/mean", "train/reward", "eval/accuracy"], smooth=0.1),
    CurveGroup("Learning rate", ["train/learning_rate"]),
    CurveGroup("Grad norm", ["train/grad_norm"]),
]


def _as_group(g: CurveGroup | tuple | dict) -> CurveGroup:
    if isinstance(g, CurveGroup):
        return g
    if isinstance(g, dict):
        return CurveGroup(**g)
    title, keys, *rest = g
    return CurveGroup(title, [keys] if isinstance(keys, str) else list(keys), *rest)


_READERS: "OrderedDict[str, MetricsReader]" = OrderedDict()
_READERS_LOCK = threading.Lock()
_MAX_READERS = 32


def _records(run_dir: str | Path) -> list[dict]:
    """All metrics records of a run, parsed incrementally (cached reader per file)."""
    key = str(Path(run_dir).resolve())
    with _READERS_LOCK:
        reader = _READERS.get(key)
        if reader is None:
            reader = _READERS[key] = MetricsReader(Path(key))
            while len(_READERS) > _MAX_READERS:
                _READERS.popitem(last=False)
        else:
            _READERS.move_to_end(key)
    return list(reader.read())


#: Series a glob may stand for, named up front (see :func:`plot_value`): the curriculum's
#: tiers and the RL trainer's KL probe.
_GLOB_SERIES = {
    "curriculum/tier_weight/*": [f"curriculum/tier_weight/{t}" for t in TIER_NAMES],
    "curriculum/tier_pass_rate/*": [f"curriculum/tier_pass_rate/{t}" for t in TIER_NAMES],
    "curriculum/tier_count/*": [f"curriculum/tier_count/{t}" for t in TIER_NAMES],
    "kl/*": ["kl/probe"],
}


def expected_series(keys: Sequence[str], smooth: float | None = None) -> list[str]:
    """The series names a plot of ``keys`` can show, in legend order: each exact key (and
    its ``" (smoothed)"`` twin when ``smooth``, except for sparse ``eval/`` curves), known
    globs expanded (:data:`_GLOB_SERIES`).

    >>> expected_series(["train/loss", "eval/loss"], smooth=0.1)
    ['train/loss', 'train/loss (smoothed)', 'eval/loss']
    """
    out: list[str] = []
    for k in keys:
        names = _GLOB_SERIES.get(k, [] if any(c in k for c in "*?[") else [k])
        for n in names:
            out += [n, f"{n} (smoothed)"] if smooth and not n.startswith("eval/") else [n]
    return list(dict.fromkeys(out))


#: Prefixes left out of legend labels (the plot's title already says what they are).
_LABEL_PREFIXES = ("train/", "curriculum/tier_weight/", "curriculum/tier_pass_rate/", "curriculum/tier_count/",
                   "curriculum/", "completions/", "rollout/", "rewards/")


def series_label(name: str) -> str:
    """A short legend label for a metric series (so a legend fits a 1280-px-wide page).

    >>> [series_label(s) for s in ("train/loss (smoothed)", "eval/loss", "curriculum/tier_weight/easy",
    ...                            "rewards/mean", "kl/probe")]
    ['loss (smoothed)', 'eval loss', 'easy', 'mean reward', 'kl probe']
    """
    if name == "rewards/mean" or name.startswith("rewards/mean "):
        return "mean reward" + name[len("rewards/mean"):]
    for p in _LABEL_PREFIXES:
        if name.startswith(p):
            return name[len(p):]
    return name.replace("/", " ", 1)


def plot_value(frame, series: Sequence[str]):
    """``frame`` (``step``, ``value``, ``series``) with one leading row per name in
    ``series``, so the legend order is fixed: a copy of the series' first point, or, for a
    series with no data yet, a lone point at the frame's first point (``(0, 0)`` when the
    frame is empty) — a line of one point is not drawn, and the axes get tick labels even
    before the first metric, so the layout leaves room for them and for the legend.

    Why: the plot (gradio 6.31 ``LinePlot``/``BarPlot``) fixes its colour scale, legend and
    layout when it builds its Vega spec; later data only replaces rows. A
    plot built before its series exist (an empty frame at page load, or a redraw when its
    tab is shown) draws new lines with no colour at all and a legend that says only
    "series". Naming every series in every value keeps the scale and the legend complete,
    whenever the spec is built.

    Series names become short legend labels (:func:`series_label`).
    """
    import pandas as pd

    x0, y0 = (float(frame["step"].iloc[0]), float(frame["value"].iloc[0])) if len(frame) else (0.0, 0.0)
    rows = []
    for name in series:
        own = frame[frame["series"] == name]
        rows.append((float(own["step"].iloc[0]), float(own["value"].iloc[0]), name) if len(own) else (x0, y0, name))
    head = pd.DataFrame({"step": pd.Series([r[0] for r in rows], dtype="float64"),
                         "value": pd.Series([r[1] for r in rows], dtype="float64"),
                         "series": pd.Series([r[2] for r in rows], dtype="object")})
    out = pd.concat([head, frame.astype({"step": "float64"})], ignore_index=True) if len(series) else frame.copy()
    out["series"] = out["series"].map(series_label).astype("object")
    return out


def curve_frames(run_dir: str | Path | None, groups: Sequence[CurveGroup | tuple]) -> list:
    """One long-format DataFrame (``step``, ``value``, ``series``) per group for ``run_dir``
    (empty frames when there is no run or no such metric yet)."""
    recs = _records(run_dir) if run_dir else []
    out = []
    for g in map(_as_group, groups):
        df = to_long_frame(recs, g.keys, smooth=g.smooth)
        sparse = df["series"].str.startswith("eval/") & df["series"].str.endswith(" (smoothed)")
        out.append(df[~sparse].reset_index(drop=True))  # a few eval points: smoothing them only misleads
    return out


def runs_of_kind(runs_dir: str | Path, kind: str) -> list[str]:
    """Run folders of ``kind`` under ``runs_dir``, newest first ([] if unreadable)."""
    try:
        return [str(r.path) for r in list_runs(runs_dir, kind=kind)]
    except (OSError, StudioError):
        return []


def run_picker(ctx, kind: str, run_dir_state):
    """A dropdown of earlier ``kind`` runs (+ refresh) that points the panel at one, to
    watch its curves, resume it, or try / export its adapter. Returns the dropdown."""
    import gradio as gr

    with gr.Row():
        pick = gr.Dropdown(runs_of_kind(ctx.runs_dir, kind), label=t("rl.run_pick"), allow_custom_value=True,
                           scale=4, elem_id=f"{kind}-run-pick")
        again = gr.Button("↻", scale=0, min_width=40)
    pick.change(lambda r: r or "", pick, run_dir_state, api_visibility="undocumented")
    again.click(lambda: gr.update(choices=runs_of_kind(ctx.runs_dir, kind)), None, pick,
                api_visibility="undocumented")
    # follow the panel: a new (or resumed, or re-attached) run becomes the picked one
    run_dir_state.change(lambda r: picker_update(ctx.runs_dir, kind, r), run_dir_state, pick, queue=False,
                         show_progress="hidden", api_visibility="undocumented")
    return pick


def picker_update(runs_dir, kind: str, run_dir: str | None) -> dict:
    """``gr.update`` of the run picker for the panel's run: fresh choices, that run picked
    (``None`` when the panel watches no run)."""
    import gradio as gr

    choices = runs_of_kind(runs_dir, kind)
    if run_dir and str(run_dir) not in choices:
        choices = [str(run_dir), *choices]
    return gr.update(choices=choices, value=str(run_dir) if run_dir else None)


def enclosing_tab():
    """The ``gr.Tab`` being built around the current point (None when built outside one,
    e.g. a tab module built alone in a test)."""
    import gradio as gr
    from gradio.context import Context

    block = Context.block
    while block is not None and not isinstance(block, gr.Tab):
        block = getattr(block, "parent", None)
    return block


def on_tab_shown(steps: Sequence[tuple[Callable, list, list]]) -> None:
    """Run ``steps`` ((fn, inputs, outputs), one after the other) each time the enclosing
    tab is selected. Used to pick up state another tab handed over (an adapter from
    "Try it") and to redraw plots: Vega draws a plot updated while its tab was hidden at
    zero width, and an unchanged value is never redrawn."""
    tab = enclosing_tab()
    if tab is None or not steps:
        return
    fn, inputs, outputs = steps[0]
    ev = tab.select(fn, inputs, outputs, queue=False, show_progress="hidden", api_visibility="undocumented")
    for fn, inputs, outputs in steps[1:]:
        ev = ev.then(fn, inputs, outputs, queue=False, show_progress="hidden", api_visibility="undocumented")


@dataclass
class LiveCurves:
    """What :func:`live_curves` built: the plots (in group order), the timer, the refresh fn."""

    plots: list
    timer: Any
    refresh: Callable[[str | None], list]
    groups: list[CurveGroup] = field(default_factory=list)


def live_curves(run_dir_state, groups: Sequence[CurveGroup | tuple] = SFT_CURVES, *, timer=None,
                every: float = 2.0, columns: int = 2, height: int = 260) -> LiveCurves:
    """Add one ``gr.LinePlot`` per group, refreshed from ``<run_dir>/metrics.jsonl``.

    Args:
        run_dir_state: a component holding the run folder path (``panel.run_dir_state``,
            or any ``gr.State``/``gr.Textbox`` with a path; empty → empty plots).
        groups: :class:`CurveGroup` items, or ``(title, keys[, smooth])`` tuples.
        timer: a ``gr.Timer`` to refresh on (default: a new one ticking every ``every`` s).
        columns: plots per row.
        height: plot height in pixels.

    Plots refresh on every tick and whenever the run folder changes; a tick that finds no
    new metrics line sends nothing (``gr.skip()``), so idle pages cost no bandwidth.
    """
    import gradio as gr

    gs = [_as_group(g) for g in groups]
    plots = []
    for i in range(0, len(gs), columns):
        with gr.Row():
            for g in gs[i:i + columns]:
                # the title is drawn in the plot; the block label above it would push the
                # legend out of the fixed height (cut off below the x axis)
                plots.append(gr.LinePlot(
                    value=plot_value(to_long_frame([], g.keys), expected_series(g.keys, g.smooth)), x="step",
                    y="value", color="series", label=curve_label(g.title), show_label=False, color_title=" ",
                    title=curve_label(g.title), y_title=g.y_title or "", x_title="step", height=height,
                    y_axis_format=".3~g"))
    timer = timer if timer is not None else gr.Timer(every)
    seen = gr.State(None)  # (run folder, records drawn) of this session: skip redraws when unchanged

    names = [expected_series(g.keys, g.smooth) for g in gs]

    def refresh(run_dir):
        return [plot_value(f, n) for f, n in zip(curve_frames(run_dir, gs), names)]

    def tick(run_dir, last):
        n = len(_records(run_dir)) if run_dir else 0
        if last is not None and tuple(last) == (run_dir, n):
            return [gr.skip()] * len(plots) + [last]
        return [*refresh(run_dir), (run_dir, n)]

    timer.tick(tick, inputs=[run_dir_state, seen], outputs=[*plots, seen], show_progress="hidden", queue=False,
               api_visibility="undocumented")
    run_dir_state.change(tick, inputs=[run_dir_state, gr.State(None)], outputs=[*plots, seen],
                         show_progress="hidden", queue=False, api_visibility="undocumented")
    blank = [plot_value(to_long_frame([], g.keys), n) for g, n in zip(gs, names)]
    on_tab_shown([(lambda: blank, [], plots), (refresh, [run_dir_state], plots)])
    return LiveCurves(plots=plots, timer=timer, refresh=refresh, groups=gs)


# --------------------------------------------------------------------------- job panel
def status_line(run_dir: str | Path | None) -> str:
    """One line about a run for the panel: status, step/total, elapsed, ETA, checkpoint.

    ``"running — step 12/100 (12%) · elapsed 0:30 · ETA 3:43 · run <id>"``; finished,
    stopped and failed runs say how they ended (failed: the recorded error).
    """
    if not run_dir:
        return tr("job.no_run")
    run = Path(run_dir)
    st = read_status(run)
    prog = read_json(run / PROGRESS_FILE)
    status = effective_status(st) if st else "not started"
    key = "job.status." + status.replace(" ", "_")
    parts = [tr(key) if key in _CATALOG else status]
    step, total = prog.get("step"), prog.get("max_steps")
    if step is not None:
        parts.append(tr("job.step_of", step=step, total=total, pct=f"{100 * step / total:.0f}") if total
                     else tr("job.step", step=step))
    if status == "running":
        if prog.get("elapsed_s") is not None:
            parts.append(tr("job.elapsed", t=format_duration(prog["elapsed_s"])))
        if prog.get("eta_s") is not None:
            parts.append(tr("job.eta", t=format_duration(prog["eta_s"])))
        if st.get("stop_requested") or read_json(run / "job.json").get("stop_requested"):
            parts.append(tr("job.stopping"))
    else:
        if st.get("started") and st.get("ended"):
            parts.append(tr("job.took", t=format_duration(st["ended"] - st["started"])))
        if status == "stopped":
            ck = find_last_checkpoint(run)
            parts.append(tr("job.resume_from", name=ck.name) if ck else tr("job.no_checkpoint"))
        if status == "finished" and find_adapter(run):
            parts.append(tr("job.adapter", path=find_adapter(run)))
        if status == "failed" and st.get("error"):
            parts.append(str(st["error"])[:300])
    parts.append(tr("job.run", name=run.name))
    return " · ".join(parts)


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


def as_gradio_error(e: BaseException, where: str = "a UI handler"):
    """StudioError → gr.Error(message); anything else is logged with its traceback and shown
    short (never a traceback in the UI). Call inside ``except``; ``raise`` the result."""
    import gradio as gr

    if isinstance(e, gr.Error):
        return e
    if isinstance(e, StudioError):
        return gr_error(e)
    log.exception("unexpected error in %s", where)
    return unexpected_error(e)


def _gr_error(e: BaseException):
    return as_gradio_error(e, "a job panel handler")


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
        msg = gr.Markdown()

    def adapter_of(run_dir: str) -> Path:
        if not run_dir:
            raise StudioError(tr(no_run_key))
        if (Path(run_dir) / "model" / "config.json").is_file():  # finetuning: full — a whole model, no adapter
            raise StudioError(tr("common.full_model", path=Path(run_dir) / "model"))
        a = exportable_adapter(run_dir)
        if a is None:
            raise StudioError(tr("common.no_adapter_yet"))
        return a

    def evaluate_before_after(run_dir):
        """Before/after table on the run's held-out prompts (base vs base + adapter / the trained model)."""
        from studio.engine.train.skill_eval import evaluate_run
        from studio.engine.workshop.evaluate import before_after_table

        try:
            if not run_dir:
                raise StudioError(tr(no_run_key))
            before, after = evaluate_run(run_dir, n=60)
        except Exception as e:  # noqa: BLE001
            raise as_gradio_error(e, f"the {kind} tab") from None
        return before_after_table(before, after)

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
        return tr("common.merged_verified" if ok else "common.merged_unverified", path=rep.get("out_dir", target))

    try_btn.click(lambda r: hand_over(r, "chat_adapter", "common.adapter_for_chat"), [run_dir_state], msg,
                  api_name=f"{kind}_try")
    cmp_btn.click(lambda r: hand_over(r, "compare_adapter", "common.adapter_for_compare"), [run_dir_state], msg,
                  api_name=f"{kind}_compare")
    export_btn.click(export, [run_dir_state, export_dir], msg, api_name=f"{kind}_export",
                     concurrency_id=GPU_CONCURRENCY_ID)
    eval_btn.click(evaluate_before_after, [run_dir_state], msg, api_name=f"{kind}_evaluate",
                   concurrency_id=GPU_CONCURRENCY_ID)
    return msg


def job_panel(ctx, kind: str, make_config: Callable[..., tuple[str | Path, str | None]], *,
              inputs: Sequence[Any] = (), resume_args: Sequence[str] = ("--resume",),
              graceful_timeout: float = 60.0, poll_s: float = 2.0, log_lines: int = 60,
              command: Callable[[Path, bool], list[str]] | None = None,
              manager: JobManager | None = None,
              recipe: tuple[Any, Callable[[], tuple[str | Path, str | None]]] | None = None) -> JobPanel:
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
        recipe: ``(button label, fn() -> (run_dir, config_yaml_text))``: a second start
            button that runs a ready-made recipe (a new run folder each click) with one
            click, ignoring the form.

    Returns:
        A :class:`JobPanel`.
    """
    import gradio as gr
    from gradio.context import Context

    jm = manager or JobManager(ctx.runs_dir)
    public = bool(getattr(ctx, "public", False))

    def cli_text(run_dir: Path, resume: bool = False) -> str:
        return JobManager.display_command(kind, _display_path(run_dir), list(resume_args) if resume else [])

    def buttons(running: bool, has_run: bool):
        return (gr.update(interactive=not running and not public),
                gr.update(interactive=running),
                gr.update(interactive=not running and has_run and not public))

    def launch(run: Path, resume: bool):
        cmd = command(run, resume) if command else None
        return jm.start(kind, run, cmd=cmd, extra_args=list(resume_args) if resume and cmd is None else ())

    def prepare(*values) -> str:
        """Checks + the run folder with its config.yaml; returns the folder (not started)."""
        try:
            if public:
                raise user_error(tr("job.public_off"))
            cur = jm.current()
            if cur is not None:
                raise user_error(tr("job.busy", kind=cur.kind, id=cur.id))
            if values and callable(values[0]):  # the recipe button: its own config maker, no form
                run_dir, text = values[0]()
            else:
                run_dir, text = make_config(*values)
            run = Path(run_dir)
            run.mkdir(parents=True, exist_ok=True)
            if text is not None:
                tmp = run / f".{CONFIG_FILE}.tmp"
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(run / CONFIG_FILE)
        except Exception as e:  # noqa: BLE001 - every failure becomes a gr.Error
            raise _gr_error(e) from None
        return str(run)

    def start_prepared(run_dir):
        run = Path(run_dir)
        try:
            launch(run, resume=False)
        except Exception as e:  # noqa: BLE001
            raise _gr_error(e) from None
        return (str(run), status_line(run), tail_file(run / LOG_FILE, log_lines), cli_text(run),
                *buttons(True, True))

    def start(*values):
        return start_prepared(prepare(*values))

    def stop(run_dir):
        try:
            cur = jm.current()
            if cur is None:
                raise user_error(tr("job.none_running"))
            if cur.kind != kind and (not run_dir or Path(run_dir).resolve() != cur.run_dir):
                raise user_error(tr("job.other_kind", kind=cur.kind, id=cur.id))
            jm.stop(graceful_timeout=graceful_timeout, wait=False)
        except Exception as e:  # noqa: BLE001
            raise _gr_error(e) from None
        return status_line(cur.run_dir) + " · " + tr("job.stopping")

    def resume(run_dir):
        try:
            if public:
                raise user_error(tr("job.public_off"))
            if not run_dir:
                raise user_error(tr("job.nothing_to_resume"))
            run = Path(run_dir)
            cur = jm.current()
            if cur is not None:
                raise user_error(tr("job.busy", kind=cur.kind, id=cur.id))
            if find_last_checkpoint(run) is None:
                raise user_error(tr("job.no_complete_checkpoint", name=run.name))
            launch(run, resume=True)
        except Exception as e:  # noqa: BLE001
            raise _gr_error(e) from None
        return (str(run), status_line(run), tail_file(run / LOG_FILE, log_lines), cli_text(run, True),
                *buttons(True, True))

    def poll(run_dir):
        if not run_dir:  # nothing to watch: keep what the panel says (e.g. why a Start was refused)
            return (gr.skip(), gr.skip(), *buttons(False, False))
        st = read_status(run_dir)
        running = bool(st) and effective_status(st) == "running"
        text = tail_file(Path(run_dir) / LOG_FILE, log_lines)
        return (status_line(run_dir), text, *buttons(running, True))

    def refused():
        """After a refused Start: the panel no longer shows the previous run (its failure
        would read as this Start's); the run stays in the picker."""
        return "", tr("job.not_started"), "", "", *buttons(False, False)

    def attach():
        """Page load: the running job of this kind, else this kind's newest run, else nothing."""
        cur = jm.current()
        run = None
        if cur is not None and cur.kind == kind:
            run = cur.run_dir
        else:
            runs = list_runs(ctx.runs_dir, kind=kind)
            run = Path(runs[0].path) if runs else None
        if run is None:
            return ("", status_line(None), "", "", *buttons(cur is not None, False))
        st_text, log_text, *btn_updates = poll(str(run))
        return (str(run), st_text, log_text, cli_text(run), *btn_updates)

    with gr.Group():
        with gr.Row():
            start_btn = gr.Button(t("job.start"), variant="primary", interactive=not public)
            recipe_btn = (gr.Button(recipe[0], variant="secondary", interactive=not public,
                                    elem_id=f"{kind}-recipe-btn") if recipe else None)
            stop_btn = gr.Button(t("common.stop"), variant="stop", interactive=False)
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
    started = start_btn.click(prepare, inputs=list(inputs), outputs=[pending], api_name=False, show_progress="hidden")
    started.success(start_prepared, inputs=[pending], outputs=[run_dir_state, status, log_box, cli, *btns],
                    api_name=False)
    started.failure(refused, None, [run_dir_state, status, log_box, cli, *btns], api_name=False, queue=False,
                    show_progress="hidden")
    gr.Button(visible=False).click(start, inputs=list(inputs), outputs=[run_dir_state, status, log_box, cli, *btns],
                                   api_name=f"{kind}_start")
    if recipe_btn is not None:
        recipe_fn = recipe[1]
        recipe_btn.click(lambda: prepare(recipe_fn), outputs=[pending], api_name=False, show_progress="hidden").success(
            start_prepared, inputs=[pending], outputs=[run_dir_state, status, log_box, cli, *btns], api_name=False)
        gr.Button(visible=False).click(lambda: start(recipe_fn), outputs=[run_dir_state, status, log_box, cli, *btns],
                                       api_name=f"{kind}_start_recipe")
    stop_btn.click(stop, inputs=[run_dir_state], outputs=[status], api_name=f"{kind}_stop")
    resume_btn.click(resume, inputs=[run_dir_state], outputs=[run_dir_state, status, log_box, cli, *btns],
                     api_name=f"{kind}_resume")
    timer.tick(poll, inputs=[run_dir_state], outputs=[status, log_box, *btns], show_progress="hidden",
               queue=False, api_visibility="undocumented")
    root = Context.root_block
    if root is not None:
        root.load(attach, outputs=[run_dir_state, status, log_box, cli, *btns], api_visibility="undocumented")
    return JobPanel(run_dir_state=run_dir_state, start_btn=start_btn, stop_btn=stop_btn, resume_btn=resume_btn,
                    status=status, log=log_box, cli=cli, timer=timer, manager=jm,
                    fns={"start": start, "prepare": prepare, "stop": stop, "resume": resume, "poll": poll, "attach": attach})


def _display_path(p: Path) -> Path:
    """``p`` relative to the working directory when it is inside it (shorter CLI lines)."""
    try:
        return Path(p).resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return Path(p)


def wait_until(pred: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    """Poll ``pred`` until true or ``timeout`` seconds pass (helper for tests and scripts)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(poll)
    return bool(pred())


def wait_finished(ev: threading.Event, timeout: float = 3.0) -> bool:
    """Wait (≤ ``timeout`` s) until a request marks its stop event ``finished``; True if it did."""
    deadline = time.perf_counter() + timeout
    while not getattr(ev, "finished", False) and time.perf_counter() < deadline:
        time.sleep(0.02)
    return bool(getattr(ev, "finished", False))


def stop_request(key: str, stops: dict, queued: dict, lock: threading.Lock) -> str | None:
    """Stop one browser session's request (Chat and Compare share this).

    A queued request is flagged so it will not start; a running one gets its stop event
    set and is waited for (≤ 3 s), so the status line is the request's own last word.

    Returns:
        The status text to show, or None when there is nothing to say (leave it as is).
    """
    with lock:
        ev, waiting = stops.get(key), queued.get(key)
    if waiting is not None:
        waiting.set()
    if ev is None:
        return tr("chat.stopped_queued") if waiting is not None else None
    ev.set()
    return None if wait_finished(ev) else tr("cmp.stopping")

