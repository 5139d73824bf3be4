"""Training checkpoints: everything a run needs to continue exactly (model, optimiser, scheduler,
every rank's RNG states, the step and the run's settings), written under a temporary name and
renamed, so a run killed while writing leaves the previous checkpoint whole."""

import errno
import os
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..outputs import atomic_output

NAME = re.compile(r"step-(\d{8})\.pt$")


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in step order (temporary files of an interrupted write are not listed)."""
    return sorted(p for p in folder.glob("step-*.pt") if NAME.match(p.name)) if folder.is_dir() else []


def remove_partial(folder: Path) -> None:
    """Temporary files of a checkpoint whose writing was killed (they can be gigabytes)."""
    if folder.is_dir():
        for leftover in folder.glob(".step-*.pt.*.tmp"):
            leftover.unlink()


def save_checkpoint(folder: Path, step: int, state: dict, keep: int) -> Path:
    path = folder / f"step-{step:08d}.pt"
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        torch.save({**state, "step": step}, handle)
        handle.flush()
        # On disk before the rename and before older checkpoints go: after a node's crash the newest
        # could otherwise stand cut short under its name, with none to fall back on.
        os.fsync(handle.fileno())
    for old in checkpoints(folder)[:-keep]:
        old.unlink()
    return path


# What save_checkpoint writes; a file without them is no checkpoint of a run.
KEYS = ("model", "optimizer", "scheduler", "rng", "settings", "step")


class DamagedCheckpoint(UserError):
    """A checkpoint whose bytes hold no run's state (cut short, overwritten): an earlier one may serve,
    or --force may remove it. A file that cannot be read at all (permissions, I/O) is no such case."""


def load_checkpoint(path: Path) -> dict:
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise UserError(f"{path}: cannot read the checkpoint ({error.strerror or error})") from None
    try:
        with handle:
            # torch.load reads a zip without checking its CRCs: bytes overwritten in place loaded as other
            # weights and resumed another run, with exit 0.
            with zipfile.ZipFile(handle) as archive:
                damaged = archive.testzip()
            if damaged is not None:
                raise DamagedCheckpoint(f"{path}: cannot read the checkpoint (its {damaged} fails its checksum)")
            handle.seek(0)
            # Our own files: optimiser and RNG states hold plain Python objects beside tensors.
            state = torch.load(handle, map_location="cpu", weights_only=False)
    except DamagedCheckpoint:
        raise
    except zipfile.BadZipFile:  # torch writes zips: one without its directory was cut short
        raise DamagedCheckpoint(f"{path}: cannot read the checkpoint (cut short, or not a checkpoint)") from None
    except OSError as error:
        # Bytes cut short make torch's reader raise EINVAL; another errno is the storage failing (EIO, a
        # stale NFS handle), which must not pass for damage that --force removes every checkpoint for.
        if error.errno != errno.EINVAL:
            raise UserError(f"{path}: cannot read the checkpoint ({error.strerror or error})") from None
        raise DamagedCheckpoint(f"{path}: cannot read the checkpoint (cut short: {error.strerror})") from None
    except Exception as error:  # damaged bytes unpickle into whatever error they happen to make
        reason = str(error).splitlines()[0].split(". ")[0][:160] if str(error).strip() else type(error).__name__
        raise DamagedCheckpoint(f"{path}: cannot read the checkpoint ({reason})") from None
    if not isinstance(state, dict) or not all(key in state for key in KEYS):
        raise DamagedCheckpoint(f"{path}: not a dnabert2 pretraining checkpoint (it lacks the run's state)")
    return state


def check_same_run(saved: dict, current: dict, path: Path) -> None:
    """A resume must continue the same run: the settings that shape the model and its training must
    match. A setting the checkpoint does not record (it was written before it was) is not compared."""
    differ = sorted(k for k in saved if saved.get(k) != current.get(k))
    if differ:
        detail = "; ".join(f"{k}: {saved.get(k)!r} in the checkpoint, {current.get(k)!r} now" for k in differ[:3])
        raise UserError(f"{path} is a checkpoint of another configuration ({detail})")
