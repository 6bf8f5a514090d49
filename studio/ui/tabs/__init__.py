"""One module per tab, each exposing ``build(ctx)`` that adds its components to the
current ``gr.Blocks`` inside a ``gr.Tab``."""
