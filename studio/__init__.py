"""GLM-4.1V Studio: try, compare and fine-tune GLM-4.1V-Thinking-style VLMs.

The engine (``studio.engine``) runs headless and never imports gradio; the web UI
(``studio.ui``) is a thin layer over it, and every tab's work is also a CLI command
(``studio.cli``).
"""

__version__ = "0.1.0"
