"""Hugging Face Spaces entry point (``app_file`` in README.md's front matter).

A Space (``SPACE_ID`` is set) starts in public mode: Chat and Compare only, allow-listed
models, adapters from the runs folder only, capped uploads (see ``studio/ui/public.py``).
The full app is turned on deliberately: a login (``STUDIO_AUTH``) or ``STUDIO_PUBLIC=0``.

Settings come from the Space's variables and secrets:
  STUDIO_MODEL   hub id or folder of the chat model (default: toy-thinking, else the embedded model)
  STUDIO_PUBLIC  1 = public mode, 0 = the full app (default: public on a Space or a network address without a login)
  STUDIO_AUTH    user:password[,user2:password2] — visitors log in, and the full app is on (set it as a secret)
  STUDIO_LANG    en | zh | auto (default: the visitor's browser language)
"""

import os

from studio.runtime import quiet_defaults

quiet_defaults()

from studio.config import ModelSpec  # noqa: E402
from studio.engine.infer.models import default_chat_model  # noqa: E402
from studio.ui import public  # noqa: E402
from studio.ui.app import build_app, launch_kwargs  # noqa: E402
from studio.ui.context import AppContext  # noqa: E402

HOST = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
AUTH = public.parse_auth(os.environ.get("STUDIO_AUTH"))
MODE = public.decide(HOST, auth=AUTH)

ctx = AppContext(
    model=ModelSpec(name_or_path=os.environ.get("STUDIO_MODEL") or default_chat_model()),
    public=MODE.public,
    auth=AUTH or None,
    language=os.environ.get("STUDIO_LANG", "auto"),
)
demo = build_app(ctx)
print(MODE.line(), flush=True)
ctx.registry.preload(ctx.model)  # the page is served meanwhile; the Chat tab shows the progress

if __name__ == "__main__":
    # gradio's own variable first (its busy-port message names it), then PORT (Docker hosts)
    port = os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or "7860"
    demo.launch(server_name=HOST, server_port=int(port), **launch_kwargs(ctx))
