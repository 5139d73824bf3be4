"""Which device and precision to run on, with a clear error where the one asked for does not exist.
Every command resolves its device and precision here, once, and passes the results down. Also how
data crosses to a GPU and back without making the host wait for it, and the DataLoader workers that
prepare it: how many, and a watch on them."""

import os
import signal
import threading

import torch

from .errors import UserError
from .settings import PRECISIONS

# MKL's vector maths (torch.tanh, sqrt, exp ... of CPU tensors) sets itself up on its first call. When
# two threads made that call at once (ATen splits a tensor of over 2048 elements between them), about
# one process in a hundred computed the calling thread's share at low accuracy (the pooler's tanh 8e-6
# off, not 2e-8), so a scan's first scores differed between runs of one command. A first call on one
# thread, here, sets it up before any split: 0 such processes in 170 since, against 5 in 528.
torch.tanh(torch.zeros(1))


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto" → the first CUDA GPU if there is one, else the CPU; "cuda" (or "cuda:N") must exist, named
    or given as a torch.device."""
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


def resolve_precision(name: str | None, device: torch.device) -> str:
    """"bf16" or "fp32": "auto" (or None) is bf16 autocast on a GPU and fp32 on a CPU."""
    if name in (None, "auto"):
        return "bf16" if device.type == "cuda" else "fp32"
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}; use {', '.join(PRECISIONS)}")
    return name


def inference_device(device, dtype: str | None) -> tuple[torch.device, str]:
    """The device and precision inference runs on; bf16 only where a GPU runs it."""
    device = resolve_device(device)
    precision = resolve_precision(dtype, device)
    if precision == "bf16" and device.type != "cuda":
        raise UserError("bf16 inference needs a CUDA GPU; use --dtype fp32 on the CPU")
    return device, precision


def batch_tokens(given: int | None, device: torch.device) -> int:
    """Tokens per forward pass of inference: as given, else what fills a GPU or keeps a CPU's caches."""
    return given or (65536 if device.type == "cuda" else 8192)


def padded_batches(sizes: list[int], budget: int):
    """Slices of consecutive items, sorted by size, whose count × largest stays within `budget` (one
    larger alone): what a batch padded to its longest costs (PyTorch's attention on a CPU, the CNN), so
    that short sequences beside a long one are not padded to it."""
    first = 0
    while first < len(sizes):
        last = first + 1
        while last < len(sizes) and (last + 1 - first) * sizes[last] <= budget:
            last += 1
        yield slice(first, last)
        first = last


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context for a resolved precision: bf16 matrix products with fp32 weights, or off."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def inference_weights(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The model to run inference with: its weights converted to bf16 once for bf16 inference, where
    autocast alone would cast every fp32 weight again in every batch (autocast still runs the
    operations it keeps in fp32, LayerNorm and softmax among them, in fp32)."""
    return model.to(torch.bfloat16) if precision == "bf16" else model


def compiled(model: torch.nn.Module, compile: bool) -> torch.nn.Module:
    """The model under torch.compile, or as it is. Shapes are dynamic: packed batches differ in length
    from step to step, and a static compile would recompile for each."""
    return torch.compile(model, dynamic=True) if compile else model


def data_workers(asked: int | None) -> int:
    """DataLoader workers: as asked, or one per core this process may use, less one for the main
    process; torchrun's processes on a node share its cores (LOCAL_WORLD_SIZE)."""
    if asked is not None:
        return asked
    cores = len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(cores - 1, 0)


def watched(loader):
    """The items of a DataLoader iterated on the main thread, its workers watched. A worker killed
    while writing a batch (the OOM killer) leaves half a message in the result pipe, and the main
    thread waits in its read for the rest for good. torch's SIGCHLD handler raises its error once,
    wherever the main thread happens to be: during an import wrapped in `except Exception` (triton's,
    on a first batch) that error is lost, and the read is never interrupted again. Here a thread
    looks at the workers each second, and once one has ended badly it sends SIGCHLD to the main
    thread each second, whose handler raises while the main thread waits for a batch."""
    batches = iter(loader)
    pids = [worker.pid for worker in getattr(batches, "_workers", [])]  # torch's own: none in-process
    if not pids or threading.current_thread() is not threading.main_thread():
        yield from batches
        return
    watch = _Watch(pids, signal.getsignal(signal.SIGCHLD))
    signal.signal(signal.SIGCHLD, watch.handler)
    watch.start()
    try:
        while True:
            watch.waiting = True
            try:
                item = next(batches)
            except StopIteration:
                return
            finally:
                watch.waiting = False
            yield item
    finally:
        watch.done.set()
        # Not where the collector ends a generator its consumer left: signals are the main thread's.
        if threading.current_thread() is threading.main_thread():
            watch.join()
            # A stop (stops._stop) may have put its own handler in since: that one stays. (== as each
            # watch.handler is a new bound method.)
            if signal.getsignal(signal.SIGCHLD) == watch.handler:
                signal.signal(signal.SIGCHLD, watch.previous)


class _Watch(threading.Thread):
    def __init__(self, pids: list[int], previous):
        super().__init__(name="loader-watch", daemon=True)
        self.pids, self.previous, self.main = pids, previous, threading.get_ident()
        self.done, self.waiting, self.ended = threading.Event(), False, None

    def run(self):
        while not self.done.wait(1.0):
            self.ended = self.ended or self._ended_badly()
            if self.ended:
                signal.pthread_kill(self.main, signal.SIGCHLD)

    def _ended_badly(self) -> str | None:
        """torch's words for a worker killed or exited with an error, if one was. WNOWAIT leaves its
        status for torch to read; one that ended well (at the loader's end, also when torch's shutdown
        sends it SIGTERM, on which it exits 0) or was reaped already (torch saw it go) is no sign of
        trouble."""
        for pid in self.pids:
            try:
                ended = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                continue
            if ended is None or (ended.si_code == os.CLD_EXITED and ended.si_status == 0):
                continue
            if ended.si_code == os.CLD_EXITED:
                return f"DataLoader worker (pid {pid}) exited unexpectedly with exit code {ended.si_status}"
            return f"DataLoader worker (pid {pid}) is killed by signal: {signal.strsignal(ended.si_status)}."
        return None

    def handler(self, signum, frame):
        if callable(self.previous):  # torch's, which raises the first time it sees a worker gone
            self.previous(signum, frame)
        if self.ended and self.waiting:
            raise RuntimeError(self.ended)


def upload(array, device) -> torch.Tensor:
    """A host array (numpy or a CPU tensor) on `device`: to a GPU through pinned memory without
    blocking, so the copy queues behind the work already launched instead of waiting for it."""
    tensor = torch.as_tensor(array)
    return tensor.pin_memory().to(device, non_blocking=True) if torch.device(device).type == "cuda" else tensor


def finite(outputs: torch.Tensor) -> torch.Tensor:
    """A model's outputs, refused where any is NaN or infinite (damaged weights, a diverged training):
    they would become scores of 0, no calls, or 'nan' in a table, each with exit status 0."""
    if not torch.isfinite(outputs).all():
        raise UserError("the model's outputs are not finite numbers (NaN or infinity): are its weights intact?")
    return outputs


class Pending:
    """Results of work queued on a device, copied into pinned host memory behind that work:
    `result()` waits for the copy alone and hands the arrays to `finish`. Until then the host is free
    to prepare the next batches or to write the last ones."""

    def __init__(self, tensors: list[torch.Tensor], finish):
        self.finish, self.done = finish, None
        if any(t.is_cuda for t in tensors):
            self.tensors = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
                            for t in tensors]
            self.done = torch.cuda.Event()
            self.done.record()
        else:
            self.tensors = tensors

    def result(self):
        if self.done is not None:
            self.done.synchronize()
        return self.finish([finite(t).numpy() for t in self.tensors])


def overlapped(items, launch, take) -> None:
    """launch(item) for each item in turn (work queued on the device, returning what take needs), and
    take(item, launched) once the next item is launched: the host handles one item's results while
    the device runs the next. Items are taken in order."""
    previous = None
    for item in items:
        launched = launch(item)
        if previous is not None:
            take(*previous)
        previous = item, launched
    if previous is not None:
        take(*previous)
