"""The Snakemake wrappers (wrappers/dnabert2/<step>/wrapper.py): each step's named inputs, outputs and
params and the command-line options they become. A wrapper checks what its rule names before the
command starts, so a misnamed or missing input is one line, not a run that fails half-way."""

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .tasks.registry import KINDS

# The checkout this package lies in; None where it is installed (site-packages, which PYTHONPATH must
# not put before a rule environment's own packages).
_ROOT = Path(__file__).resolve().parents[1]
CHECKOUT = _ROOT if (_ROOT / "workflow" / "Snakefile").is_file() else None


@dataclass(frozen=True)
class Step:
    command: str
    inputs: dict[str, str]  # named input → its option ("" for the positional argument)
    outputs: dict[str, str]  # named output → its option; the first is the one every rule names
    needs: tuple[str, ...]  # each entry: alternatives split by " | ", names that go together by "+"
    params: dict[str, str] = field(default_factory=dict)  # named param → its option, besides extra
    beside: dict[str, str] = field(default_factory=dict)  # outputs written beside the first: suffix
    asks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # a side output → the options that write it
    workers: bool = False  # threads beyond the first become DataLoader workers
    many: tuple[str, ...] = ()  # names that take several files (each repeats the option); the rest take one
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # params of a few values: those


MODEL = {"model": "--model"}  # a model folder as input (or a file in it), or a Hub id as a param
SEQUENCES = {"csv": "--csv", "fasta": "--fasta", "bed": "--bed", "genome": "--genome"}

STEPS = {
    "download": Step("download", {"source": ""}, {"fasta": "--out"}, ("source",),
                     params={"source": "", "sha256": "--sha256", "md5": "--md5"},
                     beside={"fai": ".fai", "gzi": ".gzi"}),
    "vocab": Step("vocab", {"genomes": "--genome"}, {"tokenizer": "--out", "report": "--report"}, ("genomes",),
                  many=("genomes",)),
    "pretrain": Step("pretrain", {"genomes": "--genome", "tokenizer": "--tokenizer", "init": "--init"},
                     {"model": "--out"}, ("genomes", "tokenizer | init"), workers=True, many=("genomes",)),
    "tasks": Step("tasks", {"genome": "--genome", "annotation": "--annotation"}, {"task": "--out"},
                  ("kind", "genome", "annotation"), params={"kind": ""}, choices={"kind": tuple(KINDS)}),
    "finetune": Step("finetune", {**MODEL, "task": "--data"}, {"model": "--out"}, ("model", "task"), params=MODEL),
    "evaluate": Step("evaluate", {**MODEL, "task": "--data", "gue": "--gue"}, {"table": "--out"},
                     ("model", "task | gue"), params=MODEL),
    "scan": Step("scan", {**MODEL, "genome": "--fasta", "bam": "--bam", "reference": "--reference",
                          "regions": "--regions"},
                 {"calls": "--out", "summary": "--summary", "bedgraph": "--bedgraph", "bigwig": "--bigwig"},
                 ("model", "genome | bam+reference"), params=MODEL, workers=True),
    "scan-eval": Step("scan-eval", {"calls": "--calls", "annotation": "--annotation", "summary": "--summary",
                                    "held_out": "--held-out", "regions": "--regions"},
                      {"report": "--out"}, ("calls", "annotation")),
    "variants": Step("variants", {**MODEL, "vcf": "--vcf", "genome": "--fasta"}, {"vcf": "--out", "tsv": "--tsv"},
                     ("model", "vcf", "genome"), params=MODEL, beside={"tbi": ".tbi", "csi": ".csi"},
                     asks={"tbi": ("--index", "tbi"), "csi": ("--index", "csi")}),
    "embed": Step("embed", {**MODEL, **SEQUENCES}, {"embeddings": "--out"}, ("model", "csv | fasta | bed+genome"),
                  params=MODEL, beside={"ids": ".ids.txt"}),
    "predict": Step("predict", {**MODEL, **SEQUENCES}, {"table": "--out"}, ("model", "csv | fasta | bed+genome"),
                    params=MODEL),
}


class WrapperError(Exception):
    pass


def _named(items) -> dict:
    """A Snakemake Namedlist's named entries (one file or a list of files each)."""
    return {name: items[name] for name in items.keys()} if items else {}


def _as_list(value) -> list[str]:
    return [str(value)] if isinstance(value, (str, os.PathLike)) else [str(v) for v in value]


def _describe(alternatives: str) -> str:
    return ", or ".join(" and ".join(group.split("+")) for group in alternatives.split(" | "))


def check(step: Step, inputs: dict, outputs: dict, params: dict) -> None:
    """Every name known, everything the step needs given, and side outputs where the command puts them."""
    for kind, given, known in (("input", inputs, step.inputs), ("output", outputs, {**step.outputs, **step.beside}),
                               ("param", params, {**step.params, "extra": ""})):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise WrapperError(f"unknown named {kind} {', '.join(unknown)}; it takes {', '.join(known)}")
    given = {name for name in (*inputs, *params)}
    for need in step.needs:
        if not any(set(group.split("+")) <= given for group in need.split(" | ")):
            raise WrapperError(f"no named input {_describe(need)}")
    for kind, given in (("input", inputs), ("output", outputs), ("param", params)):
        for name, value in given.items():  # (a function, as a rule may give an input, is not known yet)
            if name not in step.many and isinstance(value, (list, tuple)) and len(value) > 1:
                raise WrapperError(f"{kind} {name} names {len(value)} values; the command takes one")
    for name, allowed in step.choices.items():
        if name in params and isinstance(params[name], str) and params[name] not in allowed:
            raise WrapperError(f"param {name} {params[name]!r}: choose one of {', '.join(allowed)}")
    twice = sorted(set(inputs) & set(step.params) & set(params))
    if twice:
        raise WrapperError(f"{', '.join(twice)} given both as input and as param; give one")
    main = next(iter(step.outputs))
    if main not in outputs:
        raise WrapperError(f"no named output {main}")
    _check_extra(step, inputs, params, outputs)
    for name, suffix in step.beside.items():
        if name in outputs and str(outputs[name]) != f"{outputs[main]}{suffix}":
            raise WrapperError(f"output {name} is written beside {main}: it must be {outputs[main]}{suffix}")
    asked = sorted(set(step.asks) & set(outputs))
    if len(asked) > 1:
        raise WrapperError(f"outputs {' and '.join(asked)}: the command writes one of them; name one")


def _check_extra(step: Step, inputs: dict, params: dict, outputs: dict) -> None:
    """Refuse in `extra` an option the wrapper gives itself: from a named input or param (the command
    would take the last of the two), an output's (a file Snakemake would not know of, or not find),
    or --workers (from the rule's threads)."""
    extra = params.get("extra", "")
    if not isinstance(extra, str):  # a function, not known before the job
        return
    given = {option: f"the named input {name}" for name, option in step.inputs.items() if option and name in inputs}
    given |= {option: f"the named param {name}" for name, option in step.params.items() if option and name in params}
    given |= {option: f"the named output {name}" for name, option in step.outputs.items()}
    given |= {step.asks[name][0]: f"the named output {name}" for name in step.asks if name in outputs}
    if step.workers:
        given["--workers"] = "the rule's threads"
    try:
        words = shlex.split(extra)
    except ValueError as error:
        raise WrapperError(f"param extra {extra!r}: {error}") from None
    for flag in (word.split("=", 1)[0] for word in words):
        if flag in given:
            raise WrapperError(f"param extra gives {flag}, which the wrapper gives from {given[flag]}; name it there "
                               "alone")


# A rule's wrapper directive naming one of these: a local "file:" path, a URL or a versioned name.
WRAPPED = re.compile(r"(?:^|[/:])dnabert2/([\w-]+)/?$")


def check_rules(workflow) -> None:
    """Each rule of a workflow that calls one of these wrappers checked as its wrapper checks it when
    the job starts (`check`), but as the workflow is read, before any job runs: wrappers/check.smk,
    included last, calls this. Names are all it needs, so inputs given by functions are checked too."""
    for rule in workflow.rules:
        found = WRAPPED.search(str(rule.wrapper or ""))
        if found is None or found[1] not in STEPS:
            continue
        try:
            check(STEPS[found[1]], _named(rule.input), _named(rule.output), _named(rule.params))
        except WrapperError as error:
            sys.exit(f"rule {rule.name}: dnabert2 {found[1]} wrapper: error: {error}")


def _model_folder(path: str) -> str:
    """A model input may name its folder, or a file in it (its config.json) to stand for the folder."""
    return str(Path(path).parent) if Path(path).is_file() else path


def arguments(step: Step, inputs: dict, outputs: dict, params: dict, threads: int) -> list[str]:
    words = []
    for options, named in ((step.inputs, inputs), (step.params, params), (step.outputs, outputs)):
        for name, value in named.items():
            if name not in options:
                continue
            for path in _as_list(value):
                path = _model_folder(path) if options is step.inputs and name == "model" else path
                words += [options[name], path] if options[name] else [path]
    words += [word for name in step.asks if name in outputs for word in step.asks[name]]
    if step.workers:
        words += ["--workers", str(max(threads - 1, 0))]
    return words


def use_checkout() -> None:
    """Jobs run `python -m dnabert2` from this checkout, also inside a conda environment that holds
    only the third-party packages: they inherit PYTHONPATH (a cluster job re-reads the workflow).
    Prepended to, not set: a host pipeline keeps its own entries."""
    if CHECKOUT is None:
        return
    others = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(None, [str(CHECKOUT), *others])))


def run(snakemake, name: str) -> None:
    """Run a step for the rule Snakemake describes: this checkout's package, the rule's log."""
    from snakemake.shell import shell

    step = STEPS[name]
    inputs, outputs, params = _named(snakemake.input), _named(snakemake.output), _named(snakemake.params)
    try:
        check(step, inputs, outputs, params)
    except WrapperError as error:
        sys.exit(f"dnabert2 {name} wrapper: error: {error}")
    command = [sys.executable, "-m", "dnabert2", step.command,
               *arguments(step, inputs, outputs, params, snakemake.threads)]
    use_checkout()
    extra = params.get("extra", "")
    shell(f"{shlex.join(command)} {extra} {snakemake.log_fmt_shell(stdout=True, stderr=True)}")
