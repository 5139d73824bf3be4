"""How the code is laid out: modules import only from layers below them (no cycles), functions stay
short, and README's map of the modules names every one of them."""

import ast
import re
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "dnabert2"

# Lowest first. A module may import from its own layer's other entries only where the layer says so
# (same=True), and from any layer below it.
LAYERS = [
    # The package's __init__ is its facade: the version (the command line reads it) and the entry points
    # of DESIGN.md, which import their implementation only when called (imports() leaves those out).
    (["dnabert2"], False),
    (["dnabert2.errors", "dnabert2.stops"], False),
    (["dnabert2.outputs", "dnabert2.options"], False),
    (["dnabert2.tasks.registry"], False),
    (["dnabert2.settings"], False),
    (["dnabert2.devices"], False),
    (["dnabert2.hub", "dnabert2.sources"], False),
    (["dnabert2.sequences"], True),
    (["dnabert2.bed", "dnabert2.bedgraph"], False),
    (["dnabert2.download"], False),
    (["dnabert2.tokenizer"], False),
    (["dnabert2.vocab"], False),
    (["dnabert2.kernels"], True),
    (["dnabert2.attention"], False),
    (["dnabert2.optim"], False),
    (["dnabert2.model"], True),
    (["dnabert2.tasks"], True),
    (["dnabert2.pretrain"], True),
    (["dnabert2.bases"], True),
    (["dnabert2.fetch"], False),
    (["dnabert2.finetune", "dnabert2.baselines"], False),
    (["dnabert2.evaluate"], False),
    (["dnabert2.scan"], True),
    (["dnabert2.predict"], False),
    (["dnabert2.embed"], False),
    (["dnabert2.variants"], False),
    (["dnabert2.plots"], False),
    (["dnabert2.mutagenesis"], False),
    (["dnabert2.workflow_config", "dnabert2.wrappers"], False),
    (["dnabert2.cli"], False),
    (["dnabert2.__main__"], False),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every dnabert2 module `path` imports, at the top or inside a function (the facade: at the top)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    found = set()
    for node in (tree.body if name == "dnabert2" else ast.walk(tree)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dnabert2"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] != "dnabert2":
                continue
            for alias in node.names:  # `from . import plots` imports the module dnabert2.plots
                candidate = f"{base}.{alias.name}"
                found.add(candidate if module_path(candidate) else base)
    return found - {name}


def module_path(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def layer_of(name: str) -> tuple[int, bool]:
    """The layer of the most specific entry naming the module or a package holding it."""
    best = None
    for index, (entries, same) in enumerate(LAYERS):
        for entry in entries:
            if name == entry or name.startswith(entry + "."):
                if best is None or len(entry) > best[2]:
                    best = (index, same, len(entry))
    assert best is not None, f"{name} is in no layer of tests/test_layout.py: place it there and in README"
    return best[0], best[1]


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_import_points_down_the_layers():
    upward = []
    for name, targets in GRAPH.items():
        mine, same = layer_of(name)
        for target in targets:
            theirs, _ = layer_of(target)
            if theirs > mine or (theirs == mine and not same and not name.startswith(target + ".")):
                upward.append(f"{name} imports {target}")
    assert not upward, "imports from a layer above (or beside) the importer: " + "; ".join(sorted(upward))


def test_the_import_graph_has_no_cycle():
    state, cycles = {}, []

    def visit(name, trail):
        state[name] = "open"
        for target in sorted(GRAPH.get(name, ())):
            if state.get(target) == "open":
                cycles.append(" → ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in GRAPH:
        if name not in state:
            visit(name, [name])
    # A package's __init__ re-exporting its own modules is not a cycle of the code.
    cycles = [c for c in cycles if not all(part.startswith(c.split(" → ")[0]) for part in c.split(" → "))]
    assert not cycles, cycles


def test_functions_are_short_or_say_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                around = lines[max(0, node.lineno - 3): node.lineno + 3]
                if not any(re.search(r"#.*long", line, flags=re.I) for line in around):
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_readme_maps_every_module():
    text = (ROOT / "README.md").read_text()
    section = text.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        shown = relative.parent.as_posix() + "/" if path.name == "__init__.py" else relative.as_posix()
        if path.name == "__main__.py" or (path.name == "__init__.py" and relative.parent == Path(".")):
            continue
        # A folder's row may name its modules: `tasks/` (`gue.py`, `split.py`, …).
        rows = [line for line in section.splitlines() if f"`{relative.parent.as_posix()}/`" in line]
        if shown not in section and not any(f"`{path.name}`" in row for row in rows if path.name != "__init__.py"):
            missing.append(shown)
    assert not missing, f"README's 'How the code is laid out' does not mention {missing}"
