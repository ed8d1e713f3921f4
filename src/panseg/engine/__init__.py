"""Training and inference: strict configs, optimizer and schedule, checkpoints, DDP, the
trainer, prediction and the demo. ``panseg.engine.config`` is torch-free; the other modules
import torch."""
