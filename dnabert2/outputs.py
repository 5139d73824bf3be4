"""Output files appear whole or not at all: everything is written under a temporary name first."""

import os
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process, so a rename onto `path` is atomic."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_output(path, *suffixes: str):
    """Yield a temporary path; when the block succeeds, rename it (and `path`+suffix companions,
    such as ".fai" and ".gzi" indices written beside it) onto `path`. On failure nothing is left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    companions = [(Path(f"{tmp}{s}"), Path(f"{path}{s}")) for s in suffixes]
    try:
        yield tmp
        # Indices first, the main file last: a reader that sees the main file sees its indices too.
        for src, dst in companions:
            os.replace(src, dst)
        os.replace(tmp, path)
    finally:
        for leftover in [tmp, *(src for src, _ in companions)]:
            leftover.unlink(missing_ok=True)
