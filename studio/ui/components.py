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

import functools
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from studio.engine.train.curriculum import TIER_NAMES
from studio.engine.train.metrics import MetricsReader, to_long_frame
from studio.engine.train.runs import list_runs
from studio.errors import StudioError
from studio.ui.i18n import curve_label, empty_curve_label, gr_error, t, tr, unexpected_error

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

#: What the Runs tab shows for any run (empty plots for metrics a run does not have). The
#: held-out plot holds both kinds of run's held-out measure: SFT's skill scoring
#: (``skill/*``, studio.engine.train.skill_eval) and RL's held-out accuracy (``eval/accuracy``),
#: so an SFT run and the RL run that continued it compare on one chart.
GENERAL_CURVES = [
    CurveGroup("Loss", ["train/loss", "eval/loss"], smooth=0.1),
    CurveGroup("Held-out format rate and accuracy", ["skill/format_rate", "skill/accuracy", "eval/accuracy"]),
    CurveGroup("Reward", ["rewards/mean", "train/reward"], smooth=0.1),
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


def plot_value(frame, series: Sequence[str], *, stacked: bool = False):
    """``frame`` (``step``, ``value``, ``series``) with one leading row per name in
    ``series``, so the legend order is fixed: a copy of the series' first point, or, for a
    series with no data yet, a lone point at the frame's first point (``(0, 0)`` when the
    frame is empty) — a line of one point is not drawn, and the axes get tick labels even
    before the first metric, so the layout leaves room for them and for the legend.
    ``stacked`` (bars that add up): the leading rows carry 0, so the first bar is not doubled.

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
    if stacked:
        rows = [(x, 0.0, name) for x, _, name in rows]
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


#: Shortest x range of a chart, in steps. With whole-number ticks (:func:`chart_options`)
#: Vega still splits a range of 1 or 2 steps in halves (its tick count there is 2 or 3, and
#: d3's nice steps for that are 0.5); from 3 steps on the ticks are whole steps.
MIN_X_SPAN = 3


@functools.lru_cache(maxsize=64)
def _config_max_steps(path: str, stamp: tuple) -> int | None:
    """``max_steps`` of a run's ``config.yaml`` (``stamp``: its mtime and size, so an edited
    file is read again); None when unreadable or not set."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    n = data.get("max_steps") if isinstance(data, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def planned_steps(run_dir: str | Path | None) -> int | None:
    """The optimizer steps a run is set to take: ``progress.json``'s ``max_steps`` (the
    trainer's own count, also for a run given in epochs), else ``config.yaml``'s
    ``max_steps`` when it is positive; None when neither says (no run, a run in epochs
    that has not reached its first step)."""
    from studio.engine.train.metrics import PROGRESS_FILE, read_json

    if not run_dir:
        return None
    run = Path(run_dir)
    n = read_json(run / PROGRESS_FILE).get("max_steps")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return n
    cfg = run / "config.yaml"
    try:
        st = cfg.stat()
    except OSError:
        return None
    return _config_max_steps(str(cfg), (st.st_mtime_ns, st.st_size))


def x_range(run_dir: str | Path | None) -> list[int]:
    """The x range ``[0, last]`` (steps) every chart of a run shares: ``last`` is the most of
    the run's planned steps (:func:`planned_steps`), its last logged step and
    :data:`MIN_X_SPAN`. One range for all of a tab's charts, from the run's first step on:
    a metric logged only now and then (KL probes, tier bars) no longer gets its own
    narrower axis, and the axis does not rescale while the run goes on."""
    recs = _records(run_dir) if run_dir else []
    last = max((int(r["step"]) for r in recs if isinstance(r.get("step"), (int, float))), default=0)
    return [0, max(planned_steps(run_dir) or 0, last, MIN_X_SPAN)]


def chart_update(frame, series: Sequence[str], title: str, x_lim: Sequence[int], *, stacked: bool = False) -> dict:
    """The ``gr.update`` of one chart: its curves (:func:`plot_value`) on the run's x range;
    a chart with no point yet is gradio's empty plot with a label that says so
    (:func:`empty_chart`), not axes that read a lone "0"."""
    import gradio as gr

    if not len(frame):
        return empty_chart(title, x_lim)
    return gr.update(value=plot_value(frame, series, stacked=stacked), show_label=False, label=curve_label(title),
                     x_lim=list(x_lim))


def empty_chart(title: str, x_lim: Sequence[int] | None = None) -> dict:
    """``gr.update`` of a chart with nothing to draw: no value (gradio shows its empty-plot
    placeholder) and the block label "<title> · no data yet" in the page's language."""
    import gradio as gr

    kw = {"x_lim": list(x_lim)} if x_lim is not None else {}
    return gr.update(value=None, show_label=True, label=empty_curve_label(title), **kw)


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


#: Metric-name fragments of fractions (0–1), drawn on a 0–100 % axis.
FRACTION_KEYS = ("accuracy", "format_rate", "format_correct", "forced_answer", "truncated", "pass_rate",
                 "zero_variance_frac", "tier_weight")
#: (metric-name fragment, catalog key of the y-axis title), first match wins.
AXIS_TITLES = [("learning_rate", "axis.lr"), ("grad_norm", "axis.grad_norm"), ("tokens_per_s", "axis.tokens_s"),
               ("kl", "axis.kl"), ("length", "axis.tokens"), ("tier_count", "axis.prompts"),
               ("effective_batch", "axis.prompts"), ("reward", "axis.reward"), ("loss", "axis.loss"),
               ("expansion", "axis.ratio")]


def y_axis(keys: Sequence[str]) -> tuple[str, bool]:
    """(catalog key of the y-axis title, percent axis?) for a plot of metrics ``keys``.

    A plot whose every metric is a fraction (accuracy, format rate, pass rate …) gets a
    0–100 % axis; otherwise the title names the quantity (loss, learning rate, tokens …),
    never gradio's default "value". The titles are written in the app's language when the
    page is built: gradio's plots do not translate axis titles in the browser.
    """
    if keys and all(any(f in k for f in FRACTION_KEYS) for k in keys):
        return "axis.percent", True
    for frag, key in AXIS_TITLES:
        if any(frag in k for k in keys):
            return key, False
    return "axis.value", False


#: y-axis d3 formats by axis-title key (:func:`y_axis`), with no precision on purpose: d3
#: picks the digits from the drawn ticks' step (:func:`chart_options`). A learning rate in
#: exponent form (5e-4, not a clipped ".0005"); counts with SI suffixes (1.2k); anything else
#: in plain decimals ("r": 0.8, not SI's "800m"; 10, not the "1e+1" that "g" gives a
#: 0–10 axis with ticks every 2).
Y_FORMATS = {"axis.lr": "~e", "axis.tokens_s": "~s", "axis.tokens": "~s", "axis.prompts": "~s", "default": "~r"}


def chart_options(title: str, *, height: int = 260, y_title: str = "", keys: Sequence[str] = ()) -> dict:
    """Options every training chart shares (``gr.LinePlot`` / ``gr.BarPlot`` of a long frame).

    The title is drawn in the plot, with no block label above it (it would push the legend
    out of the fixed height, cut off below the x axis); the legend has no title (else it
    reads "series").

    The y-axis formats (:data:`Y_FORMATS`) give a notation but no precision: Vega-Lite
    hands the format to d3's ``tickFormat``, which then takes as many digits as the tick
    step of the drawn range needs, on every redraw — a loss of 6.512 → 6.507 reads
    "6.508 6.51 6.512", not "6.51 6.51 6.51" (a fixed ".3~g"), and a chart of one step
    still reads "6.512", not "6.512000". A gradio plot does not rebuild its spec when
    only ``y_axis_format`` changes, so a format sent with each update would be ignored;
    this one follows each update's data by itself. Percent axes keep a fixed ``.0%`` on
    their fixed 0–100 % range.

    Steps are whole numbers on the x axis: its format ``"d"`` makes Vega-Lite give the axis
    a minimum tick step of 1 (its ``tickMinStep`` default for that format; gradio's plots
    have no tick-step option), so a short run reads 1, 2, 3 and never 1.5, 2.5. The x range
    itself comes with each value (:func:`chart_update`, :func:`x_range`).
    """
    axis_key, percent = y_axis(keys)
    extra = (dict(y_lim=[0, 1], y_axis_format=".0%") if percent
             else dict(y_axis_format=Y_FORMATS.get(axis_key, Y_FORMATS["default"])))
    return dict(x="step", y="value", color="series", label=title, show_label=False, color_title=" ",
                title=title, y_title=y_title or tr(axis_key), x_title=tr("axis.step"), height=height,
                x_axis_format="d", **extra)


def line_plots(groups: Sequence[CurveGroup], *, columns: int = 2, height: int = 260, empty: bool = False) -> list:
    """One ``gr.LinePlot`` per group, ``columns`` to a row, each with its series named up
    front (:func:`plot_value`) and the shared :func:`chart_options`; with ``empty``, each
    starts as the empty placeholder instead (:func:`empty_chart`: no value, a label that
    says so) until :func:`chart_update` gives it points."""
    import gradio as gr

    plots = []
    for i in range(0, len(groups), columns):
        with gr.Row():
            for g in groups[i:i + columns]:
                opts = chart_options(curve_label(g.title), height=height, y_title=g.y_title or "", keys=g.keys)
                if empty:
                    opts.update(value=None, show_label=True, label=empty_curve_label(g.title))
                else:
                    opts.update(value=plot_value(to_long_frame([], g.keys), expected_series(g.keys, g.smooth)))
                plots.append(gr.LinePlot(**opts))
    return plots


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
    new metrics line (and the same x range) sends nothing (``gr.skip()``), so idle pages
    cost no bandwidth. Every plot shows the run's x range (:func:`x_range`); a plot with no
    point yet is an empty placeholder that says so (:func:`empty_chart`). Two runs on the
    same plots: :func:`studio.ui.overlay.overlay_curves`.
    """
    import gradio as gr

    gs = [_as_group(g) for g in groups]
    plots = line_plots(gs, columns=columns, height=height, empty=True)
    timer = timer if timer is not None else gr.Timer(every)
    seen = gr.State(None)  # (run folder, records drawn, x range) of this session: skip redraws when unchanged

    names = [expected_series(g.keys, g.smooth) for g in gs]

    def refresh(run_dir):
        lim = x_range(run_dir)
        return [chart_update(f, n, g.title, lim) for f, n, g in zip(curve_frames(run_dir, gs), names, gs)]

    def tick(run_dir, last):
        now = (run_dir, len(_records(run_dir)) if run_dir else 0, tuple(x_range(run_dir)))
        if last is not None and tuple(last) == now:
            return [gr.skip()] * len(plots) + [last]
        return [*refresh(run_dir), now]

    timer.tick(tick, inputs=[run_dir_state, seen], outputs=[*plots, seen], show_progress="hidden", queue=False,
               api_visibility="undocumented")
    run_dir_state.change(tick, inputs=[run_dir_state, gr.State(None)], outputs=[*plots, seen],
                         show_progress="hidden", queue=False, api_visibility="undocumented")
    on_tab_shown([(lambda: [empty_chart(g.title) for g in gs], [], plots), (refresh, [run_dir_state], plots)])
    return LiveCurves(plots=plots, timer=timer, refresh=refresh, groups=gs)


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


#: Sessions whose waiting request may hold a stop event at once (Chat and Compare each):
#: a crafted client can pass the checks under a new session id every time and never run.
MAX_QUEUED_STOPS = 10_000


def queue_stop(key: str, queued: dict, lock: threading.Lock, cap: int = MAX_QUEUED_STOPS) -> threading.Event:
    """Give session ``key``'s request, which waits for the GPU, a fresh stop event in ``queued``
    and return it. Past ``cap`` sessions the oldest entry is dropped (its request, if it ever
    starts, simply cannot be stopped while queued), so the table cannot grow without bound.

    >>> q = {}
    >>> for k in "abc":
    ...     _ = queue_stop(k, q, threading.Lock(), cap=2)
    >>> list(q)
    ['b', 'c']
    """
    ev = threading.Event()
    with lock:
        queued.pop(key, None)
        queued[key] = ev
        while len(queued) > cap:
            del queued[next(iter(queued))]
    return ev


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



#: The job panel's names, in :mod:`studio.ui.jobpanel` now; still importable from here.
_JOB_PANEL = {"JobPanel", "job_panel", "status_line", "after_training"}


def __getattr__(name: str):
    if name in _JOB_PANEL:  # imported on first use: jobpanel imports this module
        from studio.ui import jobpanel

        return getattr(jobpanel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
