"""Headless engine: models, media, chat, data, rewards, curriculum, training, jobs.

Nothing under this package imports gradio.
"""
