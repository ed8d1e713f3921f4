"""Checkpoints of a training run: written atomically through :mod:`panseg.fsio` (local paths
or URLs), resumed exactly.

Layout in a run directory (detectron2's ``last_checkpoint`` convention)::

    RUN_DIR/checkpoints/model_0000500.pt     one file per saved step
    RUN_DIR/checkpoints/last_checkpoint      the name of the newest complete one

A checkpoint holds ``model`` (unwrapped from DDP), ``optimizer``, ``scheduler``, ``scaler``
(AMP), ``step`` (optimizer steps taken), ``samples`` (samples this rank has consumed, which
fixes the data position), the RNG states of Python, NumPy and torch (CPU, and CUDA when
present), the resolved ``config`` and the ``dataset`` facts. Loading uses
``torch.load(weights_only=True)``: only tensors and plain containers are unpickled.
"""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import torch

from panseg import fsio

LAST = "last_checkpoint"


def checkpoint_dir(run_dir: str) -> str:
    return fsio.join(run_dir, "checkpoints")


def checkpoint_name(step: int) -> str:
    return f"model_{step:07d}.pt"


def rng_state() -> dict[str, Any]:
    """Random states of Python, NumPy and torch, as tensors and plain values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _encode_python_state(random.getstate()),
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_decode_python_state(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _encode_python_state(state: tuple) -> dict[str, Any]:
    version, internal, gauss = state
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss}


def _decode_python_state(data: dict[str, Any]) -> tuple:
    return (data["version"], tuple(int(v) for v in data["internal"].tolist()), data["gauss"])


def save_checkpoint(run_dir: str, state: dict[str, Any], *, keep: int = 0) -> str:
    """Write ``state`` as ``checkpoints/model_{step}.pt`` atomically, then point
    ``last_checkpoint`` at it. ``keep`` > 0 removes all but the newest ``keep`` files.
    Returns the checkpoint path."""
    folder = checkpoint_dir(run_dir)
    fsio.makedirs(folder)
    name = checkpoint_name(int(state["step"]))
    path = fsio.join(folder, name)
    buf = io.BytesIO()
    torch.save(state, buf)
    fsio.write_bytes_atomic(path, buf.getvalue())
    fsio.write_bytes_atomic(fsio.join(folder, LAST), (name + "\n").encode())
    if keep > 0:
        old = [n for n in fsio.listdir(folder) if n.startswith("model_") and n.endswith(".pt")]
        for stale in sorted(old)[:-keep]:
            fsio.remove(fsio.join(folder, stale))
    return path


def last_checkpoint(run_dir: str) -> str | None:
    """Path of the newest complete checkpoint of a run, or None."""
    marker = fsio.join(checkpoint_dir(run_dir), LAST)
    if not fsio.exists(marker):
        return None
    name = fsio.read_bytes(marker).decode().strip()
    path = fsio.join(checkpoint_dir(run_dir), name)
    if not fsio.exists(path):
        raise FileNotFoundError(f"{marker} names {name}, which does not exist")
    return path


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    try:
        data = fsio.read_bytes(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"{path}: not a readable panseg checkpoint ({exc})") from None
