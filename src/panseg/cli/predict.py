"""``panseg predict``: a trained run on image files -> COCO panoptic PNG + JSON and overlays."""

from __future__ import annotations

import argparse
import os

from panseg.cli.common import CommandError, add_command
from panseg.cli.storage import add_storage_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "predict",
        help="panoptic predictions of a trained run on images",
        description=(
            "Run a trained model (a panseg train run directory) on image files. Writes\n"
            "OUT/panoptic/NAME.png and OUT/panoptic.json in COCO panoptic format (panopticapi's\n"
            "id = R + 256 G + 256^2 B, category ids of the source dataset) and\n"
            "OUT/overlays/NAME.png (the image beside the colored prediction)."
        ),
        examples=(
            "  panseg predict --run runs/r52 images/*.jpg --out predictions/\n"
            "  panseg predict --run /tmp/panseg-demo/run /tmp/panseg-demo/coco/val2017/*.jpg "
            "--out /tmp/pred"
        ),
        func=run,
    )
    parser.add_argument("--run", required=True, help="run directory of panseg train")
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--checkpoint", help="checkpoint file (default: the run's newest)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override eval.* keys, e.g. eval.stuff_area=512")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--coco-json", metavar="FILE",
        help="take each image's image_id from this COCO JSON's 'images' (by file name), so that "
        "panseg evaluate --gt-json can match the predictions; default: the file name's digits "
        "as an integer (COCO's 000000000139.jpg -> 139), else the file name stem",
    )
    parser.add_argument("--no-overlays", action="store_true", help="skip the overlay PNGs")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_storage_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from panseg import fsio
    from panseg.engine.config import ConfigError
    from panseg.engine.distributed import choose_device
    from panseg.engine.inference import CocoPanopticWriter, Predictor, png_bytes, read_images
    from panseg.engine.run import load_run
    from panseg.viz.overlay import overlay, side_by_side

    try:
        device = choose_device(args.device)
        cfg, info, model, ckpt = load_run(args.run, checkpoint=args.checkpoint, device=device,
                                          overrides=args.overrides)
    except (ConfigError, FileNotFoundError, RuntimeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    import torch

    image_ids = _image_ids(args.coco_json) if args.coco_json else None
    predictor = Predictor(model, info, cfg.eval, device)
    writer = CocoPanopticWriter(args.out, info)
    names: set[str] = set()
    try:
        for path, image in tqdm(read_images(args.images), total=len(args.images),
                                desc="predict", unit="img", disable=args.no_progress):
            name = os.path.splitext(fsio.basename(path))[0]
            if name in names:
                raise CommandError(f"two images are named {name!r}; outputs would collide")
            names.add(name)
            pred = predictor(torch.from_numpy(image).permute(2, 0, 1)[None])[0]
            if image_ids is not None:
                if name not in image_ids:
                    raise CommandError(f"{path}: not among the images of {args.coco_json}")
                image_id = image_ids[name]
            else:
                image_id = int(name) if name.isdigit() else name
            writer.add(name, pred, image_id=image_id)
            if not args.no_overlays:
                fsio.makedirs(fsio.join(args.out, "overlays"))
                fsio.write_bytes_atomic(fsio.join(args.out, "overlays", f"{name}.png"),
                                        png_bytes(side_by_side(image, overlay(image, pred, info))))
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    json_path = writer.close()
    print(f"{len(names)} images, checkpoint step {ckpt['step']}: {json_path}")
    return 0


def _image_ids(path: str) -> dict[str, int | str]:
    """File name stem -> image id, from a COCO JSON's ``images`` list."""
    import json

    from panseg import fsio

    try:
        data = json.loads(fsio.read_bytes(path))
        return {os.path.splitext(im["file_name"])[0]: im["id"] for im in data["images"]}
    except FileNotFoundError:
        raise CommandError(f"--coco-json {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"--coco-json {path}: no 'images' list with file_name/id ({exc})") from None
