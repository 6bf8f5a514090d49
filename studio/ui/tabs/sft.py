"""SFT tab: data → doctor → trained-token preview → settings → run (child process) → try/compare/export.

Thin by design: every button calls :mod:`studio.engine.data`, :mod:`studio.engine.sft` or
:mod:`studio.engine.export`; the run itself is ``studio sft --config <run>/config.yaml``
started by the shared job panel (:func:`studio.ui.components.job_panel`), so closing the
browser does not stop it and reopening the page re-attaches to it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from studio.errors import StudioError

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).resolve().parents[3] / "sample_data" / "sft" / "train.jsonl"
TABLE_HEADERS = ["row", "line", "severity", "check", "problem", "fix", "auto-fix"]


def _err(e: BaseException):
    import gradio as gr

    if isinstance(e, gr.Error):
        return e
    if isinstance(e, StudioError):
        return gr.Error(str(e))
    log.exception("SFT tab handler failed")
    return gr.Error(f"Unexpected error ({type(e).__name__}); see the server log.")


def data_path(upload, path: str) -> str:
    """The dataset to use: an uploaded file wins over the path box."""
    if upload:
        return str(upload if isinstance(upload, str) else getattr(upload, "name", upload))
    if not path or not str(path).strip():
        raise StudioError("Pick a dataset: upload a file, type a path, or press 'Use the sample set'.")
    return str(path).strip()


def config_from_form(ctx, data, model, name, rank, alpha, dropout, targets, train_merger, qlora, lr, epochs,
                     max_steps, batch_size, grad_accum, max_length, image_max_pixels, seed, eval_split,
                     save_steps, policy, oversize, output_dir=""):
    """Form values → a validated :class:`~studio.engine.sft.SFTRunConfig` (ConfigError names the field)."""
    from studio.engine.sft import SFTRunConfig

    raw = dict(name=name or "sft", data=data, model={**ctx.model.to_dict(), "name_or_path": model or "embedded",
                                                      "adapter": None},
               lora=dict(rank=rank, alpha=alpha, dropout=dropout, target_modules=list(targets or []),
                         train_merger=bool(train_merger), qlora=bool(qlora)),
               learning_rate=lr, epochs=epochs, max_steps=max_steps if max_steps else -1, batch_size=batch_size,
               grad_accum=grad_accum, max_length=max_length,
               image_max_pixels=int(image_max_pixels) if image_max_pixels else None, seed=seed,
               eval_split=eval_split, save_steps=save_steps, policy=policy, oversize=oversize,
               output_dir=output_dir)
    cfg = SFTRunConfig.from_dict(raw)
    cfg.validate()
    return cfg


def build(ctx) -> None:
    """Build the SFT tab into the current Blocks."""
    import gradio as gr

    from studio.engine import data as D
    from studio.engine.sft import LANGUAGE_LINEARS, LoraSpec, SFTRunConfig
    from studio.ui.components import SFT_CURVES, job_panel, live_curves

    defaults = SFTRunConfig()
    processor_cache: dict = {}

    def processor_for(model: str):
        key = model or "embedded"
        if key not in processor_cache:
            from transformers import AutoProcessor

            from studio.engine.models import resolve

            try:
                processor_cache[key] = AutoProcessor.from_pretrained(resolve(key), trust_remote_code=False)
            except StudioError:
                raise
            except Exception as e:  # noqa: BLE001
                raise StudioError(f"Could not load the processor of {key!r}: {str(e).splitlines()[0]}") from None
        return processor_cache[key]

    gr.Markdown("Fine-tune with LoRA into the `<think>…</think><answer>…</answer>` format. "
                "Check the data first: the doctor lists problems per row, the preview shows which tokens carry loss.")
    with gr.Row():
        upload = gr.File(label="Upload a dataset (.jsonl/.json/.csv/.parquet)", file_types=[".jsonl", ".json", ".csv",
                                                                                             ".parquet"])
        with gr.Column():
            path = gr.Textbox(label="…or a path on the server (media paths are relative to the file)",
                              value=str(SAMPLE) if SAMPLE.is_file() else "")
            sample_btn = gr.Button("Use the sample set", size="sm")
    with gr.Row():
        model = gr.Textbox(label="Base model (hub id, folder or 'embedded')", value=ctx.model.name_or_path)
        max_length = gr.Number(label="Max length (tokens)", value=defaults.max_length, precision=0)
        policy = gr.Radio(list(D.POLICIES), value=defaults.policy, label="What is trained (loss policy)",
                          info="; ".join(f"{k}: {v}" for k, v in D.POLICIES.items()))
        oversize = gr.Radio(["resize", "skip"], value=defaults.oversize, label="Rows longer than max length",
                            info="resize: shrink images so no image span is cut; skip: leave the row out")

    with gr.Accordion("1 · Data doctor", open=True):
        doctor_btn = gr.Button("Check the data")
        doctor_md = gr.Markdown()
        table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True, label="Problems")
        with gr.Row():
            fixes = gr.CheckboxGroup([(v, k) for k, v in D.FIXES.items()], value=["close_answer"],
                                     label="Safe auto-fixes")
            fix_btn = gr.Button("Apply auto-fix (writes <name>.fixed.jsonl next to the data)")

    with gr.Accordion("2 · Trained-token preview", open=True):
        with gr.Row():
            row_no = gr.Number(label="Row", value=1, precision=0, minimum=1)
            preview_btn = gr.Button("Show what this row trains")
        preview = gr.HighlightedText(label="Highlighted = carries loss", color_map={"trained": "green"},
                                     combine_adjacent=True, show_legend=True)

    with gr.Accordion("3 · Settings", open=True):
        with gr.Row():
            name = gr.Textbox(label="Run name", value="sft")
            rank = gr.Number(label="LoRA rank", value=defaults.lora.rank, precision=0)
            alpha = gr.Number(label="LoRA alpha", value=defaults.lora.alpha, precision=0)
            dropout = gr.Number(label="LoRA dropout", value=defaults.lora.dropout)
        with gr.Row():
            targets = gr.CheckboxGroup(list(LANGUAGE_LINEARS), value=list(LoraSpec().target_modules),
                                       label="Language-model layers with LoRA (the vision tower stays frozen)")
            train_merger = gr.Checkbox(label="Also LoRA on the vision→language merger", value=False)
            qlora = gr.Checkbox(label="QLoRA (4-bit NF4 base, CUDA only)", value=False)
        with gr.Row():
            lr = gr.Number(label="Learning rate", value=defaults.learning_rate)
            epochs = gr.Number(label="Epochs", value=defaults.epochs)
            max_steps = gr.Number(label="Max steps (0 = use epochs)", value=0, precision=0)
            batch_size = gr.Number(label="Batch size", value=defaults.batch_size, precision=0)
            grad_accum = gr.Number(label="Gradient accumulation", value=defaults.grad_accum, precision=0)
        with gr.Row():
            image_max_pixels = gr.Number(label="Image pixel budget (0 = processor default)", value=0, precision=0)
            seed = gr.Number(label="Seed", value=defaults.seed, precision=0)
            eval_split = gr.Number(label="Eval split (fraction)", value=defaults.eval_split)
            save_steps = gr.Number(label="Save every N steps", value=defaults.save_steps, precision=0)
        show_btn = gr.Button("Show config")
        yaml_box = gr.Code(label="config.yaml", language="yaml", interactive=False)

    form = [model, name, rank, alpha, dropout, targets, train_merger, qlora, lr, epochs, max_steps, batch_size,
            grad_accum, max_length, image_max_pixels, seed, eval_split, save_steps, policy, oversize]

    def make_config(up, p, *values, output_dir=""):
        return config_from_form(ctx, data_path(up, p), *values, output_dir=output_dir)

    def new_run(up, p, *values):
        from studio.engine.runs import new_run_dir

        cfg = make_config(up, p, *values)
        run = new_run_dir(ctx.runs_dir, "sft", cfg.name)
        cfg.output_dir = str(run)
        return run, cfg.to_yaml()

    def show(up, p, *values):
        try:
            cfg = make_config(up, p, *values)
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        return cfg.to_yaml()

    def run_doctor(up, p, model_name, max_len, pol, over):
        try:
            proc = processor_for(model_name)
            rows, rep = D.diagnose(data_path(up, p), proc, int(max_len or 4096), policy=pol, oversize=over)
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        return rep.to_markdown(), rep.table()

    def apply_fix(up, p, choices):
        try:
            src = Path(data_path(up, p))
            rows = D.load_rows(src)
            fixed, n = D.auto_fix(rows, choices or [])
            out = D.save_rows(fixed, src.with_name(src.stem + ".fixed.jsonl"))
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        gr.Info(f"Fixed {n} assistant turns; the path now points at {out.name}. Run the doctor again.")
        return None, str(out)

    def show_preview(up, p, model_name, n, pol, max_len):
        try:
            rows = D.load_rows(data_path(up, p))
            n = int(n or 1)
            if not 1 <= n <= len(rows):
                raise StudioError(f"Row {n} does not exist; the data has {len(rows)} rows.")
            spans = D.render_preview(rows[n - 1], processor_for(model_name), pol, int(max_len or 0) or None)
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        return [(text, "trained" if on else None) for text, on in spans]

    sample_btn.click(lambda: (None, str(SAMPLE)), outputs=[upload, path])
    doctor_btn.click(run_doctor, inputs=[upload, path, model, max_length, policy, oversize],
                     outputs=[doctor_md, table], api_name="sft_doctor")
    fix_btn.click(apply_fix, inputs=[upload, path, fixes], outputs=[upload, path], api_name="sft_fix")
    preview_btn.click(show_preview, inputs=[upload, path, model, row_no, policy, max_length], outputs=[preview],
                      api_name="sft_preview")
    policy.change(show_preview, inputs=[upload, path, model, row_no, policy, max_length], outputs=[preview])
    show_btn.click(show, inputs=[upload, path, *form], outputs=[yaml_box], api_name="sft_config")

    gr.Markdown("### 4 · Train")
    panel = job_panel(ctx, "sft", new_run, inputs=[upload, path, *form])
    live_curves(panel.run_dir_state, groups=SFT_CURVES, timer=panel.timer)

    with gr.Accordion("5 · After training", open=True):
        with gr.Row():
            try_btn = gr.Button("Try it in Chat")
            compare_btn = gr.Button("Compare with base")
        with gr.Row():
            export_dir = gr.Textbox(label="Export folder for the merged model", value="")
            export_btn = gr.Button("Export merged (and verify the round trip)")
        after_md = gr.Markdown()

    def adapter_of(run_dir: str) -> Path:
        from studio.engine.runs import find_adapter, find_last_checkpoint

        if not run_dir:
            raise StudioError("No run yet; start one first.")
        a = find_adapter(run_dir) or find_last_checkpoint(run_dir)
        if a is None:
            raise StudioError("This run has no adapter or checkpoint yet; wait for the first save.")
        return a

    def to_chat(run_dir):
        try:
            a = adapter_of(run_dir)
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        ctx.extra["chat_adapter"] = str(a)
        return f"Adapter `{a}` is set for the **Chat** tab: open it and pick/reload the model to chat with base + adapter."

    def to_compare(run_dir):
        try:
            a = adapter_of(run_dir)
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        ctx.extra["compare_adapter"] = str(a)
        return f"Adapter `{a}` is set for the **Compare** tab: side B runs base + adapter, side A the base."

    def export(run_dir, out):
        from studio.engine.export import merge_adapter
        from studio.engine.sft import SFTRunConfig as C

        try:
            a = adapter_of(run_dir)
            cfg = C.from_yaml(Path(run_dir) / "config.yaml")
            target = out.strip() if out and out.strip() else str(Path(run_dir) / "merged")
            rep = merge_adapter(cfg.model, a, target)
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        ok = rep.get("verified") and rep.get("match")
        return (f"Merged model saved to `{rep.get('out_dir', target)}`; round trip "
                f"{'verified: greedy output of the merged model equals base + adapter' if ok else 'NOT verified'}.")

    try_btn.click(to_chat, inputs=[panel.run_dir_state], outputs=[after_md], api_name="sft_try")
    compare_btn.click(to_compare, inputs=[panel.run_dir_state], outputs=[after_md], api_name="sft_compare")
    from studio.ui.app import GPU_CONCURRENCY_ID

    export_btn.click(export, inputs=[panel.run_dir_state, export_dir], outputs=[after_md], api_name="sft_export",
                     concurrency_id=GPU_CONCURRENCY_ID)
