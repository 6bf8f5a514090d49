"""SFT into the think/answer format (LoRA, QLoRA or full fine-tuning, `finetuning:` in the config): `studio sft --config RUN/config.yaml` or `studio sft --data FILE`.

Two ways in, one code path (:func:`studio.engine.train.sft.train`):

* ``studio sft --config runs/<id>/config.yaml`` runs the config the SFT tab (or an earlier
  call) wrote; the run folder is the folder it sits in. If that folder has a complete
  checkpoint, training continues from it (``resume: true``, the default; ``--no-resume``
  starts over).
* ``studio sft --config sample_data/workshop/sft.yaml`` — a config outside a run folder is
  a *recipe*: each start makes a new run folder (under ``--runs-dir``); the recipe's
  relative paths are read against the recipe's folder.
* ``studio sft --data train.jsonl [--model …] [--max-steps …]`` makes a new run folder
  ``runs/<time>-sft-<name>/``, writes its ``config.yaml`` and runs it. The data may be in any
  format the readers take (GLM-4.1V fine-tune, LLaMA-Factory, ms-swift, TRL, ShareGPT,
  Alpaca …); ``--dataset-info data/dataset_info.json --dataset NAME`` (or ``--data data/
  --dataset NAME``) trains a LLaMA-Factory entry with its column and role names.

SIGINT/SIGTERM (the job panel's Stop, or Ctrl-C) finishes the current step, saves a
checkpoint and exits 0; a second signal interrupts at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_OVERRIDES = {"max_steps": int, "epochs": float, "learning_rate": float, "batch_size": int, "grad_accum": int,
              "max_length": int, "eval_split": float, "save_steps": int, "seed": int, "policy": str}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``studio sft``."""
    p.add_argument("--config", help="run config YAML (written by the SFT tab or an earlier run)")
    p.add_argument("--data", help="dataset file or folder (any format `studio doctor` reads); creates a new run folder")
    p.add_argument("--dataset-info", metavar="FILE",
                   help="LLaMA-Factory dataset_info.json: its entry (--dataset) names the file, columns and roles")
    p.add_argument("--dataset", metavar="NAME", help="the dataset_info.json entry to train on")
    p.add_argument("--model", help="hub id, model folder, or 'embedded' (default)")
    p.add_argument("--runs-dir", default=None, help="where new run folders go (default $STUDIO_RUNS or runs/)")
    p.add_argument("--name", default=None, help="short run name used in the folder name")
    p.add_argument("--resume", action="store_true", default=None, help="continue from the last checkpoint (default)")
    p.add_argument("--no-resume", dest="resume", action="store_false", help="start over, ignoring checkpoints")
    p.add_argument("--dry-run", action="store_true", help="validate and write config.yaml, do not train")
    g = p.add_argument_group("overrides (any SFTRunConfig field)")
    for name, tp in _OVERRIDES.items():
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=tp, default=None)
    g.add_argument("--rank", type=int, default=None, help="LoRA rank")
    g.add_argument("--qlora", action="store_true", default=None, help="4-bit NF4 base (CUDA only)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other field, e.g. --set lora.alpha=32 --set report_to=none")


def build_config(args: argparse.Namespace, stop=None):
    """(SFTRunConfig, run folder) from the flags; creates the run folder for ``--data``.
    ``stop`` (the StopFlag) ends a recipe's first-use data generation early.

    Raises: ConfigError for bad flags or values (the message names the field);
    StoppedError when ``stop`` is set during the data generation.
    """
    from studio.config import apply_set_overrides, read_yaml_mapping
    from studio.engine.train.data.sources import local_or_as_given
    from studio.engine.train.runs import is_recipe, new_run_dir, resolve_recipe_paths
    from studio.engine.train.sft import SFTRunConfig, check_data
    from studio.errors import ConfigError

    if not args.config and not args.data and not args.dataset_info:
        raise ConfigError("Pass --config runs/<id>/config.yaml, or --data FILE to start a new run.")
    data: dict = {}
    recipe = bool(args.config) and is_recipe(args.config)
    if args.config:
        data = read_yaml_mapping(args.config)
        if recipe:  # a recipe starts a new run; its paths are relative to the recipe file
            resolve_recipe_paths(data, args.config)
            data["output_dir"] = ""
    if args.data:
        data["data"] = local_or_as_given(args.data)
    for key in ("dataset_info", "dataset"):
        if getattr(args, key, None):
            data[key] = local_or_as_given(getattr(args, key)) if key == "dataset_info" else getattr(args, key)
    if args.model:
        data.setdefault("model", {})["name_or_path"] = args.model
    if args.name:
        data["name"] = args.name
    for k in _OVERRIDES:
        if getattr(args, k, None) is not None:
            data[k] = getattr(args, k)
    if args.rank is not None:
        data.setdefault("lora", {})["rank"] = args.rank
    if args.qlora:
        data.setdefault("lora", {})["qlora"] = True
    if args.resume is not None:
        data["resume"] = args.resume
    apply_set_overrides(data, args.set)
    cfg = SFTRunConfig.from_dict(data)
    cfg.validate()
    if args.config and not recipe:
        run = Path(args.config).resolve().parent  # the run folder the config sits in (it may have moved)
        cfg.output_dir = str(run)
    else:
        from studio.engine.train.distributed import refuse_new_run_folder

        refuse_new_run_folder("a recipe" if recipe else "--data")
        check_data(cfg, stop=stop)  # a refused (or stopped) start leaves no run folder behind
        runs_dir = args.runs_dir or os.environ.get("STUDIO_RUNS", "runs")
        run = new_run_dir(runs_dir, "sft", cfg.name)
    if not cfg.output_dir:
        cfg.output_dir = str(run)
    return cfg, Path(cfg.output_dir)


class _Tee:
    """Write to a stream and to a log file (``train.log`` when run from a terminal)."""

    def __init__(self, stream, f):
        self.stream, self.f = stream, f

    def write(self, s):
        self.stream.write(s)
        self.f.write(s)
        self.f.flush()
        return len(s)

    def flush(self):
        self.stream.flush()
        self.f.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def run(args: argparse.Namespace) -> int:
    """Validate, write ``config.yaml``, train (or resume); exit 0 when finished or stopped.

    Under a multi-process launch (``studio scale``) every process runs this; only the main
    one writes files and prints (:mod:`studio.engine.train.distributed`).
    """
    from studio.engine.train import distributed
    from studio.engine.train.callbacks import install_graceful_stop
    from studio.errors import StoppedError

    distributed.quiet_replicas()
    flag = install_graceful_stop()  # Stop (SIGINT/SIGTERM) is honoured from here on, data generation included
    try:
        cfg, run_dir = build_config(args, stop=flag)
    except StoppedError as e:
        print(str(e), file=sys.stderr, flush=True)
        return 0
    run_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main_process():
        cfg.to_yaml(run_dir / "config.yaml")
    print(f"run folder: {run_dir}\nrepeat with: studio sft --config {run_dir / 'config.yaml'}", flush=True)
    if args.dry_run:
        return 0
    from studio.engine.train.runs import track_run
    from studio.engine.train.sft import train

    log_file = None
    if os.environ.get("STUDIO_JOB") != "1" and distributed.is_main_process():  # the job wrapper's stdout is train.log
        log_file = open(run_dir / "train.log", "a", encoding="utf-8")
        sys.stdout, sys.stderr = _Tee(sys.stdout, log_file), _Tee(sys.stderr, log_file)
    try:
        with track_run(run_dir, "sft", stop_flag=flag):
            out = train(cfg, run_dir, stop_flag=flag, log_fn=lambda m: print(m, flush=True))
        if not out.get("before_training"):  # else train() said why as the last line
            print(f"{out['status']} at step {out['global_step']}" +
                  (f"; adapter: {out['adapter']}" if out["adapter"] else "") +
                  (f"; model: {out['model']}" if out.get("model") else ""), flush=True)
    finally:
        if log_file:
            sys.stdout, sys.stderr = sys.stdout.stream, sys.stderr.stream
            log_file.close()
    return 0
