"""Hugging Face Spaces entry point (``app_file`` in README.md's front matter).

Settings come from the Space's variables:
  STUDIO_MODEL   hub id or folder of the chat model (default: toy-thinking, else the embedded model)
  STUDIO_PUBLIC  1 = public-Space mode (allow-listed models, no training, capped uploads)
  STUDIO_LANG    en | zh | auto (default: the visitor's browser language)
"""

import os

from studio.runtime import quiet_defaults

quiet_defaults()

from studio.config import ModelSpec  # noqa: E402
from studio.engine.infer.models import default_chat_model  # noqa: E402
from studio.ui.app import build_app, launch_kwargs  # noqa: E402
from studio.ui.context import AppContext  # noqa: E402

ctx = AppContext(
    model=ModelSpec(name_or_path=os.environ.get("STUDIO_MODEL") or default_chat_model()),
    public=os.environ.get("STUDIO_PUBLIC", "0").lower() in ("1", "true", "yes"),
    language=os.environ.get("STUDIO_LANG", "auto"),
)
demo = build_app(ctx)
ctx.registry.preload(ctx.model)  # the page is served meanwhile; the Chat tab shows the progress

if __name__ == "__main__":
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                server_port=int(os.environ.get("PORT", "7860")), **launch_kwargs(ctx))
