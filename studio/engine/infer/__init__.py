"""Inference: model families, the embedded tiny model, loading, media, chat streaming, Compare, memory plans.

May import: studio.config, studio.errors, studio.engine.fileperm and itself — never train/, workshop/ or rewards/.
"""
