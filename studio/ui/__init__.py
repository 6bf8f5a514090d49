"""Gradio web UI: a thin layer of tabs over ``studio.engine``."""
