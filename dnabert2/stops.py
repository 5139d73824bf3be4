"""How a command stops when asked to. Ctrl-C (SIGINT), SIGTERM (a cluster's time limit, Snakemake
stopping a job) and SIGHUP (the terminal or ssh session closed) unwind the run as KeyboardInterrupt,
so temporary files go; later signals are ignored, as they would cut that cleanup short. A block under
`held()` (the renames that put outputs in place, the removal of a temporary folder) finishes before a
stop asked for during it."""

import ctypes
import os
import signal
import sys
import threading
from contextlib import contextmanager

# The word a stop is reported with; the exit code is 128 + the signal's number, as in a shell.
WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, unwound like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)  # as its args, so that it copies and pickles
        self.signum = signum


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
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)


_watched = None


def watched() -> list[int]:
    """The signals of WORDS that were not ignored when first asked (as the program started): a run
    under nohup (SIGHUP ignored), or started in the background by a script (SIGINT), keeps ignoring them."""
    global _watched
    if _watched is None:
        _watched = [signum for signum in WORDS if signal.getsignal(signum) is not signal.SIG_IGN]
    return _watched


def _as_before_in_child():
    """A forked process (a DataLoader worker) starts with the default handlers, as torch expects: it
    stops its workers with SIGTERM, which ignore() would have made them ignore. What the program was
    started ignoring, it ignores too."""
    for signum in WORDS:
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, default if signum in watched() else signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _die_with_parent()


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# libc's prctl, looked up before any fork: dlopen in a child forked while another thread held the
# loader's lock would hang.
_prctl = None
_parent = None  # the process forking, when its main thread forks
_installed = False


def _die_with_parent() -> None:
    """End this forked process when its parent dies, however it dies: a DataLoader worker of a process
    SIGKILLed (the OOM killer, a cluster's grace period spent) blocks for ever writing to the pipe no one
    reads, holding its memory, as torch's watchdog only looks while the worker waits for work. Only for
    forks of the main thread: the kernel sends the signal when the forking thread ends."""
    if _prctl is None or _parent is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != _parent:  # it died before the request was made
        os._exit(128 + signal.SIGKILL)


def install() -> None:
    """Stop by unwinding, from now on (in this process; see _as_before_in_child)."""
    global _prctl, _installed
    for signum in watched():
        signal.signal(signum, _stop)
    if _installed:
        return
    _installed = True
    if sys.platform.startswith("linux"):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    os.register_at_fork(before=_note_parent, after_in_child=_as_before_in_child)


def _note_parent() -> None:
    global _parent
    _parent = os.getpid() if threading.current_thread() is threading.main_thread() else None


def ignore() -> None:
    """Let no stop cut short what comes next (the cleanup a stop starts, the process's exit)."""
    for signum in watched():
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

    for signum in watched():
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
            return error.signum if isinstance(error, Terminated) else signal.SIGINT
        seen.add(id(error))
        error = error.__context__
    return None
