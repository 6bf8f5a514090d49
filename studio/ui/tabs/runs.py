"""Runs tab: every run folder under ``ctx.runs_dir`` — status, curves, config, log — and export.

Thin: the table comes from :func:`studio.engine.train.runs.list_runs`, curves from
:func:`studio.ui.overlay.overlay_curves`, export from :func:`studio.engine.train.export.merge_adapter`.
Pick a run in the dropdown or click its row in the table; pick a second run to overlay its
curves on the same charts (:mod:`studio.ui.overlay`). A run started after the page loaded
appears by itself: the tab's timer compares a cheap signature of the runs folder
(:func:`list_signature`) and rebuilds the table only when it changed.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from studio.engine.train.jobs import tail_file
from studio.engine.train.runs import CONFIG_FILE, LOG_FILE, STATUS_FILE, is_run_dir, list_runs, read_status, run_info
from studio.errors import StudioError
from studio.ui.components import GENERAL_CURVES
from studio.ui.jobpanel import status_line
from studio.ui.overlay import overlay_curves, overlay_key
from studio.ui.i18n import gr_error, headers, t, tr, user_error

log = logging.getLogger(__name__)

HEADERS = ["id", "kind", "status", "step", "loss/reward", "started"]


def table_rows(runs_dir) -> list[list]:
    """Rows of the runs table (newest first)."""
    rows = []
    for i in list_runs(runs_dir):
        step = "" if i.step is None else (f"{i.step}/{i.max_steps}" if i.max_steps else str(i.step))
        started = datetime.fromtimestamp(i.started).strftime("%Y-%m-%d %H:%M") if i.started else ""
        rows.append([i.id, i.kind_label(), i.status, step, i.headline(), started])
    return rows


def list_signature(runs_dir) -> tuple:
    """What can change the runs table between two looks without reading any metrics: the
    run folders' names and their ``status.json`` modification times (a new run, a run that
    started, ended or was removed). One directory scan and a few ``stat`` calls per run;
    ``()`` for a missing folder."""
    try:
        entries = sorted(os.scandir(runs_dir), key=lambda e: e.name)
    except OSError:
        return ()
    out = []
    for e in entries:
        p = Path(e.path)
        if not is_run_dir(p):
            continue
        try:
            mtime = (p / STATUS_FILE).stat().st_mtime_ns
        except OSError:
            mtime = 0
        out.append((e.name, mtime))
    return tuple(out)


def run_path(runs_dir, run_id: str) -> Path | None:
    """The folder of ``run_id`` inside ``runs_dir``, or None (unknown id, or one that would
    leave ``runs_dir`` such as ``../x``)."""
    root = Path(runs_dir).resolve()
    run = (root / str(run_id)).resolve()
    return run if run.parent == root and run.is_dir() else None


def run_details(runs_dir, run_id: str | None) -> tuple[str, str, str, str, str]:
    """``(run_dir, status line, status/summary JSON, config.yaml text, log tail)`` of one run.

    An unknown or empty id gives empty strings; ids cannot leave ``runs_dir``.
    """
    if not run_id:
        return "", "", "", "", ""
    run = run_path(runs_dir, run_id)
    if run is None:
        return "", tr("runs.no_such_run_in", id=repr(run_id), dir=runs_dir), "", "", ""
    info = run_info(run).to_dict()
    info["status_file"] = read_status(run)
    try:
        config = (run / CONFIG_FILE).read_text(encoding="utf-8")
    except OSError:
        config = tr("runs.no_config")
    return (str(run), status_line(run), json.dumps(info, indent=1, default=str), config,
            tail_file(run / LOG_FILE, 60))


def export_run(ctx, run_id: str | None, out: str | None) -> dict:
    """Merge a run's adapter into its base and verify it; returns the export report.

    The adapter is the run's final ``adapter/`` or, for a stopped (or failed) run, its
    last complete checkpoint (:func:`studio.engine.train.runs.exportable_adapter`) — the same
    folder ``studio export --adapter <run>/checkpoint-N`` takes. ``report["adapter"]``
    says which one was merged.

    Raises:
        StudioError: public app, no run picked, unknown run, nothing saved yet, GPU busy;
            and what :func:`studio.engine.train.export.merge_adapter` raises.
    """
    from studio.engine.train.export import merge_adapter
    from studio.engine.train.jobs import JobManager
    from studio.engine.train.runs import exportable_adapter

    if getattr(ctx, "public", False):
        raise StudioError(tr("runs.export_off"))
    if not run_id:
        raise StudioError(tr("runs.pick_first"))
    run = run_path(ctx.runs_dir, run_id)
    if run is None:
        raise StudioError(tr("runs.no_such_run", id=repr(run_id)))
    adapter = exportable_adapter(run)
    if adapter is None:
        raise StudioError(tr("runs.no_adapter", id=run_id))
    cur = JobManager(ctx.runs_dir).current()
    if cur is not None:
        raise StudioError(tr("job.busy", kind=cur.kind, id=cur.id))
    return merge_adapter(None, adapter, out or str(Path("merged") / run_id))


def build(ctx) -> None:
    """Add the Runs tab's components to the current Blocks."""
    import gradio as gr

    from studio.ui.app import GPU_CONCURRENCY_ID

    gr.Markdown(t("runs.intro") + f" `{ctx.runs_dir}/`")
    with gr.Row():
        refresh_btn = gr.Button(t("runs.refresh"), scale=0)
        pick = gr.Dropdown(label=t("runs.run"), choices=[], value=None, allow_custom_value=False, scale=3,
                           elem_id="runs-pick")
    table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, wrap=True, label=t("runs.table"))
    run_dir_state = gr.State("")
    status = gr.Textbox(label=t("common.status"), interactive=False, lines=1, max_lines=2)
    with gr.Row(equal_height=True):
        overlay = gr.Dropdown(label=t("runs.overlay"), info=t("runs.overlay_info"), choices=[], value=None,
                              allow_custom_value=False, scale=4, elem_id="runs-overlay")
        clear_btn = gr.Button(t("runs.overlay_clear"), scale=0, min_width=120)
    other_state = gr.State("")
    key_md = gr.Markdown(elem_id="runs-overlay-key")
    curves = overlay_curves(run_dir_state, other_state, GENERAL_CURVES, every=3.0)
    for state in (run_dir_state, other_state):
        state.change(overlay_key, [run_dir_state, other_state], key_md, queue=False, show_progress="hidden",
                     api_visibility="undocumented")
    listed = gr.State(None)  # list_signature() of the table this session shows
    with gr.Row():
        config = gr.Code(label="config.yaml", language="yaml", interactive=False, lines=12)
        details = gr.Code(label=t("runs.summary"), language="json",
                          interactive=False, lines=12)
    log_box = gr.Textbox(label=t("common.log_tail"), lines=10, max_lines=10, interactive=False)
    with gr.Accordion(t("runs.export_acc"), open=False):
        gr.Markdown(t("runs.export_md"))
        with gr.Row():
            out_dir = gr.Textbox(label=t("runs.out_dir"), placeholder=t("runs.out_dir_ph"), scale=3)
            export_btn = gr.Button(t("runs.merge_btn"), variant="primary", scale=1,
                                   interactive=not getattr(ctx, "public", False))
        export_report = gr.Code(label=t("runs.export_report"), language="json", interactive=False, lines=8)

    def refresh(current, second=None):
        rows = table_rows(ctx.runs_dir)
        ids = [r[0] for r in rows]
        value = current if current in ids else (ids[0] if ids else None)
        import pandas as pd

        return (pd.DataFrame(rows, columns=headers("runs.col", HEADERS)), gr.update(choices=ids, value=value),
                gr.update(choices=ids, value=second if second in ids else None))

    def refresh_if_changed(current, second, last):
        """The timer's cheap look: the table and pickers only when the runs folder changed."""
        sig = list_signature(ctx.runs_dir)
        if last is not None and tuple(map(tuple, last)) == sig:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return (*refresh(current, second), sig)

    def overlay_dir(run_id):
        run = run_path(ctx.runs_dir, run_id) if run_id else None
        return str(run) if run else ""

    def select(run_id):
        run_dir, st, info, cfg, tail = run_details(ctx.runs_dir, run_id)
        default_out = str(Path("merged") / run_id) if run_id else ""
        return run_dir, st, info, cfg, tail, default_out

    def on_row(evt):
        row = getattr(evt, "row_value", None)
        return row[0] if row else gr.update()

    # A real class, not the postponed string annotation: gradio injects SelectData by type.
    on_row.__annotations__["evt"] = gr.SelectData

    def poll(run_id):
        run_dir, st, _, _, tail = run_details(ctx.runs_dir, run_id)
        return st, tail

    def export(run_id, out):
        try:
            report = export_run(ctx, run_id, out)
        except gr.Error:
            raise
        except StudioError as e:
            raise gr_error(e) from None
        except Exception as e:  # noqa: BLE001
            log.exception("export failed")
            raise user_error(tr("runs.export_failed", kind=type(e).__name__)) from None
        merged = Path(report.get("adapter") or "")
        done = (tr("runs.merged_checkpoint", path=report["out_dir"], checkpoint=merged.name)
                if merged.name.startswith("checkpoint-") else tr("runs.merged", path=report["out_dir"]))
        gr.Info(done)
        return json.dumps({k: v for k, v in report.items() if not k.endswith("_ids")}, indent=1)

    refresh_btn.click(refresh, inputs=[pick, overlay], outputs=[table, pick, overlay], api_name="runs_refresh")
    overlay.change(overlay_dir, inputs=[overlay], outputs=[other_state], api_name="runs_overlay")
    clear_btn.click(lambda: None, None, overlay, queue=False, api_visibility="undocumented")
    curves.timer.tick(refresh_if_changed, inputs=[pick, overlay, listed], outputs=[table, pick, overlay, listed],
                      show_progress="hidden", queue=False, api_visibility="undocumented")
    pick.change(select, inputs=[pick], outputs=[run_dir_state, status, details, config, log_box, out_dir],
                api_name="runs_select")
    table.select(on_row, inputs=None, outputs=[pick], api_visibility="undocumented")
    curves.timer.tick(poll, inputs=[pick], outputs=[status, log_box], show_progress="hidden", queue=False,
                api_visibility="undocumented")
    export_btn.click(export, inputs=[pick, out_dir], outputs=[export_report], api_name="runs_export",
                     concurrency_id=GPU_CONCURRENCY_ID)
    from gradio.context import Context

    if Context.root_block is not None:
        Context.root_block.load(refresh_if_changed, inputs=[pick, overlay, gr.State(None)],
                                outputs=[table, pick, overlay, listed], api_visibility="undocumented")
