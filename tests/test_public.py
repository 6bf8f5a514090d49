"""Public mode (studio/ui/public.py) against a crafted client: one test per hole and defect
of issue 23, each sending the value that got through before and asserting the refusal.

One public app (tiny model, a runs folder with an adapter, another adapter outside it and a
symlink pointing out) serves the whole module. It is built with a stand-in ``spaces``
package in ``sys.modules``, as on a ZeroGPU Space, so the GPU handlers are wrapped.
"""

from __future__ import annotations

import inspect
import json
import shutil
import sys
import threading
import types
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, free_port
from crafted import Raw, big_pages_pdf, measure_rss, png_of_size

gradio_client = pytest.importorskip("gradio_client")

#: What every adapter refusal says, whatever was wrong (no path, no hint which rule failed).
REFUSED = "loads only the adapters trained on this server"
#: Settings of a short greedy chat: system, temperature, top_p, top_k, repetition penalty,
#: max new tokens, thinking budget, answer budget, fps, max frames.
FAST = ["", 0.0, 0.9, 0, 1.0, 4, 0, 64, 2.0, 32]


class StandInSpaces(types.ModuleType):
    """The part of Hugging Face's ``spaces`` package the Studio uses: ``GPU(duration=fn)``,
    recording each call's computed duration."""

    def __init__(self):
        super().__init__("spaces")
        self.calls: list[tuple[str, int]] = []

    def GPU(self, duration):  # noqa: N802 - the real package's name
        def deco(fn):
            if inspect.isgeneratorfunction(fn):
                def wrapped(*a, **k):
                    self.calls.append((fn.__name__, duration(*a, **k)))
                    yield from fn(*a, **k)
            else:
                def wrapped(*a, **k):
                    self.calls.append((fn.__name__, duration(*a, **k)))
                    return fn(*a, **k)
            return wrapped
        return deco


def _tiny_adapter(tiny_path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from studio.config import ModelSpec
    from studio.engine.infer.models import load

    model, _ = load(ModelSpec(name_or_path=str(tiny_path), device="cpu"))
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                     init_lora_weights=False)
    torch.manual_seed(1)
    get_peft_model(model, cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pub(tiny_path, tmp_path_factory):
    """(demo, ctx, url, spaces stand-in, paths) of a public app launched in-process."""
    from studio.commands.ui import launch
    from studio.config import ModelSpec
    from studio.ui.context import AppContext

    root = tmp_path_factory.mktemp("public")
    runs = root / "runs"
    run = runs / "20260101-000000-sft-demo"
    adapter = _tiny_adapter(tiny_path, run / "adapter")
    (run / "config.yaml").write_text("secret: run config\n")
    (run / "train.log").write_text("secret log line\n")
    outside = Path(shutil.copytree(adapter, root / "outside" / "adapter"))  # a real adapter, outside runs/
    (runs / "link-out").symlink_to(outside.parent, target_is_directory=True)  # inside runs/, points out
    (root / "not-adapter").mkdir()
    spaces = StandInSpaces()
    sys.modules["spaces"] = spaces
    try:
        ctx = AppContext(model=ModelSpec(name_or_path=str(tiny_path), device="cpu"), runs_dir=runs, public=True)
        ctx.registry.get(ctx.model)
        ctx.registry.get(ModelSpec(name_or_path=str(tiny_path)))  # the key Compare uses
        demo = launch(ctx, host="127.0.0.1", port=free_port(), prevent_thread_lock=True)
    finally:
        del sys.modules["spaces"]
    paths = dict(root=root, runs=runs, run=run, adapter=adapter, outside=outside)
    try:
        yield demo, ctx, demo.local_url, spaces, paths
    finally:
        demo.close()


def _client(url):
    return gradio_client.Client(url, verbose=False, httpx_kwargs={"timeout": 300})


def _chat(client, text, adapter="none (base model)", files=(), max_new=4):
    from gradio_client import handle_file

    s = list(FAST)
    s[5] = max_new
    msg = {"text": text, "files": [handle_file(str(f)) for f in files]}
    return client.submit(msg, *s, adapter, True, api_name="/chat")


def _error(job) -> str:
    with pytest.raises(Exception) as ei:
        job.result()
    return str(ei.value)


# ------------------------------------------------------------------ hole 1: adapters
def test_chat_refuses_adapters_outside_runs_with_one_sentence(pub):
    """Hole 1: /chat loaded any folder with an adapter_config.json; its errors echoed the path
    and told whether the folder held an adapter. Now every value that is not an adapter inside
    runs/ (after realpath) gets the same path-free sentence."""
    _, _, url, _, p = pub
    client = _client(url)
    hostile = [str(p["outside"]),                      # a real adapter outside runs/
               str(p["root"] / "not-adapter"),          # a folder without adapter_config.json
               str(p["root"] / "does-not-exist"),       # nothing at all
               "link-out/adapter",                      # a symlink inside runs/ pointing out
               "../outside/adapter",                    # traversal
               "20260101-000000-sft-demo/../../outside/adapter",
               "%2e%2e/outside/adapter",                # URL-encoded traversal (taken literally)
               "~/adapter", "20260101-000000-sft-demo/adapter\x00.json",
               "20260101-000000-sft-demo"]              # a run folder that is no adapter itself
    messages = {_error(_chat(client, "hi", adapter=v)) for v in hostile}
    assert len(messages) == 1, messages
    (msg,) = messages
    assert REFUSED in msg
    assert str(p["root"]) not in msg and "adapter_config" not in msg and "does not exist" not in msg
    # the run's adapter, by its value relative to runs/, works
    chatbot, _, _ = _chat(client, "hi", adapter="20260101-000000-sft-demo/adapter").result()
    assert any(m["role"] == "assistant" for m in chatbot)


def test_compare_and_plan_use_the_same_boundary(pub):
    _, _, url, _, p = pub
    client = _client(url)
    plan, _, _ = client.predict("embedded", str(p["outside"]), "chat", "embedded", "none", "chat", True, True,
                                api_name="/compare_plan")
    assert REFUSED in plan and str(p["root"]) not in plan
    plan, _, _ = client.predict("/etc", "none", "chat", "embedded", "none", "chat", True, True,
                                api_name="/compare_plan")
    assert "loads only these models" in plan and "/etc" not in plan


def test_no_server_path_reaches_the_page_or_the_api(pub):
    """Defect 4 (part): adapter dropdowns listed run paths; now run names, values relative to runs/."""
    demo, _, url, _, p = pub
    raw = Raw(url)
    config = json.dumps(raw.config)
    assert "20260101-000000-sft-demo/adapter" in config  # offered, by its run-relative value
    for secret in (str(p["runs"]), str(p["root"]), str(p["outside"])):
        assert secret not in config
    api = json.dumps(_client(url).view_api(return_format="dict", print_info=False))
    assert str(p["root"]) not in api


# ------------------------------------------------------------------ hole 3 / defect 4: not built
def test_training_data_export_and_runs_endpoints_do_not_exist(pub):
    """Hole 3 / defect 4: sft_preview read any .jsonl, sft_fix wrote files, runs_select returned
    config.yaml and train.log. In public mode those tabs are not built: the endpoints are gone,
    even for a crafted client calling events by index."""
    _, _, url, _, _ = pub
    names = set(_client(url).view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/chat", "/compare", "/estimate"} <= names
    assert not {n for n in names if n.startswith(("/sft", "/rl", "/runs"))}
    raw = Raw(url)
    every = {str(d.get("api_name")) for d in raw.fns()}
    assert not {n for n in every if n.startswith(("sft", "rl_", "runs", "show_preview"))}
    with pytest.raises(ValueError, match="Cannot find a function with `api_name`: /runs_select"):
        _client(url).predict("20260101-000000-sft-demo", api_name="/runs_select")


def test_training_tabs_are_a_note(pub):
    demo, *_ = pub
    texts = " ".join(str(getattr(b, "value", "")) for b in demo.blocks.values())
    assert "Duplicate this Space" in texts and "studio sft" in texts


# ------------------------------------------------------------------ hole 2: memory
def _estimate(client, path, fps=2.0, max_frames=64) -> str:
    """The /estimate line for one attached file (the session state is not an API output)."""
    from gradio_client import handle_file

    return client.predict({"text": "", "files": [handle_file(str(path))]}, fps, max_frames, api_name="/estimate")


def test_estimate_probes_stay_within_300_mb_and_hold_nothing(pub, tmp_path):
    """Hole 2: a 2.3 KB PDF of 14,400 pt pages added 1.28 GB per session and kept it; a
    173-byte PNG declaring 144 MP was accepted. Now the PDF's pages are rendered to their
    share of the turn's budget, the PNG is refused from its header, and nothing is held
    after the request."""
    _, _, url, _, _ = pub
    client = _client(url)
    _estimate(client, big_pages_pdf(tmp_path / "warm.pdf", pages=1, size=200))  # load pypdfium2 etc. once
    pdf = big_pages_pdf(tmp_path / "big.pdf")
    assert pdf.stat().st_size < 3000
    text, peak, held = measure_rss(lambda: _estimate(client, pdf))
    assert "PDF, 20 pages" in text
    assert peak < 300 and held < 40, (peak, held)
    declared = png_of_size(tmp_path / "declared.png", 12000, 12000, rows=False)
    assert declared.stat().st_size < 200
    text, peak, held = measure_rss(lambda: _estimate(client, declared))
    assert "12000×12000 pixels (144 MP, mode RGBA)" in text and "refused to protect memory" in text
    assert peak < 50 and held < 20, (peak, held)


@pytest.mark.slow
def test_three_concurrent_pdf_estimates_stay_within_300_mb(pub, tmp_path):
    """Hole 2: three concurrent /estimate calls ran in parallel (+2.4 GB peak). Now they take
    the process's one decoding slot in turn, so the peak is one request's."""
    _, _, url, _, _ = pub
    _estimate(_client(url), big_pages_pdf(tmp_path / "warm.pdf", pages=1, size=200))
    pdf = big_pages_pdf(tmp_path / "big.pdf")
    clients = [_client(url) for _ in range(3)]

    def three():
        jobs = [c.submit({"text": "", "files": [gradio_client.handle_file(str(pdf))]}, 2.0, 64, api_name="/estimate")
                for c in clients]
        return [j.result() for j in jobs]

    out, peak, held = measure_rss(three)
    assert all("PDF, 20 pages" in o for o in out)
    assert peak < 300 and held < 40, (peak, held)


@pytest.mark.slow
def test_big_png_and_1080p_video_probes_stay_within_300_mb(pub, tmp_path):
    """Hole 2: a 560 KB 144 MP RGBA PNG (+1.15 GB, held) and a 1080p clip at 64 frames (+420 MB,
    held). The PNG is refused from its header; the clip's 64 frames are decoded at the size
    where T×H×W×3 fits the turn's budget."""
    import av
    import numpy as np

    _, _, url, _, _ = pub
    client = _client(url)
    big = png_of_size(tmp_path / "big.png", 12000, 12000, rows=True)
    text, peak, held = measure_rss(lambda: _estimate(client, big))
    assert "refused to protect memory" in text
    assert peak < 300 and held < 40, (peak, held)

    clip = tmp_path / "hd.mp4"
    with av.open(str(clip), "w") as out:
        s = out.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
        s.options = {"crf": "45", "preset": "ultrafast"}
        for i in range(64):
            frame = np.full((1080, 1920, 3), i * 3, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    _estimate(client, clip, fps=1.0, max_frames=2)  # warm the decoder libraries
    text, peak, held = measure_rss(lambda: _estimate(client, clip, fps=8.0, max_frames=64))
    assert "64 frames" in text
    assert peak < 300 and held < 40, (peak, held)


# ------------------------------------------------------------------ defect 5: votes
def _zip_rows(download) -> list[dict]:
    """The rows of a votes.zip the vote handler offered (a DownloadButton update)."""
    path = download["value"] if isinstance(download, dict) else download
    with zipfile.ZipFile(path) as z:
        return [json.loads(x) for x in z.read("votes.jsonl").decode().splitlines()]


def _compare_args(model, text):
    return [{"text": text, "files": []}, model, "none", "chat", model, "none", "chat",
            0.0, 0.9, 0, 16, 0, 8, 7, "", "", True, True]


def test_votes_are_filed_under_a_server_made_id(pub, tmp_path):
    """Defect 5: votes were filed under the first 8 characters of the client's session_hash, so a
    client sending another visitor's prefix wrote into their folder and downloaded their votes.
    Now each visitor's folder is a random id made on the server and kept in session state."""
    _, ctx, url, _, p = pub
    model = str(ctx.model.name_or_path)
    a, b = _client(url), _client(url)
    b.session_hash = a.session_hash[:8] + "attacker"
    a.predict(*_compare_args(model, "question of visitor A"), api_name="/compare")
    a.predict(api_name="/vote_a")
    b.predict(*_compare_args(model, "question of visitor B"), api_name="/compare")
    status, download = b.predict(api_name="/vote_b")
    assert "compare-votes/v-" in status and str(p["runs"]) not in status
    folders = sorted((p["runs"] / "compare-votes").iterdir())
    assert len(folders) == 2 and not any(a.session_hash[:8] in f.name for f in folders)
    assert [r["prompt"] for r in _zip_rows(download)] == ["question of visitor B"]
    # a second vote of B lands in B's own folder again (the id is kept in B's session)
    b.predict(*_compare_args(model, "B again"), api_name="/compare")
    _, download = b.predict(api_name="/vote_tie")
    assert [r["prompt"] for r in _zip_rows(download)] == ["question of visitor B", "B again"]


# ------------------------------------------------------------------ defect 10: host memory
def test_compare_plan_shows_no_host_memory(pub, tiny_path):
    _, ctx, url, _, _ = pub
    plan, _, _ = _client(url).predict(str(tiny_path), "none", "chat", str(tiny_path), "none", "chat", True, True,
                                      api_name="/compare_plan")
    assert "Memory plan" in plan and "peak ≈" in plan
    assert " free" not in plan and "budget" not in plan and "available RAM" not in plan
    from studio.engine.infer import compare as engine

    local = engine.Comparer(ctx.registry).plan(engine.SideSpec(str(tiny_path)), engine.SideSpec(str(tiny_path)))
    assert "GB free" in local.sentence  # the full app still says it


# ------------------------------------------------------------------ defects 6 and 7
class _Gate:
    """A logits processor that holds the first token of a generation until released and
    records, for each token, whether the adapter layers were on."""

    def __init__(self, model):
        self.model, self.started, self.release, self.seen = model, threading.Event(), threading.Event(), []

    def adapter_on(self) -> bool:
        layers = [m for m in self.model.modules() if hasattr(m, "lora_A") and hasattr(m, "disable_adapters")]
        return bool(layers) and not any(m.disable_adapters for m in layers)

    def __call__(self, input_ids, scores):
        self.seen.append(self.adapter_on())
        if not self.started.is_set():
            self.started.set()
            self.release.wait(60)
        return scores


def _gated(ctx):
    from studio.config import ModelSpec

    model, _ = ctx.registry.get(ModelSpec.from_dict({**ctx.model.to_dict(), "adapter": None}))
    gate = _Gate(model)
    ctx.extra["chat_logits_processors"] = lambda: [gate]
    return gate


def test_a_check_cannot_switch_off_a_running_generations_adapter(pub):
    """Defect 6: Chat's pre-check injected the adapter outside the generation lock and left the
    adapter layers off, so a second visitor's check switched off the first one's adapter
    mid-generation. Now the check only reads the adapter; it is switched under the lock."""
    _, ctx, url, _, _ = pub
    gate = _gated(ctx)
    try:
        job = _chat(_client(url), "hi", adapter="20260101-000000-sft-demo/adapter", max_new=6)
        assert gate.started.wait(120)
        raw = Raw(url)  # a second visitor's page: the check before its send, same adapter
        check = raw.fn_index("false")  # the chat tab's first private event is its check
        data = [None] * raw.n_inputs(check)
        data[0] = {"text": "hello", "files": []}
        data[2:12] = FAST
        data[12], data[13] = "20260101-000000-sft-demo/adapter", True
        ok, out = raw.call(check, data)
        assert ok, out
        gate.release.set()
        job.result()
    finally:
        gate.release.set()
        ctx.extra.pop("chat_logits_processors", None)
    assert len(gate.seen) >= 2 and all(gate.seen), gate.seen


def test_one_session_cannot_fill_the_queue(pub):
    """Defect 7: one client filled the whole queue (65 of 90 joins). Now a session may hold
    PER_SESSION places; further joins are refused at once, and other visitors still get in."""
    from studio.ui.fairness import PER_SESSION

    _, ctx, url, _, _ = pub
    gate = _gated(ctx)
    try:
        holder = _chat(_client(url), "hold the GPU", max_new=2)
        assert gate.started.wait(120)
        flood = Raw(url)
        send = flood.fn_index("", api_name="chat")
        data = [{"text": "x", "files": []}, None, *FAST, "none (base model)", True]
        codes = [flood.join(send, data) for _ in range(12)]
        ok = [c for c, _ in codes if c == 200]
        refused = [body for c, body in codes if c == 503]
        assert len(ok) == PER_SESSION and len(refused) == 12 - PER_SESSION
        assert f"already has {PER_SESSION} requests waiting or running" in refused[0]["detail"]
        other = Raw(url)
        assert other.join(send, data)[0] == 200  # another visitor is not locked out
        gate.release.set()
        holder.result()
        assert len(flood.results(PER_SESSION)) == PER_SESSION and len(other.results(1)) == 1
    finally:
        gate.release.set()
        ctx.extra.pop("chat_logits_processors", None)


# ------------------------------------------------------------------ defect 8: ZeroGPU
def test_gpu_handlers_are_wrapped_with_the_computed_duration(pub):
    """Defect 8: studio.ui.zerogpu.gpu had no caller. With ``spaces`` importable the Chat send,
    regenerate and Compare handlers are wrapped, and each call asks for the duration computed
    from its own max new tokens."""
    from studio.ui.zerogpu import estimate_seconds

    demo, ctx, url, spaces, _ = pub
    wrapped = {fn.api_name for fn in demo.fns.values() if getattr(fn.fn, "__studio_zerogpu__", False)}
    assert {"chat", "regenerate", "compare"} <= wrapped
    assert all(inspect.isgeneratorfunction(fn.fn) for fn in demo.fns.values() if fn.api_name in wrapped)
    spaces.calls.clear()
    client = _client(url)
    _chat(client, "hi", max_new=4).result()
    _chat(client, "hi", max_new=60).result()
    assert [c for c in spaces.calls if c[0] == "send"] == [("send", estimate_seconds(4)), ("send", estimate_seconds(60))]
    assert estimate_seconds(4) < estimate_seconds(60)  # the request's own setting, not a fixed number
    client.predict(*_compare_args(str(ctx.model.name_or_path), "q"), api_name="/compare")
    assert ("compare", estimate_seconds(16, sides=2)) in spaces.calls
    assert estimate_seconds(16, sides=2) not in (estimate_seconds(4), estimate_seconds(60))


# ------------------------------------------------------------------ defect 9: upload cache
def test_uploads_are_deleted_and_a_chat_that_lost_one_says_so(pub, tmp_path):
    """Defect 9: no delete_cache, uploads piled up. Now gradio deletes them after a few hours;
    a chat whose attachment is gone asks to be cleared instead of failing."""
    from PIL import Image

    from studio.ui.app import DELETE_CACHE

    demo, _, url, _, _ = pub
    assert demo.delete_cache == DELETE_CACHE and DELETE_CACHE[1] >= 3600
    img = tmp_path / "unique-upload-name.png"
    Image.new("RGB", (56, 56), (0, 0, 255)).save(img)
    client = _client(url)
    _chat(client, "what colour?", files=[img]).result()
    # hole 2: the session keeps the attachment's path, no decoded pixels
    from studio.ui.tabs.chat_state import ChatState

    (st,) = [v for v in demo.state_holder[client.session_hash].state_data.values() if isinstance(v, ChatState)]
    assert [Path(f).name for f in st.rounds[-1].files] == ["unique-upload-name.png"]
    assert all(r.user.media is None for r in st.rounds)
    from gradio.utils import get_upload_folder

    copies = list(Path(get_upload_folder()).rglob("unique-upload-name.png"))
    assert copies
    for c in copies:
        c.unlink()
    msg = _error(_chat(client, "and now?"))
    assert "no longer on the server" in msg and "Clear" in msg


# ------------------------------------------------------------------ hole 3: which mode
@pytest.mark.parametrize("host,env,auth,flag,public", [
    ("127.0.0.1", {}, None, None, False),
    ("0.0.0.0", {}, None, None, True),                 # Docker / LAN without a login
    ("192.168.1.5", {}, None, None, True),
    ("127.0.0.1", {"SPACE_ID": "a/b"}, None, None, True),  # a Space
    ("0.0.0.0", {"SPACE_ID": "a/b"}, [("u", "p")], None, False),  # a login turns the full app on
    ("0.0.0.0", {"STUDIO_PUBLIC": "0"}, None, None, False),
    ("127.0.0.1", {"STUDIO_PUBLIC": "1"}, None, None, True),
    ("0.0.0.0", {}, None, False, False),               # --private
    ("0.0.0.0", {"STUDIO_PUBLIC": "1"}, None, False, False),  # the flag wins over the variable
])
def test_public_by_default_where_strangers_reach_the_app(host, env, auth, flag, public):
    from studio.ui.public import decide

    mode = decide(host, flag=flag, auth=auth, env=env)
    assert mode.public is public
    line = mode.line("http://x")
    assert ("Public mode" in line) is public and ("Full app" in line) is (not public)


def test_private_without_login_on_the_network_warns_and_bad_settings_are_refused():
    from studio.errors import ConfigError
    from studio.ui.public import decide, parse_auth

    assert "Warning: anyone who can reach" in decide("0.0.0.0", flag=False, env={}).line()
    assert "Warning" not in decide("127.0.0.1", flag=False, env={}).line()
    assert decide("127.0.0.1", share=True, env={}).public
    with pytest.raises(ConfigError, match="STUDIO_PUBLIC='maybe'"):
        decide("127.0.0.1", env={"STUDIO_PUBLIC": "maybe"})
    assert parse_auth("ann:pw,bob:p:w") == [("ann", "pw"), ("bob", "p:w")]
    with pytest.raises(ConfigError, match="user:password"):
        parse_auth("nocolon")


def test_studio_ui_on_all_interfaces_starts_public(monkeypatch, capsys, tiny_path):
    """`studio ui --host 0.0.0.0` (the Dockerfile's CMD) starts public without a login and
    says so; with STUDIO_AUTH it is the full app behind a login."""
    from studio import cli
    from studio.commands import ui

    seen = {}

    class Demo:
        local_url = "http://0.0.0.0:7860/"

        def block_thread(self):
            pass

    def fake_launch(ctx, **kw):
        seen["ctx"] = ctx
        return Demo()

    monkeypatch.setattr(ui, "launch", fake_launch)
    monkeypatch.delenv("STUDIO_PUBLIC", raising=False)
    monkeypatch.delenv("STUDIO_AUTH", raising=False)
    monkeypatch.setattr("studio.engine.infer.models.ModelRegistry.preload", lambda self, spec, on_done=None: None)
    assert cli.main(["ui", "--host", "0.0.0.0", "--model", str(tiny_path)]) == 0
    assert seen["ctx"].public and "Public mode on http://0.0.0.0:7860/" in capsys.readouterr().out
    monkeypatch.setenv("STUDIO_AUTH", "ann:long-secret")
    assert cli.main(["ui", "--host", "0.0.0.0", "--model", str(tiny_path)]) == 0
    assert not seen["ctx"].public and seen["ctx"].auth == [("ann", "long-secret")]
    assert "Full app" in capsys.readouterr().out
    from studio.ui.app import launch_kwargs

    assert launch_kwargs(seen["ctx"])["auth"] == [("ann", "long-secret")]


def test_spaces_app_py_starts_public(monkeypatch, capsys, tiny_path):
    """Hole 3: app.py (the Space entry) bound 0.0.0.0 in the full mode unless STUDIO_PUBLIC=1."""
    import runpy

    monkeypatch.setenv("SPACE_ID", "someone/glm4v-studio")
    monkeypatch.setenv("STUDIO_MODEL", str(tiny_path))
    monkeypatch.delenv("STUDIO_PUBLIC", raising=False)
    monkeypatch.delenv("STUDIO_AUTH", raising=False)
    monkeypatch.setattr("studio.engine.infer.models.ModelRegistry.preload", lambda self, spec, on_done=None: None)
    ns = runpy.run_path(str(REPO / "app.py"), run_name="space_app")
    assert ns["ctx"].public
    assert "Public mode" in capsys.readouterr().out and "SPACE_ID is set" in ns["MODE"].line()
    names = set(ns["demo"].get_api_info()["named_endpoints"])
    assert "/chat" in names and not {n for n in names if n.startswith(("/sft", "/runs", "/rl"))}
    assert ns["demo"].delete_cache


# ------------------------------------------------------------------ further hostile requests
def test_a_crafted_client_reaches_no_server_file(pub):
    """A FileData value naming a server file, and the file route asked for the runs folder's
    files: both refused (the app serves only uploads and its example files)."""
    import httpx

    _, _, url, _, p = pub
    raw = Raw(url)
    secret = p["run"] / "config.yaml"
    fd = {"path": str(secret), "orig_name": "x.png", "meta": {"_type": "gradio.FileData"}}
    ok, out = raw.call(raw.fn_index("", api_name="estimate"), [{"text": "", "files": [fd]}, None, 2.0, 32])
    assert not ok and "secret" not in json.dumps(out)
    for target in (secret, p["adapter"] / "adapter_config.json", p["outside"] / "adapter_model.safetensors"):
        r = httpx.get(f"{url}gradio_api/file={target}")
        assert r.status_code in (403, 404) and b"secret" not in r.content and b"lora" not in r.content.lower()


def test_oversized_system_prompt_and_few_shot_are_refused_before_any_work(pub):
    """A 300,000-character system prompt was tokenized (seconds of CPU) before the context
    check; 300,000 characters of few-shot examples became a settings list kept in the
    session. Both are refused from their length first, with what to change."""
    _, ctx, url, _, _ = pub
    client = _client(url)
    s = list(FAST)
    s[0] = "x" * 300_000
    msg = {"text": "hi", "files": []}
    with pytest.raises(Exception, match="The system prompt is 300,000 characters; the limit is 200,000"):
        client.predict(msg, *s, "none (base model)", True, api_name="/chat")
    model = str(ctx.model.name_or_path)
    args = _compare_args(model, "q")
    args[15] = "q => a\n" * 43_000
    with pytest.raises(Exception, match="The few-shot examples are 301,000 characters; the limit is 200,000"):
        client.predict(*args, api_name="/compare")
    args = _compare_args(model, "q")
    args[14] = "y" * 300_000
    with pytest.raises(Exception, match="`system` is 300,000 characters; the limit is 200,000"):
        client.predict(*args, api_name="/compare")


def test_waiting_stop_events_are_bounded():
    """Chat's and Compare's checks (and Chat's regenerate button, an unqueued event) give the
    session's waiting request a stop event. A client inventing a new session id for every
    call grew that table without bound; now the oldest entries make room."""
    from studio.ui.components import MAX_QUEUED_STOPS, queue_stop

    lock, queued = threading.Lock(), {}
    for i in range(MAX_QUEUED_STOPS + 50):
        queue_stop(f"s{i}", queued, lock)
    assert len(queued) == MAX_QUEUED_STOPS and "s0" not in queued and f"s{MAX_QUEUED_STOPS + 49}" in queued
    first = queued["s100"]
    assert queue_stop("s100", queued, lock) is not first and list(queued)[-1] == "s100"  # a new send: a fresh event
