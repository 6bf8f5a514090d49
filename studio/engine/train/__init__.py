"""Training: datasets and the doctor, SFT, RL (GRPO + curriculum), metrics, run folders, jobs, export, scale.

May import: infer/, workshop/ (recipe data, skill evaluation), rewards/, studio.config, studio.errors, fileperm.
"""
