"""SFT tab: data → doctor → trained-token preview → settings → run (child process) → try/compare/export.

Thin by design: every button calls :mod:`studio.engine.train.data`, :mod:`studio.engine.train.sft` or
:mod:`studio.engine.train.export`; the run itself is ``studio sft --config <run>/config.yaml``
started by the shared job panel (:func:`studio.ui.jobpanel.job_panel`), so closing the
browser does not stop it and reopening the page re-attaches to it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from studio.errors import StudioError
from studio.ui.i18n import headers, t, tr

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).resolve().parents[3] / "sample_data" / "sft" / "train.jsonl"
#: The workshop SFT recipe (``studio sft --config`` this file does the same).
RECIPE = Path(__file__).resolve().parents[3] / "sample_data" / "workshop" / "sft.yaml"
TABLE_HEADERS = ["row", "line", "severity", "check", "problem", "fix", "auto-fix"]
#: Recipe keys the form has a field for; the recipe's other keys (its data generation, the
#: scheduler, …) travel beside the form in a ``gr.State`` (:func:`recipe_extras`).
FORM_KEYS = {"name", "data", "model", "lora", "learning_rate", "epochs", "max_steps", "batch_size", "grad_accum",
             "max_length", "image_max_pixels", "seed", "eval_split", "save_steps", "policy", "oversize",
             "finetuning", "eval_data", "output_dir"}


def _err(e: BaseException):
    from studio.ui.components import as_gradio_error

    return as_gradio_error(e, "the SFT tab")


def data_path(upload, path: str) -> str:
    """The dataset to use: an uploaded file wins over the path box."""
    if upload:
        return str(upload if isinstance(upload, str) else getattr(upload, "name", upload))
    if not path or not str(path).strip():
        raise StudioError(tr("sft.pick_dataset"))
    return str(path).strip()


def config_from_form(ctx, data, model, name, rank, alpha, dropout, targets, train_merger, qlora, lr, epochs,
                     max_steps, batch_size, grad_accum, max_length, image_max_pixels, seed, eval_split,
                     save_steps, policy, oversize, finetuning="lora", eval_data="", output_dir="", extras=None):
    """Form values → a validated :class:`~studio.engine.train.sft.SFTRunConfig` (ConfigError names the field).

    ``extras``: the loaded recipe's keys the form has no field for (:func:`recipe_extras`),
    so that Start with the recipe's form runs what the recipe runs; its ``tasks`` (data
    generated on first use) only while the data path is still the recipe's."""
    from studio.engine.train.sft import SFTRunConfig

    extras = dict(extras or {})
    if str(extras.pop("_data", "")) != str(data):
        extras.pop("tasks", None)
    raw = dict(name=name or "sft", data=data, model={**ctx.model.to_dict(), "name_or_path": model or "embedded",
                                                      "adapter": None},
               lora=dict(rank=rank, alpha=alpha, dropout=dropout, target_modules=list(targets or []),
                         train_merger=bool(train_merger), qlora=bool(qlora)),
               learning_rate=lr, epochs=epochs, max_steps=max_steps if max_steps else -1, batch_size=batch_size,
               grad_accum=grad_accum, max_length=max_length,
               image_max_pixels=int(image_max_pixels) if image_max_pixels else None, seed=seed,
               eval_split=eval_split, save_steps=save_steps, policy=policy, oversize=oversize,
               finetuning=finetuning or "lora", eval_data=(eval_data or "").strip(), output_dir=output_dir)
    raw = {**extras, **raw}
    cfg = SFTRunConfig.from_dict(raw)
    cfg.validate()
    return cfg


def _values(cfg, path: str) -> dict:
    """The form's values for ``cfg`` (an SFTRunConfig), by field name, data path ``path``."""
    lo = cfg.lora
    return dict(path=path, model=cfg.model.name_or_path, name=cfg.name, rank=lo.rank, alpha=lo.alpha,
                dropout=lo.dropout, targets=list(lo.target_modules), train_merger=lo.train_merger, qlora=lo.qlora,
                lr=cfg.learning_rate, epochs=cfg.epochs,
                max_steps=cfg.max_steps if cfg.max_steps and cfg.max_steps > 0 else 0,
                batch_size=cfg.batch_size, grad_accum=cfg.grad_accum, max_length=cfg.max_length,
                image_max_pixels=cfg.image_max_pixels or 0, seed=cfg.seed, eval_split=cfg.eval_split,
                save_steps=cfg.save_steps, policy=cfg.policy, oversize=cfg.oversize, finetuning=cfg.finetuning,
                eval_data=cfg.eval_data or "")


#: The form's fields in the order of ``config_from_form``'s arguments after ``data``.
FORM_ORDER = ["model", "name", "rank", "alpha", "dropout", "targets", "train_merger", "qlora", "lr", "epochs",
              "max_steps", "batch_size", "grad_accum", "max_length", "image_max_pixels", "seed", "eval_split",
              "save_steps", "policy", "oversize", "finetuning", "eval_data"]


def _recipe_values(cfg) -> dict:
    return _values(cfg, str(cfg.data))


def recipe_extras(path: Path | None = None) -> dict:
    """The recipe's keys that the form has no field for (``tasks``, ``lr_scheduler``,
    ``warmup_steps`` …), paths resolved, plus ``_data``: the data path they belong to."""
    from studio.config import read_yaml_mapping
    from studio.engine.train.runs import resolve_recipe_paths

    path = path or RECIPE
    raw = resolve_recipe_paths(read_yaml_mapping(path), path)
    out = {k: v for k, v in raw.items() if k not in FORM_KEYS}
    out["_data"] = str(raw.get("data", ""))
    return out


def recipe_summary(cfg) -> str:
    """One line saying what the recipe button runs: the method, the model, steps, batch,
    learning rate and the data (``cfg``: the loaded recipe)."""
    method = (tr("sft.method_full") if cfg.finetuning == "full"
              else tr("sft.method_lora", rank=cfg.lora.rank))
    steps = (tr("sft.sum_steps", n=f"{cfg.max_steps:,}") if cfg.max_steps and cfg.max_steps > 0
             else tr("sft.sum_epochs", n=f"{cfg.epochs:g}"))
    tasks = cfg.tasks or {}
    data = (tr("sft.sum_generated", n=f"{int(tasks['scenes']):,}") if tasks.get("scenes")
            else f"`{Path(str(cfg.data)).name}`")
    return tr("sft.recipe_summary", method=method, model=cfg.model.name_or_path, steps=steps, batch=cfg.batch_size,
              lr=f"{cfg.learning_rate:g}", data=data, name=cfg.name)


def build(ctx) -> None:
    """Build the SFT tab into the current Blocks."""
    import gradio as gr

    from studio.engine.train import data as D
    from studio.engine.train.sft import LANGUAGE_LINEARS, SFTRunConfig
    from studio.ui.components import SFT_CURVES, live_curves
    from studio.ui.jobpanel import job_panel

    processor_cache: dict = {}

    def processor_for(model: str):
        key = model or "embedded"
        if key not in processor_cache:
            from transformers import AutoProcessor

            from studio.engine.infer.models import resolve

            try:
                processor_cache[key] = AutoProcessor.from_pretrained(resolve(key), trust_remote_code=False)
            except StudioError:
                raise
            except Exception as e:  # noqa: BLE001
                raise StudioError(tr("sft.processor_failed", model=repr(key),
                                     why=str(e).splitlines()[0] if str(e) else type(e).__name__)) from None
        return processor_cache[key]

    from studio.engine.infer.models import is_workshop, resolve
    from studio.engine.train.runs import load_recipe

    try:
        recipe_cfg, extras0 = load_recipe(SFTRunConfig, RECIPE), recipe_extras()
    except StudioError:  # no recipe in this install: the tab without its card
        recipe_cfg, extras0 = None, {}
    try:
        workshop = is_workshop(resolve(ctx.model.name_or_path))
    except StudioError:
        workshop = False
    # With the workshop model loaded, the form starts as the recipe (what its button runs).
    start = _recipe_values(recipe_cfg) if (workshop and recipe_cfg is not None) else None
    if start is None:
        plain = SFTRunConfig()
        plain.name, plain.model.name_or_path = "sft", ctx.model.name_or_path
        v = _values(plain, str(SAMPLE) if SAMPLE.is_file() else "")
    else:
        v = start

    gr.Markdown(t("sft.intro"))
    # The recipe first, at the top: its start button, what it runs, and its status (the
    # panel with the log and the curves stays under "4 · Train").
    with gr.Column(visible=recipe_cfg is not None, variant="panel", elem_id="sft-recipe-card"):
        with gr.Row(equal_height=True):
            recipe_top_btn = gr.Button(t("sft.recipe_btn"), variant="secondary", interactive=not ctx.public,
                                       scale=0, min_width=340, elem_id="sft-recipe-btn")
            load_recipe_btn = gr.Button(t("sft.load_recipe"), scale=0, min_width=220, elem_id="sft-load-recipe")
        summary_md = gr.Markdown(recipe_summary(recipe_cfg) if recipe_cfg is not None else "",
                                 elem_id="sft-recipe-summary", padding=True)
        from studio.ui.jobpanel import status_line

        recipe_status = gr.Textbox(status_line(None), label=t("common.status"), interactive=False, lines=1,
                                   max_lines=2, elem_id="sft-recipe-status")
    with gr.Row():
        upload = gr.File(label=t("sft.upload"), file_types=[".jsonl", ".json", ".csv",
                                                                                             ".parquet"])
        with gr.Column():
            path = gr.Textbox(label=t("sft.path"), elem_id="sft-path",
                              value=v["path"])
            sample_btn = gr.Button(t("sft.sample_btn"), size="sm")
    with gr.Row():
        model = gr.Textbox(label=t("sft.model"), value=v["model"])
        max_length = gr.Number(label=t("sft.max_length"), value=v["max_length"], precision=0)
        policy = gr.Radio(list(D.POLICIES), value=v["policy"], label=t("sft.policy"),
                          info=t("sft.policy_info"))
        oversize = gr.Radio(["resize", "skip"], value=v["oversize"], label=t("sft.oversize"),
                            info=t("sft.oversize_info"))

    with gr.Accordion(t("sft.doctor_acc"), open=True):
        doctor_btn = gr.Button(t("sft.doctor_btn"))
        doctor_md = gr.Markdown()
        table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True, label=t("sft.problems"))
        with gr.Row():
            fixes = gr.CheckboxGroup([(t(f"sft.fix.{k}"), k) for k in D.FIXES], value=["close_answer"],
                                     label=t("sft.fixes"))
            fix_btn = gr.Button(t("sft.fix_btn"))

    with gr.Accordion(t("sft.preview_acc"), open=True):
        with gr.Row():
            row_no = gr.Number(label=t("sft.row"), value=1, precision=0, minimum=1)
            preview_btn = gr.Button(t("sft.preview_btn"))
        preview = gr.HighlightedText(label=t("sft.preview"), color_map={"trained": "green"},
                                     combine_adjacent=True, show_legend=True)

    with gr.Accordion(t("sft.settings_acc"), open=True):
        with gr.Row():
            name = gr.Textbox(label=t("sft.run_name"), value=v["name"])
            rank = gr.Number(label=t("common.lora_rank"), value=v["rank"], precision=0)
            alpha = gr.Number(label=t("common.lora_alpha"), value=v["alpha"], precision=0)
            dropout = gr.Number(label=t("sft.lora_dropout"), value=v["dropout"])
        with gr.Row():
            targets = gr.CheckboxGroup(list(LANGUAGE_LINEARS), value=v["targets"], label=t("sft.targets"))
            train_merger = gr.Checkbox(label=t("sft.train_merger"), value=v["train_merger"])
            qlora = gr.Checkbox(label=t("sft.qlora"), value=v["qlora"])
        with gr.Row():
            lr = gr.Number(label=t("common.learning_rate"), value=v["lr"])
            epochs = gr.Number(label=t("sft.epochs"), value=v["epochs"])
            max_steps = gr.Number(label=t("sft.max_steps"), value=v["max_steps"], precision=0)
            batch_size = gr.Number(label=t("sft.batch_size"), value=v["batch_size"], precision=0)
            grad_accum = gr.Number(label=t("sft.grad_accum"), value=v["grad_accum"], precision=0,
                                   info=t("sft.grad_accum_info"))
        with gr.Row():
            image_max_pixels = gr.Number(label=t("sft.image_max_pixels"), value=v["image_max_pixels"], precision=0)
            seed = gr.Number(label=t("common.seed"), value=v["seed"], precision=0)
            eval_split = gr.Number(label=t("sft.eval_split"), value=v["eval_split"])
            save_steps = gr.Number(label=t("sft.save_steps"), value=v["save_steps"], precision=0)
        with gr.Row():
            ft_choices = [("LoRA", "lora"), (t("sft.full"), "full")]
            finetuning = gr.Radio(ft_choices, value=v["finetuning"],
                                  label=t("sft.finetuning"), info=t("sft.finetuning_info"))
            eval_data = gr.Textbox(label=t("sft.eval_data"), value=v["eval_data"],
                                   placeholder="sample_data/workshop/eval.jsonl", info=t("sft.eval_data_info"))
        show_btn = gr.Button(t("common.show_config"))
        yaml_box = gr.Code(label="config.yaml", language="yaml", interactive=False,
                           value=RECIPE.read_text(encoding="utf-8") if start else None)
    # the recipe's keys the form has no field for, while the form holds the recipe
    extras = gr.State(extras0 if start else None)

    form = [model, name, rank, alpha, dropout, targets, train_merger, qlora, lr, epochs, max_steps, batch_size,
            grad_accum, max_length, image_max_pixels, seed, eval_split, save_steps, policy, oversize,
            finetuning, eval_data]

    def make_config(up, p, *values, output_dir=""):
        *values, extra = values
        return config_from_form(ctx, data_path(up, p), *values, output_dir=output_dir, extras=extra)

    def new_run(up, p, *values, stop=None, progress=None):
        from studio.engine.train.runs import new_run_dir
        from studio.engine.train.sft import check_data

        cfg = make_config(up, p, *values)
        # empty file, bad JSON line, unsafe media path: refused before a run folder exists;
        # Stop ends the check within a row, and the panel says how far it is
        check_data(cfg, stop=stop, progress=progress)
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
        import pandas as pd

        return rep.to_markdown(table=False), pd.DataFrame(rep.table(), columns=headers("sft.col", TABLE_HEADERS))

    def apply_fix(up, p, choices):
        try:
            src = Path(data_path(up, p))
            rows = D.load_rows(src)
            fixed, n = D.auto_fix(rows, choices or [])
            # never over an existing file (an earlier fix the user edited): a-fixed-2.jsonl …
            out = D.save_rows(fixed, D.unused_path(src.with_name(src.stem + ".fixed.jsonl")), exist_ok=False)
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        gr.Info(tr("sft.fixed", n=n, name=out.name))
        return None, str(out)

    def show_preview(up, p, model_name, n, pol, max_len):
        try:
            rows = D.load_rows(data_path(up, p))
            n = int(n or 1)
            if not 1 <= n <= len(rows):
                raise StudioError(tr("sft.no_row", n=n, rows=len(rows)))
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
    show_btn.click(show, inputs=[upload, path, *form, extras], outputs=[yaml_box], api_name="sft_config")

    def fill_from_recipe():
        """The workshop recipe's values in the form and its config in the YAML box (the
        recipe button runs exactly this), as LLaMA Board's "Load arguments" does."""
        from studio.engine.train.runs import load_recipe

        try:
            cfg, extra = load_recipe(SFTRunConfig, RECIPE), recipe_extras(RECIPE)
        except BaseException as e:  # noqa: BLE001
            raise _err(e) from None
        vals = _recipe_values(cfg)
        return (None, vals["path"], *[vals[k] for k in FORM_ORDER], RECIPE.read_text(encoding="utf-8"), extra)

    recipe_outputs = [upload, path, *form, yaml_box, extras]
    load_recipe_btn.click(fill_from_recipe, None, recipe_outputs, api_name="sft_load_recipe")

    gr.Markdown(t("sft.train_md"))
    from studio.engine.train.runs import recipe_run
    from studio.engine.train.sft import check_data

    panel = job_panel(ctx, "sft", new_run, inputs=[upload, path, *form, extras], recipe_button=recipe_top_btn,
                      recipe=(t("sft.recipe_btn"), lambda stop=None, progress=None: recipe_run(
                          SFTRunConfig, RECIPE, ctx.runs_dir, "sft",
                          check=lambda cfg: check_data(cfg, stop=stop, progress=progress))))
    from studio.ui.components import run_picker

    if panel.recipe_btn is not None:  # the form shows what the recipe button runs
        panel.recipe_btn.click(fill_from_recipe, None, recipe_outputs, api_name=False, queue=False)
    if recipe_cfg is not None:  # the summary in the page's language: at load and after a switch
        from gradio.context import Context

        def summary():
            return recipe_summary(recipe_cfg)

        ctx.extra.setdefault("retranslate", []).append((summary, [], [summary_md]))
        if Context.root_block is not None:
            Context.root_block.load(summary, None, [summary_md], queue=False, api_visibility="undocumented",
                                    show_progress="hidden")
    # the panel's status, also beside the recipe button at the top
    panel.status.change(lambda text: text, panel.status, recipe_status, api_name=False, queue=False,
                        show_progress="hidden")
    run_picker(ctx, "sft", panel.run_dir_state)
    live_curves(panel.run_dir_state, groups=SFT_CURVES, timer=panel.timer)

    from studio.engine.train.sft import SFTRunConfig
    from studio.ui.jobpanel import after_training

    after_training(ctx, panel.run_dir_state, SFTRunConfig, "sft")
