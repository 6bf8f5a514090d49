"""RL tab: GRPO with curriculum sampling — data, settings → YAML + CLI, job control, live dashboard.

Thin by design: the form becomes an :class:`~studio.engine.train.rl.RLRunConfig`, saved as the
run's ``config.yaml``; the job manager runs exactly ``studio rl --config <run>/config.yaml``
as a child process (it survives the browser and the app), and a ``gr.Timer`` re-reads
``metrics.jsonl`` / ``rollouts.jsonl`` / ``train.log`` of the watched run. Everything below
the ``build`` function is plain Python (no gradio) so it is testable on its own.

Curves (RLCS.md "Curves the RL tab shows live"): reward mean ± std, held-out accuracy;
format-correct / forced-answer / truncation rates; pass rate and prompt count per tier;
tier sampling weights (stacked bars); zero-variance fraction, expansion EMA, effective
batch; completion length mean and max; KL (adapter-off probe when beta = 0); loss, grad
norm, learning rate; and a table of sampled rollouts with the thinking collapsed.
Model text is HTML-escaped everywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path

from studio.config import ModelSpec
from studio.errors import StudioError
from studio.ui.i18n import CATALOG, curve_label, empty_curve_label, t, tr

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
SAMPLE_PROMPTS = REPO / "sample_data" / "rl" / "prompts.jsonl"
SAMPLE_EVAL = REPO / "sample_data" / "rl" / "eval.jsonl"
#: The workshop RL recipe (``studio rl --config`` this file does the same).
RECIPE = REPO / "sample_data" / "workshop" / "rl.yaml"
#: The workshop model (format already learned): the default RL start when it is shipped.
TOY_THINKING = REPO / "studio" / "assets" / "toy-thinking"


def default_model(ctx) -> str:
    """The workshop model when it is there (RL needs the format), else the app's model."""
    if (TOY_THINKING / "config.json").is_file() and ctx.model.name_or_path in ("embedded", "", None):
        return str(TOY_THINKING)
    return ctx.model.name_or_path or "embedded"

#: (title, metric patterns, kind) of each dashboard plot. ``bar`` plots are stacked.
PLOTS: list[tuple[str, list[str], str]] = [
    ("Reward mean ± std", ["rewards/mean", "rewards/mean+std", "rewards/mean-std"], "line"),
    ("Held-out accuracy", ["eval/accuracy"], "line"),
    ("Format / forced / truncated rate", ["rollout/format_correct", "rollout/forced_answer", "rollout/truncated"],
     "line"),
    ("Pass rate per tier", ["curriculum/tier_pass_rate/*"], "line"),
    ("Prompts per tier", ["curriculum/tier_count/*"], "line"),
    ("Tier sampling weights (stacked)", ["curriculum/tier_weight/*"], "bar"),
    ("Zero-variance fraction · expansion EMA", ["curriculum/zero_variance_frac", "curriculum/expansion_ema"], "line"),
    ("Effective batch (prompts rolled out · informative groups)",
     ["curriculum/effective_batch", "curriculum/informative_groups"], "line"),
    ("Completion length (tokens)", ["completions/length_mean", "completions/length_max"], "line"),
    ("KL to base (adapter-off probe)", ["kl/probe", "train/kl"], "line"),
    ("Loss", ["train/loss"], "line"),
    ("Grad norm", ["train/grad_norm"], "line"),
    ("Learning rate", ["train/learning_rate"], "line"),
]


#: Series of the reward plot (PLOTS[0]), named up front for its legend (see components.plot_value).
REWARD_SERIES = list(PLOTS[0][1])


# --------------------------------------------------------------------------- pure helpers


def form_to_config(*, data: str, eval_data: str | None, model: str, adapter: str | None, mode: str,
                   reward_functions: list[str], num_generations: int, batch_size: int, max_steps: int,
                   learning_rate: float, thinking_budget: int, answer_budget: int, lora_rank: int,
                   lora_alpha: int, offline_grading: bool, cold_start: bool, use_vllm: bool,
                   eval_every: int, seed: int, output_dir: str = "", offline_samples: int = 4,
                   initial_pass_rate: float = 0.5):
    """Build and validate the run config from the form's values.

    Raises:
        ConfigError: a bad value (the message names the field and what to change).
    """
    from studio.engine.train.curriculum import CurriculumConfig
    from studio.engine.rewards import RewardConfig
    from studio.engine.train.rl import RLRunConfig

    cfg = RLRunConfig(
        model=ModelSpec(name_or_path=(model or "embedded").strip(), adapter=(adapter or None)),
        data=(data or "").strip(), eval_data=(eval_data or None),
        output_dir=output_dir,
        rewards=RewardConfig(functions=list(reward_functions or [])),
        curriculum=CurriculumConfig(mode=mode, offline_grading=bool(offline_grading), cold_start=bool(cold_start),
                                    offline_samples=int(offline_samples if offline_samples is not None else 4),
                                    initial_pass_rate=float(initial_pass_rate if initial_pass_rate is not None
                                                            else 0.5)),
        num_generations=int(num_generations), per_device_train_batch_size=int(batch_size),
        max_steps=int(max_steps), learning_rate=float(learning_rate), thinking_budget=int(thinking_budget),
        answer_budget=int(answer_budget), lora_rank=int(lora_rank), lora_alpha=int(lora_alpha),
        use_vllm=bool(use_vllm), eval_every=int(eval_every), seed=int(seed),
    )
    cfg.validate()
    return cfg


def cli_command(cfg, run_dir: str | None = None) -> str:
    """The equivalent shell command: ``studio rl --config …`` for a run, else ``--data …`` flags."""
    import shlex

    if run_dir:
        return shlex.join(["studio", "rl", "--config", str(Path(run_dir) / "config.yaml")])
    args = ["studio", "rl", "--data", cfg.data]
    if cfg.eval_data:
        args += ["--eval-data", cfg.eval_data]
    args += ["--model", cfg.model.name_or_path]
    if cfg.model.adapter:
        args += ["--adapter", cfg.model.adapter]
    args += ["--curriculum", cfg.curriculum.mode, "--reward", ",".join(cfg.rewards.functions),
             "--num-generations", str(cfg.num_generations), "--batch-size", str(cfg.per_device_train_batch_size),
             "--max-steps", str(cfg.max_steps), "--learning-rate", f"{cfg.learning_rate:g}",
             "--thinking-budget", str(cfg.thinking_budget), "--answer-budget", str(cfg.answer_budget),
             "--seed", str(cfg.seed), "--set", f"lora_rank={cfg.lora_rank}", "--set", f"lora_alpha={cfg.lora_alpha}",
             "--set", f"eval_every={cfg.eval_every}"]
    if not cfg.curriculum.offline_grading:
        args += ["--set", "curriculum.offline_grading=false"]
    elif cfg.curriculum.offline_samples != 4:
        args += ["--set", f"curriculum.offline_samples={cfg.curriculum.offline_samples}"]
    if cfg.curriculum.cold_start:
        args += ["--cold-start"]
        if cfg.curriculum.initial_pass_rate != 0.5:
            args += ["--set", f"curriculum.initial_pass_rate={cfg.curriculum.initial_pass_rate:g}"]
    if cfg.use_vllm:
        args += ["--use-vllm"]
    return shlex.join(args)


def with_bands(records: list[dict]) -> list[dict]:
    """Add ``rewards/mean±std`` keys so the reward plot shows a band around the mean."""
    out = []
    for r in records:
        m, s = r.get("rewards/mean"), r.get("rewards/std")
        if isinstance(m, (int, float)) and isinstance(s, (int, float)):
            r = {**r, "rewards/mean+std": m + s, "rewards/mean-std": m - s}
        out.append(r)
    return out


def curve_frames(records: list[dict]) -> list:
    """One long-format DataFrame (``step``, ``value``, ``series``) per entry of :data:`PLOTS`."""
    from studio.engine.train.metrics import to_long_frame

    recs = with_bands([r for r in records if r.get("kind", "train") in ("train", "eval")])
    frames = []
    for _, patterns, _kind in PLOTS:
        df = to_long_frame(recs, patterns)
        df["series"] = df["series"].str.replace("curriculum/tier_weight/", "", regex=False) \
            .str.replace("curriculum/tier_pass_rate/", "", regex=False) \
            .str.replace("curriculum/tier_count/", "", regex=False)
        frames.append(df)
    return frames


def _thumb(path: str | None, size: int = 64) -> str:
    if not path:
        return ""
    p = Path(path)
    if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif") or not p.is_file():
        return f"<span title='{html.escape(str(p))}'>🎞️ {html.escape(p.name)}</span>"
    try:
        from PIL import Image

        with Image.open(p) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
        data = base64.b64encode(buf.getvalue()).decode()
        return f"<img src='data:image/png;base64,{data}' width='{size}' alt='{html.escape(p.name)}'/>"
    except OSError:
        return html.escape(p.name)


def completion_html(text: str) -> str:
    """A completion with its thinking collapsed in ``<details>``; everything HTML-escaped.

    >>> completion_html("<think>a<b</think><answer>4</answer>")
    '<details><summary>thinking (3 chars)</summary><pre>a&lt;b</pre></details><pre>&lt;answer&gt;4&lt;/answer&gt;</pre>'
    """
    from studio.engine.infer.reasoning import THINK_CLOSE, THINK_OPEN, strip_control_tokens

    text = strip_control_tokens(text)
    if THINK_CLOSE in text:
        think, rest = text.split(THINK_CLOSE, 1)
        think = think.replace(THINK_OPEN, "")
    elif THINK_OPEN in text:
        think, rest = text.replace(THINK_OPEN, ""), ""
    else:
        think, rest = "", text
    out = ""
    if think:
        out += (f"<details><summary>{tr('rl.thinking_chars', n=len(think))}</summary>"
                f"<pre>{html.escape(think)}</pre></details>")
    return out + f"<pre>{html.escape(rest)}</pre>"


def read_rollouts(run_dir: str | Path, last_steps: int = 1, limit: int = 24) -> list[dict]:
    """Rows of ``rollouts.jsonl`` from the last ``last_steps`` steps.

    Read by the rules of ``metrics.jsonl`` (:func:`~studio.engine.train.metrics.read_metrics`): a
    torn line is skipped, and after a resume the redone steps replace the rows the lost ones
    wrote (one set of rows per step).
    """
    from studio.engine.train.metrics import read_metrics

    rows = read_metrics(Path(run_dir) / "rollouts.jsonl")
    if not rows:
        return []
    steps = sorted({r.get("step", 0) for r in rows})[-last_steps:]
    return [r for r in rows if r.get("step", 0) in steps][-limit:]


def rollouts_html(rows: list[dict]) -> str:
    """HTML table: step, prompt thumbnail + text, completion (thinking collapsed), reward, tier."""
    if not rows:
        return f"<p><i>{tr('rl.no_rollouts')}</i></p>"
    head = ("<table class='rl-rollouts'><thead><tr>"
            + "".join(f"<th>{tr('rl.col.' + c)}</th>" for c in ("step", "prompt", "completion", "reward", "tier"))
            + "</tr></thead><tbody>")
    body = []
    for r in rows:
        flags = " · ".join(tr(x) for x, on in (("rl.forced", r.get("forced")), ("rl.truncated", r.get("truncated")))
                           if on)
        reward = r.get("reward")
        reward_cell = f"{reward:.2f}" if isinstance(reward, (int, float)) else ""
        flag_html = f"<small>{flags}</small>" if flags else ""
        body.append(
            "<tr>"
            f"<td>{int(r.get('step', 0))}</td>"
            f"<td>{_thumb(r.get('image'))}<br/>{html.escape(str(r.get('prompt', '')))}"
            f"<br/><small>{tr('rl.answer')} {html.escape(str(r.get('answer', '')))}</small></td>"
            f"<td>{completion_html(str(r.get('completion', '')))}{flag_html}</td>"
            f"<td>{reward_cell}</td>"
            f"<td>{html.escape(str(r.get('tier', '')))}</td>"
            "</tr>"
        )
    return head + "".join(body) + "</tbody></table>"


def run_notes(run_dir: str | Path) -> str:
    """Markdown notes of a run: format-gate warning, too-easy stop, final status."""
    from studio.engine.train.runs import read_status

    run = Path(run_dir)
    notes = []
    gate = run / "format_gate.json"
    if gate.is_file():
        try:
            g = json.loads(gate.read_text())
            if g.get("warning"):
                notes.append(f"⚠️ {html.escape(g['warning'])}")
            else:
                notes.append("✅ " + tr("rl.format_gate", rate=f"{g.get('rate', 0):.0%}"))
        except ValueError:
            pass
    stop = run / "stop_reason.txt"
    if stop.is_file():
        notes.append(f"🛑 {html.escape(stop.read_text(encoding='utf-8').strip())}")
    st = read_status(run)
    if st.get("status"):
        key = f"job.status.{st['status']}"
        line = f"{tr('rl.status')} {tr(key) if key in CATALOG else st['status']}"
        if st.get("error"):
            line += f" — {html.escape(str(st['error']))}"
        notes.append(line)
    return "\n\n".join(notes) or tr("rl.no_run_selected")


def rl_runs(runs_dir: str | Path) -> list[str]:
    """RL run folders under ``runs_dir``, newest first."""
    from studio.ui.components import runs_of_kind

    return runs_of_kind(runs_dir, "rl")


# --------------------------------------------------------------------------- the tab


def _err(e: BaseException):
    from studio.ui.components import as_gradio_error

    return as_gradio_error(e, "the RL tab")


def build(ctx) -> None:
    """Build the RL tab into the current ``gr.Blocks`` context.

    Job control (Start / Stop / Resume, status, log, CLI) is the shared
    :func:`studio.ui.jobpanel.job_panel`; the line curves are
    :func:`studio.ui.components.live_curves` on the same timer. This tab adds the reward
    band (mean ± std), the stacked tier-weight bars, the rollouts table, the format-gate /
    too-easy notes, a picker for earlier runs, and Try it / Compare / Export.
    """
    import gradio as gr

    from studio.engine import rewards as rewards_mod
    from studio.engine.train.metrics import read_metrics
    from studio.engine.train.rl import RLRunConfig, check_data, vllm_available
    from studio.engine.train.runs import new_run_dir
    from studio.engine.train.curriculum import TIER_NAMES
    from studio.ui.components import (CurveGroup, chart_options, chart_update, empty_chart, live_curves,
                                      run_picker, x_range)
    from studio.ui.jobpanel import after_training, job_panel

    vllm_ok, vllm_why = vllm_available()

    gr.Markdown(t("rl.intro"))
    with gr.Row():
        with gr.Column(scale=2):
            data = gr.Textbox(label=t("rl.data"), value=str(SAMPLE_PROMPTS), info=t("rl.data_info"))
            eval_data = gr.Textbox(label=t("rl.eval_data"), value=str(SAMPLE_EVAL))
            with gr.Row():
                sample_btn = gr.Button(t("rl.sample_btn"), size="sm")
                upload = gr.File(label=t("rl.upload"), file_types=[".jsonl", ".json"], height=160, min_width=200,
                                 elem_id="rl-upload")
            model = gr.Textbox(label=t("cmp.model"), value=default_model(ctx), info=t("rl.model_info"))
            adapter = gr.Textbox(label=t("rl.adapter"), value="")
        with gr.Column(scale=2):
            mode = gr.Radio(["rlcs", "uniform"], value="rlcs", label=t("rl.curriculum"),
                            info=t("rl.curriculum_info"))
            reward_fns = gr.Dropdown(list(rewards_mod.REGISTRY), value=["accuracy"], multiselect=True,
                                     label=t("rl.rewards"))
            with gr.Row():
                num_gen = gr.Number(4, label=t("rl.group_size"), precision=0)
                batch = gr.Number(8, label=t("rl.batch"), precision=0, info=t("rl.batch_info"))
                steps = gr.Number(60, label=t("common.max_steps"), precision=0)
            with gr.Row():
                lr = gr.Number(2e-4, label=t("common.learning_rate"))
                t_budget = gr.Number(64, label=t("rl.t_budget"), precision=0)
                a_budget = gr.Number(24, label=t("rl.a_budget"), precision=0)
            with gr.Row():
                rank = gr.Number(16, label=t("common.lora_rank"), precision=0)
                alpha = gr.Number(32, label=t("common.lora_alpha"), precision=0)
                eval_every = gr.Number(10, label=t("rl.eval_every"), precision=0)
                seed = gr.Number(0, label=t("common.seed"), precision=0)
            with gr.Row():
                grading = gr.Checkbox(True, label=t("rl.grading"))
                k_samples = gr.Number(4, label=t("rl.k"), precision=0, minimum=1, elem_id="rl-k", min_width=90)
                cold = gr.Checkbox(False, label=t("rl.cold"))
                p0 = gr.Number(0.5, label=t("rl.p0"), minimum=0, maximum=1, step=0.05, elem_id="rl-p0", min_width=90)
            with gr.Row():
                use_vllm = gr.Checkbox(False, label=t("rl.vllm"), interactive=vllm_ok,
                                       info=t("rl.vllm_ok") if vllm_ok else t("rl.vllm_missing") + f" {vllm_why}")
    form = [data, eval_data, model, adapter, mode, reward_fns, num_gen, batch, steps, lr, t_budget, a_budget,
            rank, alpha, grading, cold, use_vllm, eval_every, seed, k_samples, p0]  # k, p last: older API calls fit
    with gr.Accordion(t("rl.config_acc"), open=False):
        yaml_box = gr.Code(language="yaml", label="config.yaml", interactive=False)
        cli_box = gr.Textbox(label=t("rl.cli"), interactive=False, buttons=["copy"])

    def _values(vals):
        keys = ["data", "eval_data", "model", "adapter", "mode", "reward_functions", "num_generations",
                "batch_size", "max_steps", "learning_rate", "thinking_budget", "answer_budget", "lora_rank",
                "lora_alpha", "offline_grading", "cold_start", "use_vllm", "eval_every", "seed", "offline_samples",
                "initial_pass_rate"]
        return dict(zip(keys, vals))

    def preview(*vals):
        try:
            cfg = form_to_config(**_values(vals))
        except StudioError as e:
            return f"# {e}", ""
        return cfg.to_yaml(), cli_command(cfg)

    def new_run(*vals):
        cfg = form_to_config(**_values(vals))
        check_data(cfg)  # prompts, answers, media paths: refused before a run folder exists
        run = new_run_dir(ctx.runs_dir, "rl", Path(cfg.data).stem)
        cfg.output_dir = str(run)
        return run, cfg.to_yaml()

    gr.Markdown(t("rl.train_md"))
    from studio.engine.train.runs import recipe_run

    panel = job_panel(ctx, "rl", new_run, inputs=form,
                      recipe=(t("rl.recipe_btn"),  # its data ships with it: nothing to generate, nothing to stop
                              lambda stop=None: recipe_run(RLRunConfig, RECIPE, ctx.runs_dir, "rl", check=check_data)))
    run_pick = run_picker(ctx, "rl", panel.run_dir_state)
    notes = gr.Markdown()
    with gr.Row():  # empty until the run's first step (chart_update fills them)
        reward_plot = gr.LinePlot(**{**chart_options(curve_label(PLOTS[0][0]), keys=PLOTS[0][1]), "show_label": True,
                                     "label": empty_curve_label(PLOTS[0][0])})
        tier_plot = gr.BarPlot(**{**chart_options(curve_label(PLOTS[5][0]), keys=PLOTS[5][1]), "show_label": True,
                                  "label": empty_curve_label(PLOTS[5][0])})
    groups = [CurveGroup(title, keys) for title, keys, kind in PLOTS if kind == "line" and title != PLOTS[0][0]]
    live_curves(panel.run_dir_state, groups=groups, timer=panel.timer, height=240)
    gr.Markdown(t("rl.rollouts_md"))
    rollouts = gr.HTML()
    after_training(ctx, panel.run_dir_state, RLRunConfig, "rl", no_run_key="rl.no_run_yet")

    def refresh(run):
        if not run or not Path(run).is_dir():
            return empty_chart(PLOTS[0][0]), empty_chart(PLOTS[5][0]), rollouts_html([]), tr("rl.no_run")
        frames = curve_frames(read_metrics(Path(run) / "metrics.jsonl"))
        lim = x_range(run)  # the range of every chart of this run (live_curves' plots too)
        return (chart_update(frames[0], REWARD_SERIES, PLOTS[0][0], lim),
                chart_update(frames[5], TIER_NAMES, PLOTS[5][0], lim, stacked=True),
                rollouts_html(read_rollouts(run)), run_notes(run))

    extra_outs = [reward_plot, tier_plot, rollouts, notes]
    for comp in form:
        comp.change(preview, form, [yaml_box, cli_box], queue=False, show_progress="hidden",
                    api_visibility="undocumented")
    sample_btn.click(lambda: (str(SAMPLE_PROMPTS), str(SAMPLE_EVAL)), None, [data, eval_data],
                     api_visibility="undocumented")
    upload.upload(lambda f: (f if isinstance(f, str) else getattr(f, "name", "")), upload, data,
                  api_visibility="undocumented")
    panel.timer.tick(refresh, panel.run_dir_state, extra_outs, show_progress="hidden", queue=False,
                     api_visibility="undocumented")
    panel.run_dir_state.change(refresh, panel.run_dir_state, extra_outs, show_progress="hidden",
                               api_visibility="undocumented")
    gr.Button(t("runs.refresh"), visible=False).click(refresh, run_pick, extra_outs, api_name="rl_refresh")
    show_btn = gr.Button(t("common.show_config"), visible=False)
    show_btn.click(preview, form, [yaml_box, cli_box], api_name="rl_config")
    y, c = preview(*[comp.value for comp in form])
    yaml_box.value, cli_box.value = y, c
