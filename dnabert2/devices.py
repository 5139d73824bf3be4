"""Which device to run on, with a clear error where the one asked for does not exist."""

import torch

from .errors import UserError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto" → the first CUDA GPU if there is one, else the CPU; "cuda" (or "cuda:N") must exist."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {str(name)!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            reason = "this PyTorch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UserError(f"device {name} was asked for, but {reason}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {name} was asked for, but only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    elif device.type != "cpu":
        raise UserError(f"device {name} is not supported; use auto, cpu, cuda or cuda:N")
    return device
