"""The workflow's conda environments agree with the package's requirements: every rule names an
environment that exists, environments pin exact versions from conda-forge/bioconda only, every pin
satisfies pyproject.toml, and the model environment holds everything the package needs."""

import re
import tomllib

import pytest
import yaml
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.version import Version

ENVS = ROOT / "envs"
CONDA_NAME = {"torch": "pytorch", "matplotlib": "matplotlib-base", "pyBigWig": "pybigwig"}
# Not in a rule environment, and why.
OUTSIDE = {"snakemake": "it runs the workflow, around the rule environments",
           "triton": "conda-forge's CUDA builds of pytorch bring it; CPU builds do not use it"}


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {CONDA_NAME.get(r.name, r.name): r for r in map(Requirement, project["dependencies"])}


def pins(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    assert env["channels"][-1] == "nodefaults" and set(env["channels"]) <= {"conda-forge", "bioconda", "nodefaults"}
    found = {}
    for entry in env["dependencies"]:
        name, _, version = entry.partition("=")
        assert re.fullmatch(r"[0-9][0-9.]*", version), f"{path.name}: {entry} is not pinned to one version"
        found[name] = version
    return found


@pytest.mark.parametrize("path", sorted(ENVS.glob("*.yaml")), ids=lambda p: p.name)
def test_pins_satisfy_the_package_requirements(path):
    wanted = requirements()
    for name, version in pins(path).items():
        if name in wanted:
            assert Version(version) in wanted[name].specifier, f"{path.name}: {name}={version} vs {wanted[name]}"


def test_model_environment_holds_every_runtime_dependency():
    missing = set(requirements()) - set(pins(ENVS / "model.yaml")) - set(OUTSIDE)
    assert not missing, f"envs/model.yaml lacks {sorted(missing)}"


def test_every_rule_runs_in_an_existing_environment():
    rules = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
    for smk in rules:
        text = smk.read_text()
        named = re.findall(r'^\s+conda:\s*\n\s+"([^"]+)"', text, flags=re.M)
        assert len(named) == len(re.findall(r"^rule \w+:", text, flags=re.M)), f"{smk.name}: a rule without conda:"
        for env in named:
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env} does not exist"
