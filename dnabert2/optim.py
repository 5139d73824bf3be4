"""The learning-rate schedule shared by pretraining and fine-tuning."""

import torch


def schedule(optimizer, steps: int, warmup: float):
    """Linear warm-up to the peak over `warmup` of the steps, then linear decay towards zero: the
    update of step s (0-based) uses lr · (s+1)/warm while warming up, then lr · (steps−s)/(steps−warm+1),
    so the peak is used once and no step has a zero rate."""
    warm = max(1, round(warmup * steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warm if s < warm else (steps - s) / (steps - warm + 1))
