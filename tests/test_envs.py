"""The conda environments (the workflow's envs/ and each wrapper's environment.yaml) agree with the
package: every rule names an environment that exists, environments pin exact versions from
conda-forge/bioconda only, every pin satisfies pyproject.toml, the model environment holds everything
the package needs, every third-party module the package imports is a declared dependency, and each
environment pins every package that the code of the steps run in it imports."""

import ast
import importlib.metadata
import re
import sys
import tomllib

import pytest
import yaml
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from dnabert2.cli import COMMANDS

ENVS = ROOT / "envs"
WRAPPERS = ROOT / "wrappers" / "dnabert2"
CONDA_NAME = {"torch": "pytorch", "matplotlib": "matplotlib-base"}
# Not in a rule environment, and why.
OUTSIDE = {"snakemake": "it runs the workflow, around the rule environments",
           "pyyaml": "only the workflow's config checks import it, in Snakemake's own environment",
           "jsonschema": "only the workflow's config checks import it, in Snakemake's own environment",
           "triton": "conda-forge's CUDA builds of pytorch bring it; CPU builds do not use it"}


def conda_name(distribution: str) -> str:
    name = canonicalize_name(distribution)
    return CONDA_NAME.get(name, name)


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {conda_name(r.name): r for r in map(Requirement, project["dependencies"])}


def environments():
    return [*sorted(ENVS.glob("*.yaml")), *sorted(WRAPPERS.glob("*/environment.yaml"))]


def source(module: str):
    path = ROOT / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imported(tree, package: str, whole: bool):
    """Absolute names of what a module imports: all of it, or (whole=False) only what runs when the
    module is imported, not what its functions import when called."""
    nodes = ast.walk(tree) if whole else (n for s in tree.body if not isinstance(s, (ast.FunctionDef, ast.ClassDef))
                                           for n in ast.walk(s))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *filter(None, [node.module])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def third_party(module: str) -> set[str]:
    """The distributions (conda names) whose modules the command's module imports, following this
    package's modules it reaches; a package above a module counts only for what importing it runs."""
    seen, todo, found = set(), [(module, True)], set()
    while todo:
        name, whole = todo.pop()
        path = source(name)
        if (name, whole) in seen or (name, True) in seen or not path.is_file():
            continue
        seen.add((name, whole))
        parts = name.split(".")
        todo += [(".".join(parts[:i]), False) for i in range(1, len(parts))]
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target in imported(ast.parse(path.read_text()), package, whole):
            if target.split(".")[0] == "dnabert2":
                todo.append((target, True))
            elif target.split(".")[0] not in sys.stdlib_module_names:
                found.add(target.split(".")[0])
    distributions = importlib.metadata.packages_distributions()
    return {conda_name(distributions[top][0]) for top in found}


def rule_commands() -> dict[str, set[str]]:
    """Each rule environment → the dnabert2 commands its rules run."""
    commands = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for rule in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            env = re.search(r'^\s+conda:\s*\n\s+"([^"]+)"', rule, flags=re.M)
            for command in re.findall(r"-m dnabert2 (\S+)", rule):
                # the finetune rule runs `finetune`, or `cnn` for the CNN baseline
                named = ["finetune", "cnn"] if command == "{params.command}" else [command]
                commands.setdefault((smk.parent / env[1]).resolve(), set()).update(named)
    return commands


def pins(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    assert env["channels"][-1] == "nodefaults" and set(env["channels"]) <= {"conda-forge", "bioconda", "nodefaults"}
    found = {}
    for entry in env["dependencies"]:
        name, _, version = entry.partition("=")
        assert re.fullmatch(r"[0-9][0-9.]*", version), f"{path.name}: {entry} is not pinned to one version"
        found[canonicalize_name(name)] = version
    return found


@pytest.mark.parametrize("path", environments(), ids=lambda p: str(p.relative_to(ROOT)))
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


def test_every_import_is_a_declared_dependency():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "dnabert2").rglob("*.py")]
    used = set().union(*(third_party(m) for m in modules))
    assert used <= set(requirements()), f"imported but not in pyproject.toml: {sorted(used - set(requirements()))}"


@pytest.mark.parametrize("env", sorted(rule_commands()), ids=lambda p: p.name)
def test_rule_environments_pin_what_their_commands_import(env):
    commands = rule_commands()[env]
    assert commands <= set(COMMANDS), sorted(commands - set(COMMANDS))
    needed = set().union(*(third_party(COMMANDS[c][0]) for c in commands)) - set(OUTSIDE)
    missing = needed - set(pins(env))
    assert not missing, f"{env.name} lacks {sorted(missing)}, imported by {sorted(commands)}"


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS.iterdir()), ids=lambda p: p.name)
def test_wrapper_environments_pin_what_their_step_imports_as_envs_does(wrapper):
    wanted = pins(wrapper / "environment.yaml")
    needed = third_party(COMMANDS[wrapper.name][0]) - set(OUTSIDE)
    assert needed <= set(wanted), f"{wrapper.name}: environment.yaml lacks {sorted(needed - set(wanted))}"
    workflow = {name: version for env in sorted(ENVS.glob("*.yaml")) for name, version in pins(env).items()}
    differ = {name: (v, workflow[name]) for name, v in wanted.items() if workflow.get(name, v) != v}
    assert not differ, f"{wrapper.name}: pins differ from envs/ (wrapper, envs): {differ}"
