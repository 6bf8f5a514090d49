"""GRPO with curriculum sampling (RLCS): `studio rl --config RUN/config.yaml` or `studio rl --data FILE`.

Two ways in, one code path:

* ``studio rl --config runs/<id>/config.yaml [--resume]`` runs the config the RL tab (or
  an earlier call) wrote; the run folder is the config's ``output_dir`` (or the folder
  the config sits in).
* ``studio rl --data prompts.jsonl [--model …] [--max-steps …]`` makes a new run folder
  ``runs/<time>-rl-<name>/``, writes its ``config.yaml`` and runs it — so every run can be
  repeated with ``--config``.

SIGINT/SIGTERM (the job panel's Stop) saves a checkpoint and exits 0; ``--resume``
continues from the newest checkpoint with the curriculum state it saved.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``studio rl``."""
    p.add_argument("--config", help="run config YAML (written by the RL tab or an earlier run)")
    p.add_argument("--data", help="RL prompt file or folder (JSONL/JSON/CSV/Parquet: this Studio's, EasyR1's, "
                   "verl's, ms-swift GRPO rows …); creates a new run folder")
    p.add_argument("--dataset-info", metavar="FILE", help="LLaMA-Factory dataset_info.json naming the file (--dataset)")
    p.add_argument("--dataset", metavar="NAME", help="the dataset_info.json entry to read")
    p.add_argument("--eval-data", help="held-out prompt file (default: hold out --eval-fraction of --data)")
    p.add_argument("--model", help="hub id, model folder, 'toy-thinking' (the default, as in the RL tab) or 'embedded'")
    p.add_argument("--adapter", help="start from this (SFT) adapter folder")
    p.add_argument("--runs-dir", default=None, help="where new run folders go (default $STUDIO_RUNS or runs/)")
    p.add_argument("--name", default=None, help="short run name used in the folder name")
    p.add_argument("--resume", action="store_true", help="continue the run in --config from its last checkpoint")
    p.add_argument("--dry-run", action="store_true", help="validate and write config.yaml, do not train")
    g = p.add_argument_group("overrides (any RLRunConfig field)")
    g.add_argument("--curriculum", choices=["rlcs", "uniform"])
    g.add_argument("--reward", help="reward function name(s), comma separated (e.g. accuracy)")
    g.add_argument("--num-generations", type=int, help="G, samples per prompt (>= 2)")
    g.add_argument("--batch-size", type=int, dest="per_device_train_batch_size",
                   help="completions per step (multiple of num_generations)")
    g.add_argument("--max-steps", type=int)
    g.add_argument("--learning-rate", type=float)
    g.add_argument("--thinking-budget", type=int)
    g.add_argument("--answer-budget", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--cold-start", action="store_true", default=None, help="skip offline grading; every p = 0.5")
    g.add_argument("--use-vllm", action="store_true", default=None, help="colocated vLLM generation (CUDA)")
    g.add_argument("--allow-low-format", action="store_true", default=None,
                   help="start even when the model writes the think/answer format too rarely (format_gate: warn)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other field, e.g. --set lora_rank=8 --set rewards.extract=box_or_answer")


_OVERRIDES = ("num_generations", "per_device_train_batch_size", "max_steps", "learning_rate",
              "thinking_budget", "answer_budget", "seed", "use_vllm")


def _apply_overrides(data: dict, args: argparse.Namespace) -> dict:
    from studio.config import apply_set_overrides

    for k in _OVERRIDES:
        v = getattr(args, k, None)
        if v is not None:
            data[k] = v
    if args.curriculum:
        data.setdefault("curriculum", {})["mode"] = args.curriculum
    if args.cold_start:
        data.setdefault("curriculum", {})["cold_start"] = True
    if args.reward:
        data.setdefault("rewards", {})["functions"] = [x.strip() for x in args.reward.split(",") if x.strip()]
    if args.model:
        data.setdefault("model", {})["name_or_path"] = args.model
    if args.adapter:
        data.setdefault("model", {})["adapter"] = args.adapter
    if args.eval_data:
        data["eval_data"] = args.eval_data
    if getattr(args, "allow_low_format", None):
        data["format_gate"] = "warn"
    apply_set_overrides(data, args.set)
    if not (data.get("model") or {}).get("name_or_path"):
        from studio.engine.infer.models import default_chat_model

        data.setdefault("model", {})["name_or_path"] = default_chat_model()  # what the RL tab starts with
    return data


def prepare(args: argparse.Namespace):
    """Resolve (config, run folder) from the flags; writes ``config.yaml`` for new runs.

    Raises:
        InputError / ConfigError: neither or both of --config/--data, bad values.
    """
    from studio.config import read_yaml_mapping
    from studio.engine.train.rl import RLRunConfig
    from studio.engine.train.runs import is_recipe, resolve_recipe_paths
    from studio.errors import InputError

    has_data = bool(args.data or getattr(args, "dataset_info", None))
    if bool(args.config) == has_data:
        raise InputError("Give either --config RUN/config.yaml or --data PROMPTS.jsonl (not both, not neither).")
    if args.resume and not args.config:
        raise InputError("--resume needs --config of the run to continue (runs/<id>/config.yaml).")
    from studio.engine.train.distributed import is_main_process, refuse_new_run_folder

    if args.config and is_recipe(args.config):  # a recipe: a new run folder, paths from the recipe's folder
        refuse_new_run_folder("a recipe")
        if args.resume:
            raise InputError(f"{args.config} is a recipe, not a run folder's config: there is nothing to resume. "
                             f"Drop --resume to start a new run from it.")
        data = resolve_recipe_paths(read_yaml_mapping(args.config), args.config)
        data["output_dir"] = ""
        return _new_run(_apply_overrides(data, args), args, Path(args.config).stem)
    if args.config:
        path = Path(args.config)
        base = RLRunConfig.from_yaml(path).to_dict()
        base["output_dir"] = str(path.resolve().parent)  # the run folder the config sits in (it may have moved)
        data = _apply_overrides(dict(base), args)
        cfg = RLRunConfig.from_dict(data)
        run_dir = Path(cfg.output_dir) if cfg.output_dir else path.parent
        cfg.output_dir = str(run_dir)
        cfg.validate()
        if (data != base or not (run_dir / "config.yaml").is_file()) and is_main_process():
            cfg.to_yaml(run_dir / "config.yaml")
        return cfg, run_dir
    refuse_new_run_folder("--data")
    from studio.engine.train.data.sources import local_or_as_given

    data = {"data": local_or_as_given(args.data) if args.data else ""}
    for key in ("dataset_info", "dataset"):
        if getattr(args, key, None):
            data[key] = local_or_as_given(getattr(args, key)) if key == "dataset_info" else getattr(args, key)
    stem = Path(args.data).stem if args.data else (args.dataset or Path(args.dataset_info).parent.name)
    return _new_run(_apply_overrides(data, args), args, stem)


def _new_run(data: dict, args: argparse.Namespace, default_name: str):
    """Validate ``data`` and its prompts, then make the new run folder with its ``config.yaml``
    (a refused start leaves no folder behind). Returns ``(config, run folder)``."""
    import os

    from studio.engine.train.rl import RLRunConfig, check_data
    from studio.engine.train.runs import new_run_dir

    cfg = RLRunConfig.from_dict(data)
    cfg.validate()
    check_data(cfg)
    runs_dir = Path(args.runs_dir or os.environ.get("STUDIO_RUNS", "runs"))
    run_dir = new_run_dir(runs_dir, "rl", args.name or cfg.name or default_name)
    cfg.output_dir = str(run_dir)
    cfg.to_yaml(run_dir / "config.yaml")
    return cfg, run_dir


def run(args: argparse.Namespace) -> int:
    """Validate, then train in the run folder (graceful stop on SIGINT/SIGTERM). Under a
    multi-process launch only the main process prints and writes the run folder."""
    from studio.engine.train.distributed import quiet_replicas

    quiet_replicas()
    cfg, run_dir = prepare(args)
    print(f"run folder: {run_dir}")
    print(f"repeat with: studio rl --config {run_dir / 'config.yaml'}")
    if args.dry_run:
        return 0
    from studio.engine.train import rl
    from studio.engine.train.callbacks import install_graceful_stop
    from studio.engine.train.runs import track_run

    flag = install_graceful_stop()
    with track_run(run_dir, "rl", stop_flag=flag):
        summary = rl.train(cfg, run_dir, resume=args.resume, stop_flag=flag)
    if summary["adapter"]:
        print(f"adapter: {summary['adapter']}  steps: {summary['steps']}  rollouts: {summary['rollouts']}")
    if summary.get("stop_reason"):
        print(summary["stop_reason"])
    return 0
