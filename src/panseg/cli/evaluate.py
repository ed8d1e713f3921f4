"""``panseg evaluate``: PQ / SQ / RQ equal to panopticapi's ``pq_compute``, from files.

Input modes are mutually exclusive and each is one function taking the parsed arguments and
returning the result dict: today only the COCO panoptic files mode (:func:`evaluate_files`,
selected by ``--gt-json``). A new mode (e.g. ``--run RUN_DIR``) adds its arguments in
:func:`register`, an entry in ``_MODES`` (its selecting option and function) and reuses
:func:`print_pq` / :func:`write_json` for the output.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

from panseg.cli.common import CommandError, add_command
from panseg.cli.storage import add_storage_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "evaluate",
        help="panoptic quality (PQ, SQ, RQ) exactly as panopticapi computes it",
        description=(
            "Evaluate COCO panoptic predictions (JSON + PNG folder) against ground truth with\n"
            "panopticapi's rules (GT areas from the JSON, IoU > 0.5, VOID out of the union,\n"
            "crowd regions excuse predictions): the numbers equal panopticapi's pq_compute and\n"
            "cityscapesScripts' evalPanopticSemanticLabeling. Prints All / Things / Stuff and\n"
            "per-class PQ, SQ, RQ; a group without categories is reported as null (panopticapi\n"
            "crashes). --workers N processes read the PNGs (default 1: no extra processes).\n"
            "--run RUN_DIR evaluates a panseg train run's checkpoint on its val records (PQ and\n"
            "mIoU)."
        ),
        examples=(
            "  panseg evaluate --run runs/r52 --json pq.json\n"
            "  panseg evaluate --gt-json annotations/panoptic_val2017.json \\\n"
            "      --gt-dir annotations/panoptic_val2017 --pred-json pred.json --pred-dir pred/ \\\n"
            "      --workers 4 --json pq.json\n"
            "  panseg evaluate --gt-json gtFine/cityscapes_panoptic_val.json \\\n"
            "      --pred-json results/cityscapes_panoptic_val.json"
        ),
        func=run,
    )
    files = parser.add_argument_group("COCO panoptic files")
    files.add_argument("--gt-json", help="ground-truth COCO panoptic JSON (with categories)")
    files.add_argument("--gt-dir", help="ground-truth PNG folder (default: --gt-json without .json)")
    files.add_argument("--pred-json", help="prediction COCO panoptic JSON")
    files.add_argument("--pred-dir", help="prediction PNG folder (default: --pred-json without .json)")
    runs = parser.add_argument_group("a trained run (panseg train) on its val records")
    runs.add_argument("--run", metavar="RUN_DIR", help="run directory of panseg train")
    runs.add_argument("--checkpoint", help="checkpoint file (default: the run's newest)")
    runs.add_argument("--records", help="records directory (default: the run's data.root)")
    runs.add_argument("--split", help="records split (default: the run's data.val_split)")
    runs.add_argument("--max-images", type=int, default=0, help="first N images only (0: all)")
    runs.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--workers", type=int, default=1, help="processes reading image pairs")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the results here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no per-class table")
    add_storage_arguments(parser)


def evaluate_files(args: argparse.Namespace) -> dict[str, Any]:
    """The COCO panoptic files mode: ``--gt-json/--gt-dir/--pred-json/--pred-dir``."""
    from panseg.evaluation.coco_format import PanopticFormatError, evaluate_coco_panoptic

    if not args.pred_json:
        raise CommandError("--gt-json needs --pred-json (the prediction COCO panoptic JSON)")
    gt_dir = args.gt_dir or _strip_json(args.gt_json)
    pred_dir = args.pred_dir or _strip_json(args.pred_json)
    try:
        result = evaluate_coco_panoptic(
            args.gt_json, gt_dir, args.pred_json, pred_dir,
            workers=args.workers, progress=not args.quiet,
        )
    except PanopticFormatError as exc:
        raise CommandError(str(exc)) from None
    result["inputs"] = {
        "gt_json": args.gt_json, "gt_dir": gt_dir, "pred_json": args.pred_json, "pred_dir": pred_dir,
    }
    return result


def evaluate_run(args: argparse.Namespace) -> dict[str, Any]:
    """The run mode: ``--run RUN_DIR``: the run's checkpoint on its val records (in-memory
    panoptic maps, :class:`~panseg.evaluation.evaluator.PanopticEvaluator`; PQ and mIoU)."""
    from panseg.engine.config import ConfigError
    from panseg.engine.data import build_eval_dataset
    from panseg.engine.distributed import choose_device
    from panseg.engine.inference import Predictor, evaluate
    from panseg.engine.run import load_run

    try:
        device = choose_device(args.device)
        cfg, info, model, ckpt = load_run(args.run, checkpoint=args.checkpoint, device=device)
        records = args.records or cfg.data.root
        split = args.split or cfg.data.val_split
        dataset = build_eval_dataset(records, split)
        if dataset.info != info:
            raise ValueError(f"{records}: its dataset facts differ from the run's dataset.json")
        summary = evaluate(Predictor(model, info, cfg.eval, device), dataset,
                           max_images=args.max_images, progress=not args.quiet)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    result = dict(summary["panoptic"])
    result["semantic"] = summary.get("semantic")
    result["images"] = summary["images"]
    result["inputs"] = {"run": args.run, "checkpoint": ckpt["path"], "step": ckpt["step"],
                        "records": records, "split": split}
    return result


# option that selects the mode -> the mode's function
_MODES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "gt_json": evaluate_files,
    "run": evaluate_run,
}


def run(args: argparse.Namespace) -> int:
    chosen = [name for name in _MODES if getattr(args, name, None)]
    options = ", ".join("--" + name.replace("_", "-") for name in _MODES)
    if not chosen:
        raise CommandError(f"say what to evaluate: {options}")
    if len(chosen) > 1:
        raise CommandError(f"give only one of {options}")
    if args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    result = _MODES[chosen[0]](args)
    print_pq(result, per_class=not args.quiet)
    if result.get("semantic") and result["semantic"].get("miou") is not None:
        print(f"mIoU {100 * result['semantic']['miou']:.1f}")
    if args.json_out:
        write_json(args.json_out, result)
        print(f"results: {args.json_out}")
    return 0


def _strip_json(path: str) -> str:
    return path[: -len(".json")] if path.endswith(".json") else path


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{100 * value:5.1f}"


def print_pq(result: dict[str, Any], per_class: bool = True) -> None:
    """All / Things / Stuff (panopticapi's layout), then one row per category."""
    print(f"{'':10s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} {'N':>5s}")
    print("-" * 38)
    for name in ("All", "Things", "Stuff"):
        g = result[name]
        print(f"{name:10s}| {_pct(g['pq'])}  {_pct(g['sq'])}  {_pct(g['rq'])} {g['n']:5d}")
    if not per_class:
        return
    print()
    print(
        f"{'id':>5s} {'category':24s} {'kind':5s}| {'PQ':>5s}  {'SQ':>5s}  {'RQ':>5s} "
        f"{'TP':>6s} {'FP':>6s} {'FN':>6s}"
    )
    print("-" * 74)
    for cat, row in result["per_class"].items():
        kind = "thing" if row["isthing"] else "stuff"
        counted = row["tp"] + row["fp"] + row["fn"] > 0  # else left out of the means
        print(
            f"{cat:>5} {row['name'][:24]:24s} {kind:5s}| "
            + "  ".join(_pct(row[k] if counted else None) for k in ("pq", "sq", "rq"))
            + f" {row['tp']:6d} {row['fp']:6d} {row['fn']:6d}"
        )


def write_json(path: str, result: dict[str, Any]) -> None:
    """Write ``result`` as JSON through a temporary file renamed into place."""
    if "://" in path:  # an object store: one all-or-nothing upload
        from panseg import fsio

        text = json.dumps(result, indent=2, sort_keys=False) + "\n"
        fsio.write_bytes_atomic(path, text.encode("utf-8"))
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".evaluate-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(result, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
