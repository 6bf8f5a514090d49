"""The workshop's toy world: synthetic scene tasks, the toy models' own trainer, recipe data, evaluation by generation.

May import: infer/, rewards/, studio.config, studio.errors, studio.engine.fileperm — never train/.
"""
