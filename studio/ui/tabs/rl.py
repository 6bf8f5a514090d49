"""RL tab: GRPO with curriculum sampling — data, settings → YAML + CLI, job control, live dashboard.

Thin by design: the form becomes an :class:`~studio.engine.rl.RLRunConfig`, saved as the
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
from typing import Any

from studio.config import ModelSpec
from studio.errors import StudioError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
SAMPLE_PROMPTS = REPO / "sample_data" / "rl" / "prompts.jsonl"
SAMPLE_EVAL = REPO / "sample_data" / "rl" / "eval.jsonl"
SAMPLE_LABEL = "Sample set (sample_data/rl: 38 prompts, 12 held out)"

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


# --------------------------------------------------------------------------- pure helpers


def form_to_config(*, data: str, eval_data: str | None, model: str, adapter: str | None, mode: str,
                   reward_functions: list[str], num_generations: int, batch_size: int, max_steps: int,
                   learning_rate: float, thinking_budget: int, answer_budget: int, lora_rank: int,
                   lora_alpha: int, offline_grading: bool, cold_start: bool, use_vllm: bool,
                   eval_every: int, seed: int, output_dir: str = ""):
    """Build and validate the run config from the form's values.

    Raises:
        ConfigError: a bad value (the message names the field and what to change).
    """
    from studio.engine.curriculum import CurriculumConfig
    from studio.engine.rewards import RewardConfig
    from studio.engine.rl import RLRunConfig

    cfg = RLRunConfig(
        model=ModelSpec(name_or_path=(model or "embedded").strip(), adapter=(adapter or None)),
        data=(data or "").strip(), eval_data=(eval_data or None),
        output_dir=output_dir,
        rewards=RewardConfig(functions=list(reward_functions or [])),
        curriculum=CurriculumConfig(mode=mode, offline_grading=bool(offline_grading), cold_start=bool(cold_start)),
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
    if cfg.curriculum.cold_start:
        args += ["--cold-start"]
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
    from studio.engine.metrics import to_long_frame

    recs = with_bands([r for r in records if r.get("kind", "train") == "train"])
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
    from studio.engine.reasoning import THINK_CLOSE, THINK_OPEN, strip_control_tokens

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
        out += (f"<details><summary>thinking ({len(think)} chars)</summary>"
                f"<pre>{html.escape(think)}</pre></details>")
    return out + f"<pre>{html.escape(rest)}</pre>"


def read_rollouts(run_dir: str | Path, last_steps: int = 1, limit: int = 24) -> list[dict]:
    """Rows of ``rollouts.jsonl`` from the last ``last_steps`` steps (a torn last line is skipped)."""
    p = Path(run_dir) / "rollouts.jsonl"
    if not p.is_file():
        return []
    rows = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    if not rows:
        return []
    steps = sorted({r.get("step", 0) for r in rows})[-last_steps:]
    return [r for r in rows if r.get("step", 0) in steps][-limit:]


def rollouts_html(rows: list[dict]) -> str:
    """HTML table: step, prompt thumbnail + text, completion (thinking collapsed), reward, tier."""
    if not rows:
        return "<p><i>No rollouts yet.</i></p>"
    head = ("<table class='rl-rollouts'><thead><tr><th>step</th><th>prompt</th><th>completion</th>"
            "<th>reward</th><th>tier</th></tr></thead><tbody>")
    body = []
    for r in rows:
        flags = " · ".join(x for x, on in (("forced", r.get("forced")), ("truncated", r.get("truncated"))) if on)
        reward = r.get("reward")
        reward_cell = f"{reward:.2f}" if isinstance(reward, (int, float)) else ""
        flag_html = f"<small>{flags}</small>" if flags else ""
        body.append(
            "<tr>"
            f"<td>{int(r.get('step', 0))}</td>"
            f"<td>{_thumb(r.get('image'))}<br/>{html.escape(str(r.get('prompt', '')))}"
            f"<br/><small>answer: {html.escape(str(r.get('answer', '')))}</small></td>"
            f"<td>{completion_html(str(r.get('completion', '')))}{flag_html}</td>"
            f"<td>{reward_cell}</td>"
            f"<td>{html.escape(str(r.get('tier', '')))}</td>"
            "</tr>"
        )
    return head + "".join(body) + "</tbody></table>"


def run_notes(run_dir: str | Path) -> str:
    """Markdown notes of a run: format-gate warning, too-easy stop, final status."""
    from studio.engine.runs import read_status

    run = Path(run_dir)
    notes = []
    gate = run / "format_gate.json"
    if gate.is_file():
        try:
            g = json.loads(gate.read_text())
            if g.get("warning"):
                notes.append(f"⚠️ {html.escape(g['warning'])}")
            else:
                notes.append(f"✅ Format gate: {g.get('rate', 0):.0%} format-correct.")
        except ValueError:
            pass
    stop = run / "stop_reason.txt"
    if stop.is_file():
        notes.append(f"🛑 {html.escape(stop.read_text(encoding='utf-8').strip())}")
    st = read_status(run)
    if st.get("status"):
        line = f"**Status:** {st['status']}"
        if st.get("error"):
            line += f" — {html.escape(str(st['error']))}"
        notes.append(line)
    return "\n\n".join(notes) or "_No run selected._"


def rl_runs(runs_dir: str | Path) -> list[str]:
    """RL run folders under ``runs_dir``, newest first."""
    from studio.engine.runs import list_runs

    try:
        return [str(r.path) for r in list_runs(runs_dir, kind="rl")]
    except (OSError, StudioError):
        return []


# --------------------------------------------------------------------------- the tab


def build(ctx) -> None:
    """Build the RL tab into the current ``gr.Blocks`` context."""
    import gradio as gr

    from studio.engine import rewards as rewards_mod
    from studio.engine.jobs import JobManager
    from studio.engine.metrics import read_metrics
    from studio.engine.rl import vllm_available
    from studio.ui.app import GPU_CONCURRENCY_ID

    jobs = JobManager(ctx.runs_dir)
    vllm_ok, vllm_why = vllm_available()

    gr.Markdown(
        "### GRPO with curriculum sampling (RLCS)\n"
        "Prompts with a verifiable answer → G samples each → rewards → the curriculum re-weights "
        "difficulty tiers and keeps the groups closest to half right. Teach the "
        "`<think>…</think><answer>…</answer>` format in the **SFT** tab first; the format gate warns otherwise."
    )
    with gr.Row():
        with gr.Column(scale=2):
            data = gr.Textbox(label="Prompt file (JSONL)", value=str(SAMPLE_PROMPTS),
                              info="rows: prompt, images/videos, answer, task_type, difficulty")
            eval_data = gr.Textbox(label="Held-out file (optional)", value=str(SAMPLE_EVAL))
            with gr.Row():
                sample_btn = gr.Button(SAMPLE_LABEL, size="sm")
                upload = gr.File(label="…or upload a JSONL", file_types=[".jsonl", ".json"], height=80)
            model = gr.Textbox(label="Model", value=ctx.model.name_or_path or "embedded")
            adapter = gr.Textbox(label="Start from adapter (SFT run's adapter folder, optional)", value="")
        with gr.Column(scale=2):
            mode = gr.Radio(["rlcs", "uniform"], value="rlcs", label="Curriculum",
                            info="uniform = the baseline (no tiers, no expansion)")
            reward_fns = gr.Dropdown(list(rewards_mod.REGISTRY), value=["accuracy"], multiselect=True,
                                     label="Reward functions (summed)")
            with gr.Row():
                num_gen = gr.Number(4, label="Group size G", precision=0)
                batch = gr.Number(8, label="Completions per step", precision=0,
                                  info="multiple of G")
                steps = gr.Number(60, label="Max steps", precision=0)
            with gr.Row():
                lr = gr.Number(2e-4, label="Learning rate")
                t_budget = gr.Number(64, label="Thinking budget T", precision=0)
                a_budget = gr.Number(24, label="Answer budget A", precision=0)
            with gr.Row():
                rank = gr.Number(16, label="LoRA rank", precision=0)
                alpha = gr.Number(32, label="LoRA alpha", precision=0)
                eval_every = gr.Number(10, label="Eval every (steps)", precision=0)
                seed = gr.Number(0, label="Seed", precision=0)
            with gr.Row():
                grading = gr.Checkbox(True, label="Offline grading (k samples per prompt)")
                cold = gr.Checkbox(False, label="Cold start (every p = 0.5)")
                use_vllm = gr.Checkbox(False, label="vLLM colocate generation", interactive=vllm_ok,
                                       info="available" if vllm_ok else f"unavailable: {vllm_why}")
    form = [data, eval_data, model, adapter, mode, reward_fns, num_gen, batch, steps, lr, t_budget, a_budget,
            rank, alpha, grading, cold, use_vllm, eval_every, seed]
    with gr.Accordion("Config (YAML) and the equivalent CLI command", open=False):
        yaml_box = gr.Code(language="yaml", label="config.yaml", interactive=False)
        cli_box = gr.Textbox(label="CLI", interactive=False, buttons=["copy"])
    with gr.Row():
        start_btn = gr.Button("Start", variant="primary")
        stop_btn = gr.Button("Stop (saves a checkpoint)", variant="stop")
        resume_btn = gr.Button("Resume selected run")
        run_pick = gr.Dropdown(rl_runs(ctx.runs_dir), label="Run", allow_custom_value=True, scale=3)
    notes = gr.Markdown()
    plots = []
    for row_start in range(0, len(PLOTS), 3):
        with gr.Row(equal_height=True):
            for title, _, kind in PLOTS[row_start:row_start + 3]:
                cls = gr.BarPlot if kind == "bar" else gr.LinePlot
                plots.append(cls(x="step", y="value", color="series", title=title, height=220, min_width=300))
    rollouts = gr.HTML(label="Sampled rollouts (last step)")
    logs = gr.Textbox(label="train.log (tail)", lines=10, max_lines=10, autoscroll=True)
    with gr.Row():
        try_btn = gr.Button("Try it in Chat")
        cmp_btn = gr.Button("Compare with base")
        export_dir = gr.Textbox(label="Export merged model to", placeholder="exports/my-rl-model", scale=2)
        export_btn = gr.Button("Export")
    action_md = gr.Markdown()
    timer = gr.Timer(2.0)

    def _values(vals):
        keys = ["data", "eval_data", "model", "adapter", "mode", "reward_functions", "num_generations",
                "batch_size", "max_steps", "learning_rate", "thinking_budget", "answer_budget", "lora_rank",
                "lora_alpha", "offline_grading", "cold_start", "use_vllm", "eval_every", "seed"]
        return dict(zip(keys, vals))

    def preview(*vals):
        try:
            cfg = form_to_config(**_values(vals))
        except StudioError as e:
            return f"# {e}", ""
        return cfg.to_yaml(), cli_command(cfg)

    def start(*vals):
        from studio.engine.runs import new_run_dir

        try:
            cfg = form_to_config(**_values(vals))
            run = new_run_dir(ctx.runs_dir, "rl", Path(cfg.data).stem)
            cfg.output_dir = str(run)
            cfg.to_yaml(run / "config.yaml")
            jobs.start("rl", run)
        except StudioError as e:
            raise gr.Error(str(e)) from None
        return gr.update(choices=rl_runs(ctx.runs_dir), value=str(run)), cli_command(cfg, str(run))

    def stop():
        job = jobs.current()
        if job is None:
            return "No job is running."
        jobs.stop(wait=False)
        return f"Stop requested for {Path(job.run_dir).name}: it saves a checkpoint at the end of this step."

    def resume(run):
        if not run:
            raise gr.Error("Pick a run in the Run list first.")
        try:
            jobs.start("rl", run, extra_args=["--resume"])
        except StudioError as e:
            raise gr.Error(str(e)) from None
        return f"Resuming {Path(run).name} from its last checkpoint (curriculum state restored)."

    def refresh(run):
        if not run:
            job = jobs.current()
            if job is not None and job.kind == "rl":  # re-attach after an app restart
                run = str(job.run_dir)
        if not run or not Path(run).is_dir():
            empty = curve_frames([])
            return (*empty, rollouts_html([]), "", run_notes(run) if run else "_No run selected._",
                    gr.update())
        records = read_metrics(Path(run) / "metrics.jsonl")
        frames = curve_frames(records)
        from studio.engine.jobs import tail_file

        return (*frames, rollouts_html(read_rollouts(run)), tail_file(Path(run) / "train.log", 60),
                run_notes(run), gr.update(value=run))

    def adapter_of(run):
        from studio.engine.runs import find_adapter

        if not run:
            raise gr.Error("Pick a run in the Run list first.")
        a = find_adapter(run)
        if a is None:
            from studio.engine.runs import find_last_checkpoint

            ck = find_last_checkpoint(run)
            if ck is None or not (ck / "adapter_config.json").is_file():
                raise gr.Error("This run has no adapter yet: wait for its first checkpoint or for it to finish.")
            a = ck
        return str(a)

    def try_it(run):
        a = adapter_of(run)
        ctx.extra["chat_adapter"] = a
        return f"Adapter `{a}` is selected in the **Chat** tab — open it to try the model."

    def compare(run):
        a = adapter_of(run)
        ctx.extra["compare_adapter"] = a
        return f"Adapter `{a}` is loaded as side B in the **Compare** tab (side A: the base model)."

    def export(run, out):
        from studio.engine.export import merge_adapter

        a = adapter_of(run)
        if not out:
            raise gr.Error("Type a folder to export the merged model to.")
        try:
            rep = merge_adapter(None, a, out)
        except StudioError as e:
            raise gr.Error(str(e)) from None
        return (f"Exported to `{html.escape(str(rep.get('out_dir', out)))}` — verified: "
                f"{rep.get('verified')}, greedy outputs match: {rep.get('match')}.")

    for comp in form:
        comp.change(preview, form, [yaml_box, cli_box], api_name=False, queue=False, show_progress="hidden")
    sample_btn.click(lambda: (str(SAMPLE_PROMPTS), str(SAMPLE_EVAL)), None, [data, eval_data], api_name=False)
    upload.upload(lambda f: (f if isinstance(f, str) else getattr(f, "name", "")), upload, data, api_name=False)
    start_btn.click(start, form, [run_pick, cli_box], api_name="rl_start")
    stop_btn.click(stop, None, action_md, api_name="rl_stop", queue=False)
    resume_btn.click(resume, run_pick, action_md, api_name="rl_resume")
    refresh_outs = [*plots, rollouts, logs, notes, run_pick]
    timer.tick(refresh, run_pick, refresh_outs, api_name=False, show_progress="hidden", queue=False)
    run_pick.change(refresh, run_pick, refresh_outs, api_name="rl_refresh", show_progress="hidden")
    try_btn.click(try_it, run_pick, action_md, api_name=False)
    cmp_btn.click(compare, run_pick, action_md, api_name=False)
    export_btn.click(export, [run_pick, export_dir], action_md, api_name="rl_export",
                     concurrency_id=GPU_CONCURRENCY_ID, concurrency_limit=1)
    preview_vals = [c.value for c in form]
    try:
        y, c = preview(*preview_vals)
        yaml_box.value, cli_box.value = y, c
    except Exception:  # noqa: BLE001 - a preview failure must not break the app
        log.exception("RL tab preview failed")
