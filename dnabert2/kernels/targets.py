"""The attention kernels compiled for a GPU without one: `triton.compile` with a `GPUTarget`, and the
ptxas, cuobjdump and nvdisasm that ship in Triton's wheel, to see what needs no GPU to see: the
registers each configuration takes, whether it spills, and the SASS instructions of its loops (a proxy
for speed, not a measurement of it). Used by tests/test_kernel_targets.py and bench/sass.py."""

import re
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import alibi_flash

TARGETS = {"sm_80": GPUTarget("cuda", 80, 32), "sm_90": GPUTarget("cuda", 90, 32)}
DTYPES = ("bf16", "fp16", "fp32")
TOOLS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
# Pointer arguments that are not of the model's dtype.
POINTER_TYPES = {"LSE": "*fp32", "DELTA": "*fp32", "slopes": "*fp32", "cu_seqlens": "*i32"}
ALIGNED = [["tt.divisibility", 16]]  # as Triton specialises 16-byte aligned pointers and strides


def available() -> str | None:
    """Why kernels cannot be compiled for a GPU here, or None when they can."""
    missing = [tool for tool in ("ptxas", "cuobjdump", "nvdisasm") if not (TOOLS / tool).is_file()]
    return f"Triton's NVIDIA backend lacks {', '.join(missing)} in {TOOLS}" if missing else None


@dataclass(frozen=True)
class Compiled:
    registers: int
    stack: int  # bytes of local memory per thread: spilled registers
    loops: tuple[int, ...]  # SASS instructions in each loop's body, in program order


def source(kernel, dtype: str, constants: dict) -> ASTSource:
    """The kernel's signature as a launch on contiguous, 16-byte aligned tensors would specialise it."""
    signature, attrs = {}, {}
    for index, param in enumerate(kernel.params):
        name = param.name
        if param.is_constexpr:
            signature[name] = "constexpr"
        elif name in POINTER_TYPES or name[0].isupper():
            signature[name] = POINTER_TYPES.get(name, f"*{dtype}")
            attrs[(index,)] = ALIGNED
        elif "scale" in name:
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
            if name.startswith("stride"):
                attrs[(index,)] = ALIGNED
    return ASTSource(kernel, signature, constants, attrs)


def loops(sass: str) -> tuple[int, ...]:
    """Body lengths of the loops in an nvdisasm listing: a branch back to an earlier label closes one."""
    labels, sizes, count = {}, [], 0
    for line in sass.splitlines():
        label = re.match(r"^\s*(\.L_x_\d+):", line)
        if label:
            labels[label[1]] = count
        elif re.match(r"^\s*/\*[0-9a-f]+\*/\s+\S", line):
            count += 1
            target = re.search(r"BRA\s+`?\(?(\.L_x_\d+)", line)
            if target and target[1] in labels and count - labels[target[1]] > 1:
                sizes.append(count - labels[target[1]])
    return tuple(sizes)


def compile_kernel(kernel, arch: str, dtype: str, constants: dict, warps: int, stages: int, folder: Path) -> Compiled:
    compiled = triton.compile(source(kernel, dtype, constants), target=TARGETS[arch],
                              options={"num_warps": warps, "num_stages": stages})
    cubin = folder / f"{kernel.__name__}.cubin"
    cubin.write_bytes(compiled.asm["cubin"])
    usage = subprocess.run([TOOLS / "cuobjdump", "--dump-resource-usage", cubin], capture_output=True, text=True,
                           check=True).stdout
    registers, stack = re.search(r"REG:(\d+) STACK:(\d+)", usage).groups()
    sass = subprocess.run([TOOLS / "nvdisasm", "-c", cubin], capture_output=True, text=True, check=True).stdout
    return Compiled(int(registers), int(stack), loops(sass))


@dataclass(frozen=True)
class Job:
    kernel: str  # a name in alibi_flash.KERNELS, or "delta"
    arch: str
    dtype: str
    head_dim: int
    constants: tuple  # (name, value) pairs
    warps: int
    stages: int


def precision(dtype: str) -> str:
    """The PRECISION the GPU path launches the kernels of a dtype with (alibi_flash._precision)."""
    return "ieee" if dtype == "fp32" else "tf32"


def jobs(archs=tuple(TARGETS), dtypes=DTYPES, head_dims=alibi_flash.HEAD_DIMS) -> list[Job]:
    """Every kernel configuration the GPU path can launch (the tuning space and the delta pre-step)."""
    found = []
    for arch in archs:
        for dtype in dtypes:
            for head_dim in head_dims:
                for name, configs in alibi_flash.tuning(precision(dtype)).items():
                    for config in configs[head_dim]:
                        constants = dict(HEAD_DIM=head_dim, PRECISION=precision(dtype), **config.kwargs)
                        found.append(Job(name, arch, dtype, head_dim, tuple(constants.items()), config.num_warps,
                                         config.num_stages))
                found.append(Job("delta", arch, dtype, head_dim,
                                 (("HEAD_DIM", head_dim), ("BLOCK", alibi_flash.DELTA_BLOCK)), 4, 1))
    return found


def _run(job: Job) -> dict:
    kernel = alibi_flash._delta if job.kernel == "delta" else alibi_flash.KERNELS[job.kernel]
    with tempfile.TemporaryDirectory() as folder:
        compiled = compile_kernel(kernel, job.arch, job.dtype, dict(job.constants), job.warps, job.stages,
                                  Path(folder))
    return {**asdict(job), "constants": dict(job.constants), **asdict(compiled)}


def compile_all(selected: list[Job], workers: int) -> list[dict]:
    """Compile the jobs in worker processes: a row per job, with its registers, stack and loops. The
    kernels must have been defined outside Triton's interpreter (TRITON_INTERPRET unset)."""
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_run, selected))
