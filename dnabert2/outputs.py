"""Output files appear whole or not at all: everything is written under a temporary name first."""

import os
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process, so a rename onto `path` is atomic."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def check_outputs(outputs, inputs=()) -> None:
    """Refuse, before any work, outputs that are directories, that would overwrite an input or each
    other, or whose folder cannot be made; so a command that fails on them fails before writing any."""
    seen = set()
    for out in map(Path, filter(None, outputs)):
        if out.resolve() in seen:
            raise UserError(f"{out}: given for two outputs")
        seen.add(out.resolve())
        if out.is_dir():
            raise UserError(f"{out}: is a directory; give a file name for the output")
        _make_folder(out)
        for source in map(Path, filter(None, inputs)):
            if out.exists() and source.exists() and out.samefile(source):
                raise UserError(f"{out}: the output would overwrite the input {source}")


def _make_folder(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"{path}: cannot create the folder {path.parent}: a file is in the way") from None


@contextmanager
def atomic_output(path, *suffixes: str):
    """Yield a temporary path; when the block succeeds, rename it (and `path`+suffix companions,
    such as ".fai" and ".gzi" indices written beside it) onto `path`. On failure nothing is left."""
    path = Path(path)
    check_outputs([path])
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
