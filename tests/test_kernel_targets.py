"""Every configuration the GPU path can launch (each kernel's tuning space and the delta pre-step) compiles
for sm_80 and sm_90, in bf16, fp16 and fp32, at head dims 32, 64 and 128, without spilling registers:
Triton compiles them with the ptxas in its wheel, no GPU needed. Skips where that backend is absent."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip("triton")
from dnabert2.kernels import targets  # noqa: E402

pytestmark = pytest.mark.skipif(targets.available() is not None, reason=str(targets.available()))

COMPILE = """
import json, sys
from dnabert2.kernels import targets
print(json.dumps(targets.compile_all(targets.jobs(), workers=int(sys.argv[1]))))
"""


@pytest.fixture(scope="module")
def compiled():
    # Compiled in a fresh process: with TRITON_INTERPRET set (as the suite sets it without a GPU),
    # @triton.jit makes interpreted functions, which cannot be compiled.
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", COMPILE, str(os.cpu_count() or 1)], capture_output=True, text=True,
                            env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_configuration_compiles_for_both_targets_and_every_dtype(compiled):
    wanted = {(j.kernel, j.arch, j.dtype, j.head_dim) for j in targets.jobs()}
    assert {(r["kernel"], r["arch"], r["dtype"], r["head_dim"]) for r in compiled} == wanted
    assert {r["dtype"] for r in compiled} == {"bf16", "fp16", "fp32"}
    assert {r["constants"]["PRECISION"] for r in compiled if r["dtype"] == "fp32" and r["kernel"] != "delta"} == {"ieee"}
    assert {r["arch"] for r in compiled} == {"sm_80", "sm_90"} and {r["head_dim"] for r in compiled} == {32, 64, 128}


def test_no_configuration_spills_registers(compiled):
    spilling = [f"{r['kernel']} {r['arch']} {r['dtype']} d{r['head_dim']} {r['constants']} warps {r['warps']} "
                f"stages {r['stages']}: {r['stack']} bytes" for r in compiled if r["stack"]]
    assert not spilling, "spills registers:\n" + "\n".join(spilling)


def test_the_attention_kernels_loop_over_blocks(compiled):
    # The SASS reading finds each kernel's key or query loop: left, edge and right regions at least.
    for row in compiled:
        if row["kernel"] != "delta":
            assert len(row["loops"]) >= 3 and min(row["loops"]) > 100, row
