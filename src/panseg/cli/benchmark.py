"""``panseg benchmark``: network, post-processing and end-to-end speed of Panoptic-DeepLab."""

from __future__ import annotations

import argparse

from panseg.cli.common import CommandError, add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers,
        "benchmark",
        help="time the network, the post-processing (panseg vs detectron2) and end to end",
        description=(
            "Time Panoptic-DeepLab inference per image:\n"
            "  network          forward pass only, in eval mode (what detectron2's\n"
            "                   MODEL.PANOPTIC_DEEPLAB.BENCHMARK_NETWORK_SPEED measures);\n"
            "  post-processing  panseg's get_panoptic_segmentation vs detectron2's own\n"
            "                   post_processing.py (--detectron2 CHECKOUT, loaded with importlib)\n"
            "                   or, without it, panseg's slow spec oracle; outputs are compared\n"
            "                   bit for bit;\n"
            "  end to end       network + argmax of the logits + post-processing.\n"
            "The model has random weights, whose center heatmap has no peaks, so the\n"
            "post-processing runs on seeded synthetic outputs of the same size with --centers\n"
            "instances (panseg.postprocess.synthetic). Times are medians in ms per image."
        ),
        examples=(
            "  panseg benchmark --height 512 --width 1024 --iterations 3\n"
            "  panseg benchmark --detectron2 /tmp/detectron2 --backbone r52\n"
            "  panseg benchmark --no-network --detectron2 /tmp/detectron2 --coco\n"
            "  panseg benchmark --device cuda --detectron2 /tmp/detectron2"
        ),
        func=run,
    )
    parser.add_argument("--backbone", default="r52", help="backbone name (panseg.models)")
    parser.add_argument("--dsconv", action="store_true", help="depthwise-separable convs")
    parser.add_argument(
        "--width-divisor", type=int, default=1, help="shrink the backbone's width (smoke runs)"
    )
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=19, help="semantic classes")
    parser.add_argument("--things", type=int, default=8, help="thing classes among them")
    parser.add_argument("--centers", type=int, default=30, help="instances in the outputs")
    parser.add_argument("--nms-kernel", type=int, default=7)
    parser.add_argument("--top-k", type=int, default=200)
    parser.add_argument("--stuff-area", type=int, default=2048)
    parser.add_argument(
        "--coco",
        action="store_true",
        help="COCO preset: 640x640, 133 classes (80 things), NMS 41, stuff area 4096",
    )
    parser.add_argument("--iterations", type=int, default=5, help="timed runs (median)")
    parser.add_argument(
        "--reference-iterations", type=int, default=1, help="runs of the slow comparison"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--detectron2", metavar="PATH", help="detectron2 checkout to compare")
    parser.add_argument("--no-network", action="store_true", help="post-processing only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")


def _check(args: argparse.Namespace) -> None:
    if args.coco:
        args.height, args.width, args.classes, args.things = 640, 640, 133, 80
        args.nms_kernel, args.stuff_area = 41, 4096
    for name in ("height", "width", "classes", "iterations", "reference_iterations"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be >= 1")
    if not 1 <= args.things < args.classes:
        raise CommandError(f"--things must be in [1, --classes), got {args.things}")
    if args.nms_kernel < 1 or args.nms_kernel % 2 == 0:
        raise CommandError(f"--nms-kernel must be a positive odd number, got {args.nms_kernel}")


def run(args: argparse.Namespace) -> int:
    _check(args)
    import torch

    from panseg.postprocess.bench import median_ms, time_postprocessing
    from panseg.postprocess.panoptic import get_panoptic_segmentation
    from panseg.postprocess.synthetic import synthetic_outputs

    if args.device == "cuda" and not torch.cuda.is_available():
        raise CommandError("--device cuda: torch sees no CUDA device")
    if args.device == "cuda" and args.detectron2 is None:
        raise CommandError("the spec oracle runs on CPU only; give --detectron2 with cuda")
    if args.threads is not None:
        if args.threads < 1:
            raise CommandError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    outputs = synthetic_outputs(
        args.height, args.width, args.classes, args.things, args.centers, seed=args.seed
    )
    try:
        post = time_postprocessing(
            outputs,
            nms_kernel=args.nms_kernel,
            top_k=args.top_k,
            stuff_area=args.stuff_area,
            repeat=args.iterations,
            other_repeat=args.reference_iterations,
            detectron2=args.detectron2,
            device=args.device,
        )
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from exc

    size = f"{args.height}x{args.width}"
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"outputs {size}, {args.classes} classes, {post.num_centers} centers, "
        f"thing pixels {post.thing_fraction:.1%}, NMS {args.nms_kernel}, top-k {args.top_k}"
    )
    rows = [
        ("post-processing panseg", post.panseg_ms, ""),
        (f"post-processing {post.other}", post.other_ms, f"{post.speedup:.1f}x panseg's time"),
    ]
    if not args.no_network:
        from panseg.models import build_model

        try:
            model = build_model(
                backbone=args.backbone,
                num_classes=args.classes,
                use_dsconv=args.dsconv,
                width_divisor=args.width_divisor,
            )
        except ValueError as exc:
            raise CommandError(f"--backbone {args.backbone}: {exc}") from exc
        model = model.to(device).eval()
        gen = torch.Generator().manual_seed(args.seed)
        image = torch.randn(1, 3, args.height, args.width, generator=gen).to(device)
        semantic = outputs.semantic.to(device)
        center = outputs.center.to(device)
        offsets = outputs.offsets.to(device)
        things = outputs.thing_ids

        def network() -> dict:
            with torch.inference_mode():
                return model(image)

        logits = network()["semantic"]

        def argmax() -> torch.Tensor:
            return logits.argmax(dim=1, keepdim=True)

        def end_to_end() -> torch.Tensor:
            with torch.inference_mode():
                model(image)["semantic"].argmax(dim=1, keepdim=True)
                return get_panoptic_segmentation(
                    semantic,
                    center,
                    offsets,
                    things,
                    1000,
                    args.stuff_area,
                    -1,
                    nms_kernel=args.nms_kernel,
                    top_k=args.top_k,
                )[0]

        net_ms = median_ms(network, args.iterations, device, progress="network")
        argmax_ms = median_ms(argmax, args.iterations, device)
        e2e_ms = median_ms(end_to_end, args.iterations, device, progress="end to end")
        other_e2e = net_ms + argmax_ms + post.other_ms
        rows = [
            (f"network {args.backbone} (forward only)", net_ms, ""),
            ("argmax of the logits", argmax_ms, ""),
            *rows,
            ("end to end panseg", e2e_ms, f"post-processing {post.panseg_ms / e2e_ms:.1%}"),
            (
                f"end to end with {post.other}",
                other_e2e,
                f"{other_e2e / e2e_ms:.1f}x panseg's time (sum of medians), "
                f"post-processing {post.other_ms / other_e2e:.1%}",
            ),
        ]
    width = max(len(r[0]) for r in rows)
    for name, ms, note in rows:
        print(f"{name:<{width}}  {ms:10.1f} ms/image  {note}".rstrip())
    print(
        f"post-processing speed-up: {post.speedup:.1f}x wall, {post.cpu_speedup:.1f}x CPU time "
        f"(panseg {post.panseg_cpu_ms:.1f} ms, {post.other} {post.other_cpu_ms:.1f} ms); "
        f"identical output: {post.equal}"
    )
    return 0 if post.equal else 1
