"""Panoptic-DeepLab post-processing: panseg vs detectron2's own file (or panseg's spec oracle).

    python benchmarks/postprocess.py --detectron2 /tmp/detectron2      # Cityscapes size
    python benchmarks/postprocess.py --coco --detectron2 /tmp/detectron2
    python benchmarks/postprocess.py --quick                            # smoke run, vs oracle
    python benchmarks/postprocess.py --quick --check 600 --detectron2 /tmp/detectron2

``--detectron2`` takes a detectron2 checkout (or its post_processing.py); the file is loaded with
importlib, so detectron2 itself need not be installed. Without it, panseg is compared with its
slow reference implementation written from the specification. Inputs are seeded synthetic
network outputs (panseg.postprocess.synthetic); both results are checked for bit equality.
"""

from __future__ import annotations

import argparse
import platform
import sys

import torch

from panseg.postprocess.bench import time_postprocessing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--things", type=int, default=8)
    parser.add_argument("--centers", type=int, default=30, help="instances drawn")
    parser.add_argument("--nms-kernel", type=int, default=7)
    parser.add_argument("--top-k", type=int, default=200)
    parser.add_argument("--stuff-area", type=int, default=2048)
    parser.add_argument(
        "--coco",
        action="store_true",
        help="COCO preset: 640x640, 133 classes (80 things), NMS 41, stuff 4096",
    )
    parser.add_argument("--repeat", type=int, default=7, help="panseg runs (median)")
    parser.add_argument("--other-repeat", type=int, default=3, help="detectron2/oracle runs")
    parser.add_argument("--detectron2", metavar="PATH", help="detectron2 checkout")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--check",
        type=int,
        default=0,
        metavar="N",
        help="also compare outputs on N small random cases (ties, masks, float64)",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="256x512, few runs")
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.coco:
        args.height, args.width, args.classes, args.things = 640, 640, 133, 80
        args.nms_kernel, args.stuff_area = 41, 4096
    if args.quick:
        args.height, args.width = args.height // 4, args.width // 4
        args.stuff_area = max(1, args.stuff_area // 16)
        args.repeat, args.other_repeat = 3, 1
    if args.device == "cuda" and args.detectron2 is None:
        parser.error("the oracle runs on CPU only; give --detectron2 to compare on cuda")

    timing = time_postprocessing(
        height=args.height,
        width=args.width,
        num_classes=args.classes,
        num_things=args.things,
        num_instances=args.centers,
        nms_kernel=args.nms_kernel,
        top_k=args.top_k,
        stuff_area=args.stuff_area,
        repeat=args.repeat,
        other_repeat=args.other_repeat,
        detectron2=args.detectron2,
        device=args.device,
        seed=args.seed,
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, device {args.device}"
    )
    print(
        f"input {timing.height}x{timing.width}, {args.classes} classes, "
        f"{timing.num_centers} centers, thing pixels {timing.thing_fraction:.1%}, "
        f"NMS {args.nms_kernel}, top-k {args.top_k}, stuff area {args.stuff_area}"
    )
    print(f"{'':16s} {'wall ms/image':>14s} {'CPU ms/image':>14s}   (medians, interleaved runs)")
    print(
        f"{'panseg':16s} {timing.panseg_ms:14.1f} {timing.panseg_cpu_ms:14.1f}   {args.repeat} runs"
    )
    print(
        f"{timing.other[:16]:16s} {timing.other_ms:14.1f} {timing.other_cpu_ms:14.1f}   "
        f"{args.other_repeat} runs"
    )
    print(f"{'speed-up':16s} {timing.speedup:13.1f}x {timing.cpu_speedup:13.1f}x")
    print(f"identical output {timing.equal}  (compared with {timing.other})")
    ok = timing.equal
    if args.check:
        from panseg.postprocess.bench import check_equality

        mismatches = check_equality(args.detectron2, args.check, seed=args.seed)
        print(f"random small cases: {args.check}, mismatches with {timing.other}: {mismatches}")
        ok = ok and mismatches == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
