"""Shared fixtures. Every test runs offline on the embedded tiny GLM-4.1V."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

from studio.runtime import quiet_defaults  # noqa: E402

quiet_defaults()  # as every studio entry point does: no bitsandbytes unless 4-bit is asked for

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory) -> Path:
    """Folder of a freshly built tiny GLM-4.1V (save_pretrained output)."""
    from studio.engine.infer.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def glm46v_path(tmp_path_factory) -> Path:
    """Folder of a freshly built tiny GLM-4.6V-Flash replica: thinking switch in its chat
    template, its own generation_config (temperature 0.8, top_p 0.6, top_k 2,
    repetition_penalty 1.1, max_new_tokens 256)."""
    from studio.engine.infer.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny46") / "model", like="glm-4.6v-flash")


@pytest.fixture
def prompts(monkeypatch) -> list[str]:
    """The decoded prompt of every ``studio.engine.infer.chat.build_inputs`` call from now on
    (what the model reads; Chat and Compare both build their chat prompts there)."""
    from studio.engine.infer import chat as engine

    seen: list[str] = []
    real = engine.build_inputs

    def spy(processor, *args, **kwargs):
        out = real(processor, *args, **kwargs)
        seen.append(processor.tokenizer.decode(out["input_ids"][0]))
        return out

    monkeypatch.setattr(engine, "build_inputs", spy)
    return seen


@pytest.fixture(scope="session")
def tiny(tiny_path):
    """(model, processor) loaded through the normal loading path, fp32 on CPU."""
    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    return load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for in-process app tests)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_tiny_app(tiny_path):
    """(ctx, demo): the full app on the tiny model, launched in-process on a free port."""
    from studio.commands.ui import launch
    from studio.config import ModelSpec
    from studio.ui.context import AppContext

    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    ctx.registry.get(ctx.model)
    return ctx, launch(ctx, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)


def launch_tab(tab, ctx):
    """demo: one tab module's ``build(ctx)`` alone, launched in-process on a free port."""
    import gradio as gr

    with gr.Blocks() as demo:
        tab.build(ctx)
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                quiet=True, show_error=True)
    return demo


def make_trained_folder(run: Path, step: int, ckpt_parent: str = "") -> Path:
    """A run folder as training at ``step`` left it: a complete checkpoint (under
    ``ckpt_parent``: RL's ``checkpoints/``), its metrics, TensorBoard events, progress."""
    import json

    from studio.engine.train.metrics import MetricsWriter, write_json_atomic

    ck = run / ckpt_parent / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    with MetricsWriter(run) as w:
        for s in range(1, step + 1):
            w.log(s, **{"train/loss": 6.5 - s / 100})
    (run / "tb").mkdir()
    (run / "tb" / "events.out.tfevents.1").write_bytes(b"x")
    write_json_atomic(run / "progress.json", {"phase": "doctor", "done": 3, "total": 9})
    return ck


def make_eval_run(run: Path, tiny_path, n: int) -> Path:
    """A run folder for Evaluate (before / after): a LoRA adapter on the tiny model, ``n``
    held-out workshop prompts as its ``eval_data`` and the ``config.yaml`` naming both."""
    import json

    from peft import LoraConfig, get_peft_model

    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    model, _ = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=r".*language_model.*q_proj")) \
        .save_pretrained(str(run / "adapter"))
    rows = [json.loads(x) for x in (SAMPLE_DATA / "workshop" / "eval.jsonl").read_text().splitlines()][:n]
    for r in rows:
        r["images"] = [str(SAMPLE_DATA / "workshop" / p) for p in r["images"]]
    (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.yaml").write_text(f"model:\n  name_or_path: {tiny_path}\neval_data: {run / 'eval.jsonl'}\n")
    return run
