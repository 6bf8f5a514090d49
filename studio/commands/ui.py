"""Start the GLM-4.1V Studio web app (the default command).

The page is served first and the model loads in the background (the Chat tab shows its
progress); a bad ``--model`` still fails at once with one sentence (exit 2), checked
without importing torch.

Public mode (:mod:`studio.ui.public`) is on by default where strangers can reach the app
without a login: ``--host`` other than 127.0.0.1 / localhost, ``--share``, or a Hugging
Face Space (``SPACE_ID``). ``--auth user:password`` (or ``STUDIO_AUTH``, which keeps the
password out of the process list) or ``--private`` turns the full app on deliberately;
the start-up line says which mode is on and why.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from studio.config import ModelSpec
from studio.errors import StudioError


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--load-in-4bit``, ``--dtype``, ``--device`` (shared with ``studio chat``)."""
    p.add_argument("--model", default=None,
                   help="hub id (zai-org/GLM-4.1V-9B-Thinking), a local folder saved with save_pretrained, "
                        "'toy-thinking' / 'toy-base' (the shipped workshop models), or 'embedded' (the tiny "
                        "model built in code, random weights). Default: toy-thinking when shipped, else embedded")
    p.add_argument("--load-in-4bit", action="store_true", help="NF4 weights via bitsandbytes (needs CUDA)")
    p.add_argument("--dtype", default="auto",
                   help="auto (bf16 on capable GPUs, else fp32), bfloat16 or float32; float16 is refused")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="where to run the model")


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """The ModelSpec named by the model flags (validated; ConfigError names the flag's field)."""
    from studio.engine.infer.models import default_chat_model

    spec = ModelSpec(name_or_path=args.model or default_chat_model(), dtype=args.dtype, load_in_4bit=bool(args.load_in_4bit),
                     device=args.device)
    spec.validate()
    return spec


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to your network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    p.add_argument("--runs-dir", default=None, help="folder for training runs (default: ./runs or $STUDIO_RUNS)")
    p.add_argument("--lang", default=os.environ.get("STUDIO_LANG", "auto"), choices=["en", "zh", "auto"],
                   help="UI language: en, zh, or auto = the browser's (the header switch changes it per visitor)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--public", dest="public", action="store_const", const=True, default=None,
                      help="public mode: Chat and Compare only, allow-listed models, adapters from the runs folder, "
                           "capped uploads (default where the app is reachable without a login: a --host other "
                           "than 127.0.0.1, --share, a Hugging Face Space; STUDIO_PUBLIC=1/0 sets it too)")
    mode.add_argument("--private", dest="public", action="store_const", const=False,
                      help="the full app (training, export, data tools, Runs) even where it is reachable without a "
                           "login; prefer --auth")
    p.add_argument("--auth", action="append", default=None, metavar="USER:PASSWORD",
                   help="require a login (repeat for several users); the full app then stays on. "
                        "STUDIO_AUTH=user:password[,user2:password2] does the same without showing the password "
                        "in the process list")


def launch(ctx, host: str = "127.0.0.1", port: int | None = 7860, share: bool = False,
           prevent_thread_lock: bool = False):
    """Build the app for ``ctx`` and start serving it.

    Args:
        ctx: the :class:`~studio.ui.context.AppContext`.
        host, port: where to listen (``port=None``: gradio picks a free one).
        share: open a gradio.live tunnel too.
        prevent_thread_lock: return right after the server starts (tests); otherwise
            block until Ctrl-C.

    Returns:
        The launched ``gr.Blocks`` (its ``local_url`` says where it listens).

    Raises:
        StudioError: the port is taken or the address cannot be bound.
    """
    from studio.ui.app import build_app, launch_kwargs

    demo = build_app(ctx)
    try:
        demo.launch(server_name=host, server_port=port, share=share,
                    prevent_thread_lock=prevent_thread_lock,
                    show_error=True, quiet=prevent_thread_lock, **launch_kwargs(ctx))
    except OSError as e:
        raise StudioError(
            f"Could not listen on {host}:{port} ({str(e).splitlines()[0]}). "
            f"Pass another --port, or stop the program using it."
        ) from None
    return demo


def run(args: argparse.Namespace) -> int:
    """Serve the page first, then load the model in the background.

    A wrong ``--model`` still fails at once (exit 2): :func:`~studio.engine.infer.models.precheck`
    looks at the folder or cache without importing torch. The Chat tab shows what is
    loading and how far it got until the model is ready; this prints one line when it is.
    """
    from studio.engine.infer.models import precheck
    from studio.ui import public
    from studio.ui.context import AppContext

    spec = model_spec(args)
    auth = public.parse_auth(args.auth or os.environ.get("STUDIO_AUTH"))
    mode = public.decide(args.host, flag=args.public, auth=auth, share=args.share)
    ctx = AppContext(model=spec, language=args.lang, public=mode.public, auth=auth or None)
    precheck(spec)  # ModelLoadError → one line, exit 2, before any server starts
    if args.runs_dir:
        ctx.runs_dir = Path(args.runs_dir)
    demo = launch(ctx, host=args.host, port=args.port, share=args.share, prevent_thread_lock=True)
    print(mode.line(demo.local_url), flush=True)
    print(f"Loading model {spec.name_or_path} …", flush=True)

    def done(st) -> None:
        if st.ready:
            print(f"Model ready: {st.name} ({st.seconds:.1f} s)", flush=True)
        else:
            print(f"error: model {st.name} did not load: {st.error}", file=sys.stderr, flush=True)

    ctx.registry.preload(spec, on_done=done)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        demo.close()
    return 0
