"""Masked-LM pretraining: random genome windows, packed batches, exact resume, DDP."""

from .train import PretrainSettings, pretrain

__all__ = ["PretrainSettings", "pretrain"]
