"""What pip builds from this project, through setuptools' build backend as pip calls it: the source
distribution is the whole checkout (its tests and workflow run from it), the wheel is the package with
its licence, at the version written once, in dnabert2/__init__.py."""

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser

import pytest
from packaging.requirements import Requirement

import dnabert2
from conftest import ROOT


# What a workflow run writes where it runs (.gitignore lists them): litter a source distribution leaves out.
IGNORED_RUN_OUTPUTS = (".snakemake", "results", "resources", "logs", "benchmarks")


def checkout_files() -> list[str]:
    """The files of this checkout: tracked, and new ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The checkout's files, and the sdist and wheel built from a copy of them (build/ and egg-info there, not
    here), with litter a working tree has."""
    files = checkout_files()
    source = tmp_path_factory.mktemp("source")
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    litter = ["bench/carry/model.safetensors", "dnabert2/__pycache__/cli.cpython-311.pyc",  # a working tree's
              *(f"{where}{run}/x" for where in ("", ".test/", "workflow/") for run in IGNORED_RUN_OUTPUTS)]
    for name in litter:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(b"\0")
    out = tmp_path_factory.mktemp("dist")
    for hook in ("build_sdist", "build_wheel"):  # each in a process of its own, as pip calls them
        build = f"import sys; from setuptools import build_meta; build_meta.{hook}(sys.argv[1])"
        result = subprocess.run([sys.executable, "-c", build, str(out)], cwd=source, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    [sdist], [wheel] = out.glob("*.tar.gz"), out.glob("*.whl")
    return files, sdist, wheel


def test_the_source_distribution_holds_the_whole_checkout(built):
    files, sdist, _ = built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert sdist.name == f"dnabert2-{dnabert2.__version__}.tar.gz"
    missing = sorted(set(files) - names)
    assert not missing, f"left out of the sdist: {missing[:20]}"
    assert not [name for name in names if "__pycache__" in name or name.startswith("bench/carry")  # GPU check inputs
                or set(name.split("/")) & set(IGNORED_RUN_OUTPUTS)]


def test_the_wheel_is_the_package_with_its_licence_and_version(built):
    files, _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"dnabert2-{dnabert2.__version__}.dist-info"
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    assert {name for name in names if not name.startswith(info)} == \
        {name for name in files if name.startswith("dnabert2/") and name.endswith(".py")}
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["Version"] == dnabert2.__version__
    assert metadata["License-Expression"] == "Apache-2.0"
    # GPU users bring their own CUDA build of torch: a floor, never a pin.
    torch = next(Requirement(r) for r in metadata.get_all("Requires-Dist") if Requirement(r).name == "torch")
    assert str(torch.specifier).startswith(">=")


def test_an_installed_package_puts_no_checkout_before_a_rule_environments_packages(built, tmp_path):
    """Jobs run the checkout's package through PYTHONPATH; an installed one (site-packages) is on the
    path already, and put first it would shadow a conda environment's own packages."""
    _, _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site-packages")
    show = ("import os, sys; sys.path.insert(0, sys.argv[1]); import dnabert2.wrappers as w; w.use_checkout(); "
            "print(w.CHECKOUT, os.environ['PYTHONPATH'])")
    for path, expected in ((tmp_path / "site-packages", "None /elsewhere"), (ROOT, f"{ROOT} {ROOT}:/elsewhere")):
        result = subprocess.run([sys.executable, "-c", show, str(path)], cwd=tmp_path, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": "/elsewhere"})
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split() == expected.split()
