"""Issue: a fresh machine runs quietly and the page is served before the model loads.

* building the whole app imports neither torch nor transformers (the page waits on neither);
* ``ModelRegistry.preload`` loads in the background and reports its phases, or the failure;
* the Chat tab shows "Loading model …" while it loads and hides it once ready (browser);
* a normal ``studio chat`` / ``studio sft`` prints no warning lines, and bitsandbytes is not
  imported unless 4-bit is asked for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_DATA, free_port

CHROMIUM = os.environ.get("STUDIO_CHROMIUM", "/usr/bin/chromium")
ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO))


def _py(code: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def test_building_the_app_imports_no_torch():
    r = _py("import sys\n"
            "from studio.ui.app import build_app\n"
            "from studio.ui.context import AppContext\n"
            "build_app(AppContext())\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'trl', 'bitsandbytes') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "HEAVY []" in r.stdout, r.stdout


def test_peft_does_not_import_bitsandbytes_until_4bit_is_asked_for():
    r = _py("import sys\n"
            "from studio.runtime import quiet_defaults, allow_bitsandbytes\n"
            "quiet_defaults()\n"
            "import peft, trl\n"
            "print('BNB', sys.modules.get('bitsandbytes', 'absent'))\n"
            "print('MARK', file=sys.stderr, flush=True)\n"
            "print('ALLOWED', allow_bitsandbytes())\n"
            "import importlib; importlib.import_module('bitsandbytes')\n"
            "print('LOADED', type(sys.modules['bitsandbytes']).__name__)\n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "BNB None" in r.stdout
    assert "Failed to load CPU gemm_4bit_forward" not in r.stderr.split("MARK")[0]
    assert "ALLOWED True" in r.stdout and "LOADED module" in r.stdout


def _warning_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines()
            if any(w in ln for w in ("Warning", "warning:", "WARNING", "deprecated", "Failed to load"))]


def test_chat_and_sft_print_no_warning_lines(tiny_path, tmp_path):
    chat = subprocess.run([sys.executable, "-m", "studio", "chat", "--model", str(tiny_path), "--device", "cpu",
                           "--image", str(SAMPLE_DATA / "photos" / "coffee.jpg"), "--max-new-tokens", "4", "Hi"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=240)
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert _warning_lines(chat.stdout + chat.stderr) == []
    sft = subprocess.run([sys.executable, "-m", "studio", "sft", "--data", str(SAMPLE_DATA / "sft" / "train.jsonl"),
                          "--model", str(tiny_path), "--max-steps", "1", "--runs-dir", str(tmp_path)],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert sft.returncode == 0, sft.stderr[-2000:]
    # the doctor's own "warning:" lines are about the user's data; none here is from a library
    assert [ln for ln in _warning_lines(sft.stdout + sft.stderr) if not ln.startswith("warning: ")] == []
    import stat

    weights = list(tmp_path.rglob("*.safetensors"))
    assert weights, "the run saved no adapter"
    mode = stat.S_IMODE(next(tmp_path.rglob("config.yaml")).stat().st_mode)
    assert {stat.S_IMODE(w.stat().st_mode) for w in weights} == {mode}


def test_preload_reports_phases_then_ready(tiny_path):
    from studio.config import ModelSpec
    from studio.engine.infer.models import ModelRegistry

    reg = ModelRegistry()
    spec = ModelSpec(name_or_path=str(tiny_path), device="cpu")
    done = []
    st = reg.preload(spec, on_done=done.append)
    assert reg.status(spec) is st and st.name == str(tiny_path)
    deadline = time.monotonic() + 120
    while not done and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done == [st] and st.ready and st.error == "" and st.seconds > 0
    model, _ = reg.get(spec)  # same object, no second load
    assert reg.get(spec)[0] is model


def test_preload_failure_is_one_sentence(tmp_path):
    from studio.config import ModelSpec
    from studio.engine.infer.models import ModelRegistry

    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "glm4v"}')  # passes the precheck, fails to load
    reg = ModelRegistry()
    done = []
    st = reg.preload(ModelSpec(name_or_path=str(bad), device="cpu"), on_done=done.append)
    deadline = time.monotonic() + 120
    while not done and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st.phase == "failed" and st.error and "\n" not in st.error and "Traceback" not in st.error


@pytest.mark.parametrize("config, message", [
    (None, "has no readable config.json"),
    ('{"model_type": "llama"}', "is a 'llama' model"),
])
def test_ui_refuses_a_wrong_model_before_serving(tmp_path, config, message):
    folder = tmp_path / "m"
    folder.mkdir()
    if config:
        (folder / "config.json").write_text(config)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "studio", "ui", "--model", str(folder), "--port", str(free_port())],
                       cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr[-1000:]
    assert "Serving on" not in r.stdout and time.monotonic() - t0 < 60


@pytest.mark.browser
@pytest.mark.skipif(not (Path(CHROMIUM).exists() or shutil.which("chromium")), reason="Chromium not installed")
def test_chat_tab_shows_the_loading_model_until_ready(tiny_path):
    from playwright.sync_api import sync_playwright

    from studio.commands.ui import launch
    from studio.config import ModelSpec
    from studio.engine.infer.models import LoadStatus
    from studio.ui.context import AppContext

    ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    st = LoadStatus(str(tiny_path), "loading weights (float32 on cpu)")
    ctx.registry._status[ctx.registry.key(ctx.model)] = st  # a load in progress, as preload leaves it
    demo = launch(ctx, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            pg = browser.new_page(viewport={"width": 1280, "height": 720})
            pg.goto(demo.local_url)
            banner = pg.locator("#model-loading")
            banner.get_by_text("Loading model").wait_for(timeout=30_000)
            assert "loading weights (float32 on cpu)" in banner.inner_text()
            ctx.registry.get(ctx.model)  # the load finishes: the status turns ready
            assert st.ready
            banner.wait_for(state="hidden", timeout=30_000)
            browser.close()
    finally:
        demo.close()
