"""SASS instructions per loop iteration of the attention kernels, compiled for sm_80 and sm_90 without a
GPU by the ptxas in Triton's wheel: a proxy for speed, not a measurement of it. For each kernel at each
tuning configuration: registers, spilled bytes, and the instructions of each block loop (per iteration,
and per attention score a thread computes), for the kernels as they are and, with --revision, as they
were at a git revision (e.g. 991b92a, the first kernel), to compare.

    python bench/sass.py [--revision REV] [--head-dim 64] [--dtype bf16]

Runs without TRITON_INTERPRET (compiling needs the real @triton.jit). Record the table in BENCHMARKS.md.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from dnabert2.kernels import alibi_flash, targets  # noqa: E402

KERNEL = "dnabert2/kernels/alibi_flash.py"


def kernels_at(revision: str, folder: Path):
    """The kernel module of a revision, imported from its source, and its first configuration per kernel."""
    path = folder / f"alibi_flash_{revision}.py"
    path.write_text(subprocess.run(["git", "show", f"{revision}:{KERNEL}"], cwd=ROOT, capture_output=True, text=True,
                                   check=True).stdout)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launches(module, head_dim: int, precision: str):
    """(kernel name, kernel, BLOCK_M, BLOCK_N, warps, stages): every tuning config at the precision (a
    revision before fp32 had its own: the one table), or for the first kernel, which had no tuning, its
    one launch for all three."""
    names = {"forward": "_forward", "backward_kv": "_backward_kv", "backward_q": "_backward_q"}
    for name, function in names.items():
        kernel = getattr(module, function)
        if hasattr(module, "CONFIGS"):
            table = module.tuning(precision) if hasattr(module, "tuning") else module.CONFIGS
            for c in table[name][head_dim]:
                yield name, kernel, c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages
        else:
            yield (name, kernel, *module.block_sizes(head_dim), 8 if head_dim == 128 else 4, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", help="also compile the kernels of this git revision")
    parser.add_argument("--head-dim", type=int, default=64, choices=alibi_flash.HEAD_DIMS)
    parser.add_argument("--dtype", default="bf16", choices=targets.DTYPES)
    args = parser.parse_args()
    problem = targets.available()
    if problem:
        sys.exit(f"sass.py: {problem}")
    precision = targets.precision(args.dtype)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        versions = {"now": alibi_flash}
        if args.revision:
            versions[args.revision] = kernels_at(args.revision, folder)
        print(f"SASS per loop iteration (a proxy), head dim {args.head_dim}, {args.dtype}; loops in program order")
        print(f"{'kernels':10} {'kernel':12} {'arch':6} {'blocks':8} {'warps':>5} {'stages':>6} {'regs':>5} {'spill B':>7} "
              f"{'loop instructions':28} {'per score (off-diag / edge)':>28}")
        for version, module in versions.items():
            for name, kernel, block_m, block_n, warps, stages in launches(module, args.head_dim, precision):
                for arch in targets.TARGETS:
                    constants = dict(HEAD_DIM=args.head_dim, BLOCK_M=block_m, BLOCK_N=block_n, PRECISION=precision)
                    c = targets.compile_kernel(kernel, arch, args.dtype, constants, warps, stages, folder)
                    scores = block_m * block_n / (32 * warps)  # scores one thread computes per iteration
                    per_score = f"{min(c.loops) / scores:.1f} / {max(c.loops) / scores:.1f}"
                    print(f"{version:10} {name:12} {arch:6} {f'{block_m}x{block_n}':8} {warps:5} {stages:6} {c.registers:5} "
                          f"{c.stack:7} {' '.join(map(str, c.loops)):28} {per_score:>28}")


if __name__ == "__main__":
    main()
