"""Panoptic-DeepLab network speed (no post-processing): eager vs TorchScript, per model config.

    python benchmarks/model_speed.py                      # 256×512 input, 5 configs, CPU
    python benchmarks/model_speed.py --size 512 1024 --reps 5 --device cuda
    python benchmarks/model_speed.py --quick              # smoke run: ResNet-18, 65×97

Like detectron2's ``MODEL.PANOPTIC_DEEPLAB.BENCHMARK_NETWORK_SPEED`` this times only the
network (backbone, decoders, heads, ×4 resizing) in eval mode under ``torch.no_grad()``, on a
random normalised batch. The reference is the eager model; the ratio is eager time / traced
TorchScript time measured in the same run on the same input. Weights are random (speed does
not depend on them). Reports the median of ``--reps`` runs after three warm-up runs, and the
parameter count and convolution multiply-accumulates (GMAC, machine-independent) of each
model.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import torch

from panseg.models import ModelConfig, build_model_from_config

CONFIGS = {
    "r52": lambda: ModelConfig.cityscapes("r52"),
    "r52-dsconv": lambda: ModelConfig.cityscapes("r52", use_dsconv=True),
    "x65-dsconv": lambda: ModelConfig.cityscapes("xception65", use_dsconv=True),
    "h48": lambda: ModelConfig.cityscapes("hrnet_w48"),
    "resnet18-dsconv": lambda: ModelConfig.cityscapes("resnet18", use_dsconv=True),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def conv_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of every convolution for one forward pass (machine-independent)."""
    total = 0

    def hook(mod, _inp, out):
        nonlocal total
        kh, kw = mod.kernel_size
        total += out.numel() * (mod.in_channels // mod.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def time_fn(fn, x: torch.Tensor, reps: int, device: str) -> float:
    with torch.no_grad():
        for _ in range(3):  # warm-up (TorchScript's profiling executor optimises after 2 runs)
            fn(x)
        _sync(device)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(x)
            _sync(device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--quick", action="store_true", help="smoke run: resnet18, 65×97, 2 reps")
    args = ap.parse_args()
    if args.quick:
        args.size, args.reps, args.configs = (65, 97), 2, ["resnet18-dsconv"]
    if args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.size
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads {torch.get_num_threads()}, device {args.device}, input {args.batch}×3×{h}×{w}")
    print(f"{'config':<16} {'params':>12} {'conv GMAC':>10} {'eager ms':>10} {'traced ms':>10} "
          f"{'eager/traced':>13}")
    for name in args.configs:
        torch.manual_seed(0)
        model = build_model_from_config(CONFIGS[name]()).eval().to(args.device)
        n_params = sum(p.numel() for p in model.parameters())
        x = torch.randn(args.batch, 3, h, w, device=args.device)
        gmac = conv_macs(model, x) / 1e9
        eager = time_fn(model, x, args.reps, args.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from panseg.models.export import TupleOutputs

            with torch.no_grad():
                traced_mod = torch.jit.trace(TupleOutputs(model).eval(), (x,), check_trace=False)
        traced = time_fn(traced_mod, x, args.reps, args.device)
        print(f"{name:<16} {n_params:>12,} {gmac:>10.1f} {eager * 1e3:>10.1f} {traced * 1e3:>10.1f} "
              f"{eager / traced:>13.2f}")


if __name__ == "__main__":
    main()
