"""``panseg train``: train Panoptic-DeepLab from a config, on the CPU, one GPU or many (torchrun)."""

from __future__ import annotations

import argparse
import os

from panseg.cli.common import CommandError, add_command
from panseg.cli.storage import add_storage_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "train",
        help="train Panoptic-DeepLab from a YAML config",
        description=(
            "Train Panoptic-DeepLab on DeepLab2 records from a strict YAML config (an unknown\n"
            "key or a wrong type is an error; docs/training.md lists every key). The resolved\n"
            "config, the dataset facts, checkpoints and metrics.jsonl go to --out. --resume\n"
            "continues from the newest checkpoint exactly. Several processes: run it under\n"
            "torchrun (DDP; NCCL on GPUs, gloo on CPU). --config also takes the name of a\n"
            "shipped config (configs/: cityscapes_r52, cityscapes_x65, cityscapes_x65_dsconv,\n"
            "cityscapes_h48, cityscapes_h48_dsconv, coco_x65_dsconv, coco_h48_dsconv,\n"
            "demo_synthetic)."
        ),
        examples=(
            "  panseg train --config configs/cityscapes_r52.yaml \\\n"
            "      --set data.root=/data/records/cityscapes --out runs/r52\n"
            "  torchrun --nproc_per_node 8 -m panseg.cli.main train --config cityscapes_r52 \\\n"
            "      --set data.root=/data/records/cityscapes --out runs/r52\n"
            "  panseg train --out runs/r52 --resume\n"
            "  panseg train --config demo_synthetic --set data.root=/tmp/records "
            "solver.max_iter=50 --out /tmp/run"
        ),
        func=run,
    )
    parser.add_argument("--config", help="YAML config file or shipped config name")
    parser.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="override config keys, e.g. solver.base_lr=0.0005 data.crop_size=[512,1024]",
    )
    parser.add_argument("--out", required=True, help="run directory (local path or URL)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --out")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads per process (0: torch's default)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_storage_arguments(parser)


def resolve_config_path(name: str) -> str:
    """A file path, or the name of a config shipped with panseg."""
    if os.path.exists(name) or "://" in name:
        return name
    from panseg.engine.demo import shipped_config

    try:
        return shipped_config(name)
    except FileNotFoundError as exc:
        raise CommandError(f"--config {name}: no such file; {exc}") from None


def load_train_config(args: argparse.Namespace):
    from panseg import fsio
    from panseg.engine.config import ConfigError, load_config
    from panseg.engine.run import CONFIG_NAME

    path = resolve_config_path(args.config) if args.config else None
    if path is None:
        saved = fsio.join(args.out, CONFIG_NAME)
        if not (args.resume and fsio.exists(saved)):
            raise CommandError("--config is required (unless --resume finds OUT/config.yaml)")
        path = saved
    try:
        cfg = load_config(path, args.overrides)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    if not cfg.data.root:
        raise CommandError(f"{path}: data.root is empty; pass --set data.root=RECORDS_DIR")
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = load_train_config(args)
    import torch

    from panseg.engine import distributed as D
    from panseg.engine.trainer import train

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        info = D.setup(os.environ, args.device)
    except (RuntimeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    try:
        result = train(cfg, args.out, dist_info=info, resume=args.resume,
                       progress=not args.no_progress, log=_main_print(info))
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        D.cleanup()
    if info.is_main:
        print(f"trained {result['step']} steps in {result['seconds']:.0f} s; "
              f"checkpoint {result['checkpoint']}")
        if result["eval"]:
            print("val: " + "  ".join(
                f"{k.upper()} {v:.1f}" for k, v in result["eval"].items() if v is not None))
    return 0


def _main_print(info):
    def log(message: str) -> None:
        if info.is_main:
            print(message, flush=True)

    return log
