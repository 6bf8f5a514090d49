"""Two runs on the same charts: the Runs tab's overlay (the comparison users make most).

Each plot holds both runs' series with an explicit colour map: a series keeps its hue in
both runs, dark for the first run and light for the second (the paired Tableau 20
palette), so "loss" of run A and "loss" of run B read as the same curve of two runs. The
legend lists the first run's series only (``colors_in_legend``): gradio 6.31 draws a
legend in one row that a second run's entries push out of the chart; which run is dark and
which light says the line above the charts (:func:`overlay_key`), and a second-run point's
tooltip names its run (``"loss · rl 10:00:00"``). One run alone gets the dark colours,
through a colour map too.

Why always a colour map and a legend list: gradio's ``LinePlot`` fixes its colour domain
(and legend) when it builds its Vega spec, and rebuilds on a new ``color_map`` but not on
new data; series it did not know at build time get no colour
(:func:`studio.ui.components.plot_value`). A changed map makes it rebuild when the overlay
is turned on, changed or off. And gradio drops ``None`` props from an update
(``utils.delete_none``), so a map once set cannot be taken back — only replaced.

Why the map comes alone, after the values: the rebuild reads the plot's value when it
starts and is asynchronous; a map sent together with a new value was seen to rebuild from
the old value (its labels then had no colour in the new map) while the new value, arriving
during the rebuild, went to the old view and was lost (tests/test_browser_curves.py). So a
change of the picked runs sends the values first, then, in a second event, the colour map;
the timer sends values alone (no rebuild), and only when a run wrote new metrics.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

#: (first run, second run) colours per series, in legend order: Tableau 20's dark/light pairs.
PAIRS = [("#1f77b4", "#aec7e8"), ("#ff7f0e", "#ffbb78"), ("#2ca02c", "#98df8a"), ("#d62728", "#ff9896"),
         ("#9467bd", "#c5b0d5"), ("#8c564b", "#c49c94"), ("#e377c2", "#f7b6d2"), ("#7f7f7f", "#c7c7c7"),
         ("#bcbd22", "#dbdb8d"), ("#17becf", "#9edae5")]

_RUN_ID = re.compile(r"^\d{8}-(\d{2})(\d{2})(\d{2})-[a-z0-9]+-(.+)$")


def run_tag(run_dir: str | Path) -> str:
    """A short tag for a run folder: its name and start time.

    >>> run_tag("/runs/20261207-151902-sft-workshop-sft"), run_tag("/x/my-folder")
    ('workshop-sft 15:19:02', 'my-folder')
    """
    name = Path(run_dir).name
    m = _RUN_ID.match(name)
    return f"{m.group(4)} {m.group(1)}:{m.group(2)}:{m.group(3)}" if m else name


def overlay_value(first, second=None, tag: str = ""):
    """One plot value (long frame ``step``, ``value``, ``series``) of one run, or of two
    runs' plot values overlaid, with its colour map and legend.

    Args:
        first, second: :func:`studio.ui.components.plot_value` frames (legend labels
            already short); ``second`` None: one run.
        tag: the second run's tag (:func:`run_tag`), added to its labels (``"loss · <tag>"``).

    Returns:
        ``(frame, color_map, legend)``: ``color_map`` names every label in ``frame`` (a
        label without a colour draws no line), dark colours for the first run and the same
        hues light for the second; ``legend`` the first run's labels, in order.
    """
    import pandas as pd

    legend = list(dict.fromkeys(first["series"]))
    extra = [] if second is None else [b for b in dict.fromkeys(second["series"]) if b not in legend]
    hue = {b: PAIRS[i % len(PAIRS)] for i, b in enumerate(legend + extra)}
    cmap = {b: hue[b][0] for b in legend}
    if second is None:
        return first.copy(), cmap, legend
    other = second.copy()
    other["series"] = (other["series"] + f" · {tag}").astype("object")
    cmap.update({f"{b} · {tag}": hue[b][1] for b in legend + extra})
    return pd.concat([first, other], ignore_index=True), cmap, legend


def overlay_updates(run_dir: str | None, other: str | None, frames: Sequence, names: Sequence[Sequence[str]],
                    other_frames: Sequence | None, titles: Sequence[str] | None = None) -> list[dict]:
    """``gr.update`` (``value``, ``color_map``, ``colors_in_legend``, ``x_lim``) per plot: the
    first run alone, or both runs (:func:`overlay_value`), all plots on one x range
    (:func:`studio.ui.components.x_range` of the longer run).

    Args:
        run_dir, other: the two run folders (``other`` empty: no overlay).
        frames, other_frames: :func:`studio.ui.components.curve_frames` of each run.
        names: the expected series of each plot (:func:`studio.ui.components.expected_series`).
        titles: the plots' titles; with them a plot neither run has a point for is the empty
            placeholder saying "<title> · no data yet" (:func:`~studio.ui.components.empty_chart`,
            no colour map), not axes reading a lone "0", and the others get their label back.
    """
    import gradio as gr

    from studio.ui.components import empty_chart, plot_value, x_range
    from studio.ui.i18n import curve_label

    two = bool(other) and other_frames is not None
    # one x range on every chart: the longer of the two runs (as the SFT/RL tabs do for one run)
    x_lim = [0, max(x_range(run_dir)[1], x_range(other)[1] if two else 0)]
    out = []
    for i, (f, n) in enumerate(zip(frames, names)):
        if titles is not None and not len(f) and not (two and len(other_frames[i])):
            out.append(empty_chart(titles[i], x_lim))
            continue
        value, cmap, legend = overlay_value(plot_value(f, n), plot_value(other_frames[i], n) if two else None,
                                            run_tag(other) if two else "")
        up = gr.update(value=value, color_map=cmap, colors_in_legend=legend, x_lim=x_lim)
        if titles is not None:
            up.update(show_label=False, label=curve_label(titles[i]))
        out.append(up)
    return out


COLOUR_KEYS = ("color_map", "colors_in_legend")


def value_updates(updates: Sequence[dict]) -> list[dict]:
    """The first of the two events that draw :func:`overlay_updates`: everything but the
    colour map — values, the shared x range (whole steps from 0, not a 2-step run's
    "1 2 2") and the labels."""
    return [{k: v for k, v in u.items() if k not in COLOUR_KEYS} for u in updates]


def colour_updates(updates: Sequence[dict]) -> list:
    """The second event: the colour map alone (gradio rebuilds it from the values just
    drawn); an empty placeholder has none and is skipped."""
    import gradio as gr

    return [gr.update(**{k: u[k] for k in COLOUR_KEYS}) if "color_map" in u else gr.skip() for u in updates]


def overlay_key(run_dir: str | None, other: str | None) -> str:
    """The line above overlaid charts: which run is drawn dark and which light ("" without
    an overlay)."""
    from studio.ui.i18n import tr

    if not (run_dir and other and str(run_dir) != str(other)):
        return ""
    return tr("runs.overlay_key", a=Path(run_dir).name, b=Path(other).name, tag=run_tag(other))


def overlay_curves(run_dir_state, other_state, groups, *, timer=None, every: float = 3.0, columns: int = 2,
                   height: int = 260):
    """:func:`studio.ui.components.live_curves` for two runs: the curves of the run in
    ``run_dir_state`` and, when ``other_state`` holds another run folder, that run's on
    the same plots (:func:`overlay_updates`).

    Returns:
        a :class:`studio.ui.components.LiveCurves` (``refresh(run_dir, other)``).
    """
    import gradio as gr

    from studio.ui.components import (LiveCurves, _as_group, _records, curve_frames, expected_series, line_plots,
                                      on_tab_shown)

    gs = [_as_group(g) for g in groups]
    plots = line_plots(gs, columns=columns, height=height)
    timer = timer if timer is not None else gr.Timer(every)
    seen = gr.State(None)  # (run folders, records drawn) this session shows
    names = [expected_series(g.keys, g.smooth) for g in gs]

    def refresh(run_dir, other):
        both = bool(run_dir and other and str(other) != str(run_dir))
        return overlay_updates(run_dir, other if both else None, curve_frames(run_dir, gs), names,
                               curve_frames(other, gs) if both else None, titles=[g.title for g in gs])

    def key(run_dir, other):
        return (run_dir, other, *(len(_records(d)) if d else 0 for d in (run_dir, other)))

    def values(run_dir, other):  # a run picked or overlaid: the values (and x range) first ...
        return value_updates(refresh(run_dir, other)) + [key(run_dir, other)]

    def colours(run_dir, other):  # ... then the colour map alone (a rebuild, from those values)
        return colour_updates(refresh(run_dir, other))

    def tick(run_dir, other, last):  # new metrics: values only
        k = key(run_dir, other)
        if last is not None and tuple(last) == k:
            return [gr.skip()] * len(plots) + [last]
        return values(run_dir, other)

    opts = dict(show_progress="hidden", queue=False, api_visibility="undocumented")
    timer.tick(tick, inputs=[run_dir_state, other_state, seen], outputs=[*plots, seen], **opts)
    for state in (run_dir_state, other_state):
        state.change(values, inputs=[run_dir_state, other_state], outputs=[*plots, seen], **opts).then(
            colours, inputs=[run_dir_state, other_state], outputs=plots, **opts)
    # shown: the same two steps (a plot drawn while hidden is redrawn by gradio's resize observer)
    on_tab_shown([(lambda *a: values(*a)[:-1], [run_dir_state, other_state], plots),
                  (colours, [run_dir_state, other_state], plots)])
    return LiveCurves(plots=plots, timer=timer, refresh=refresh, groups=gs)
