"""How a command stops when asked to. Ctrl-C (SIGINT) and SIGTERM (a cluster's time limit, Snakemake
stopping a job) unwind the run as KeyboardInterrupt, so temporary files go; later signals are
ignored, as they would cut that cleanup short. A block under `held()` (the renames that put outputs
in place, the removal of a temporary folder) finishes before a stop asked for during it."""

import os
import signal
from contextlib import contextmanager

# The word a stop is reported with; the exit code is 128 + the signal's number, as in a shell.
WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C."""


_held = 0
_pending = None  # the signal that arrived during a held block


def _nothing(signum, frame):
    """A Python handler that does nothing. SIG_IGN would make Python report a signal already pending
    as 'ignored due to race condition', with a traceback."""


def _stop(signum, frame):
    global _pending
    # A SIGTERM sent to the whole job (as SLURM sends it) also kills the DataLoader workers, whose deaths
    # torch's SIGCHLD handler would raise as errors while the run unwinds, held blocks included.
    signal.signal(signal.SIGCHLD, _nothing)
    if _held:
        _pending = _pending or signum
        return
    ignore()
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _as_before_in_child():
    """A forked process (a DataLoader worker) starts with the default handlers, as torch expects: it
    stops its workers with SIGTERM, which ignore() would have made them ignore."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def install() -> None:
    """Stop by unwinding, from now on (in this process; see _as_before_in_child)."""
    for signum in WORDS:
        signal.signal(signum, _stop)
    os.register_at_fork(after_in_child=_as_before_in_child)


def ignore() -> None:
    """Let no stop cut short what comes next (the cleanup a stop starts, the process's exit)."""
    for signum in WORDS:
        signal.signal(signum, _nothing)


def ignore_to_the_end() -> None:
    """Ignore stops outright once a program's work is done: CPython sets a signal with a Python handler
    back to its default action as it shuts down, and a stop then would kill a run that finished (its
    outputs written, its exit code lost). After ignore(), which ran any stop pending, so that none is
    reported as 'ignored due to race condition' (see _nothing). Ignored signals stay ignored in a
    program started after it: for the end of the process only."""
    for signum in WORDS:
        signal.signal(signum, signal.SIG_IGN)


def exit_at_once(prog: str) -> None:
    """Until install(): a stop ends the process at once with its one line. Nothing is written yet (the
    command's modules are being imported), and an import unwound half-way fails in other ways."""
    def handler(signum, frame):
        os.write(2, f"{prog}: {WORDS[signum]}\n".encode())
        os._exit(128 + signum)

    for signum in WORDS:
        signal.signal(signum, handler)


@contextmanager
def held():
    """Run the block whole: a stop asked for during it takes effect when it ends."""
    global _held, _pending
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _pending is not None:
            signum, _pending = _pending, None
            _stop(signum, None)


def stop_behind(error: BaseException) -> int | None:
    """The signal that `error` is, or that was being unwound when it was raised (its __context__: a
    DataLoader worker killed by the same SIGTERM as its process group); None if there is none."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return signal.SIGTERM if isinstance(error, Terminated) else signal.SIGINT
        seen.add(id(error))
        error = error.__context__
    return None
