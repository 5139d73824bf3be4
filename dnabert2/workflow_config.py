"""The workflow's config, checked before any job runs, and turned into each rule's command-line options.

The Snakefile calls `check` on the config Snakemake loaded: the files are read again for keys given
twice (YAML and JSON keep the last without a word), the JSON schema (workflow/schemas/, completed
here from the task registry) validates the config and fills its defaults, and the cross-references
(genome names, models, tasks, modes) are checked. Each problem is one ValueError starting "config:",
which Snakemake shows before any job. The `*_options` functions give a rule's options from its
config section through the commands' settings (dnabert2/settings.py), so each option is spelled
once. Imports nothing heavy: Snakemake's own environment runs this.
"""

import ast
import copy
import json
import os
import re
from pathlib import Path

import yaml

from .errors import UserError, first_names
from .hub import ADAPTER_FILES, WEIGHT_FILES, find_weights, hub_id, shadowing_folder
from .options import as_arguments
from .sequences.alignments import index_names
from .sequences.fasta import fai_lengths
from .sequences.inputs import read_bed_regions
from .settings import (CNN_OPTIONS, INFO_KEY, FinetuneSettings, JunctionsSettings, PretrainSettings,
                       ScanEvalSettings, ScanSettings, TaskSettings, VariantSettings, VocabSettings, window_over_batch)
from .sources import local_path
from .tasks.description import is_dense
from .tasks.registry import KINDS, TOLERANCES, label_position

# Keys renamed since a release, and what they are called now.
RENAMED = {("pretrain", "max_tokens"): "batch_tokens"}


CNN = "cnn"  # a finetune entry's model: the SpliceAI-style baseline (`dnabert2 cnn`)


def check(config: dict, schema_path, files=()) -> None:
    """Every check, in the order a user wants to hear about problems: how the files are written, then
    what the schema says, then how the sections refer to each other and to the genomes' contigs. Fills the
    schema's defaults in."""
    for path in files:
        refuse_repeated_keys(path)
    refuse_renamed_keys(config)
    given = copy.deepcopy(config)  # the keys as written: validation fills the defaults in
    validate(config, schema(schema_path))
    refuse_keys_without_effect(given)
    check_references(config)
    refuse_unused_site_keys(given, config)
    check_contigs(config)


class _RefuseDuplicates(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with the same key twice, naming the file and line."""

    path = None


def _given_twice(key, where) -> ValueError:
    return ValueError(f"config: {key!r} is given twice under the same key ({where}); "
                      "name each genome, task and run once")


def _mapping(loader, node):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden here
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise _given_twice(key, f"{loader.path}, line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node)


_RefuseDuplicates.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def refuse_repeated_keys(path) -> None:
    """A config file (JSON or YAML) with a key given twice in one mapping is refused."""
    text = Path(path).read_text()

    def pairs(items):
        keys = [k for k, _ in items]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise _given_twice(key, path)
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=pairs)
        return
    except json.JSONDecodeError:
        pass  # YAML, then
    loader = type("Loader", (_RefuseDuplicates,), {"path": path})
    yaml.load(text, Loader=loader)


def refuse_renamed_keys(config: dict) -> None:
    for (section, old), new in RENAMED.items():
        for name, settings in (config.get(section) or {}).items():
            if isinstance(settings, dict) and old in settings:
                raise ValueError(f"config: {section}.{name}.{old} is now called {new}")


# What scan-eval takes from a scan's config; the rest it reads from the scan's summary.
EVALUATION_KEYS = [f"{name}_tolerance" for name in TOLERANCES] + ["min_intron", "biotypes", "tags"]
# Keys that act only with another setting, checked on the config as written (once validated, a key
# left out cannot be told from one given): (section, key, what it needs, the test of it).
ONLY_WITH = [
    ("tasks", "core", "dense: true", lambda s: s.get("dense") is True),
    ("tasks", "flank", "dense: true", lambda s: s.get("dense") is True),
    ("tasks", "empty_rate", "dense: true", lambda s: s.get("dense") is True),
    ("tasks", "negatives", "a task of windows (not dense: true)", lambda s: s.get("dense") is not True),
    ("tasks", "min_intron", "a task of splice sites", lambda s: s.get("kind") not in KINDS or KINDS[s["kind"]].splices),
    ("scan", "min_depth", "mode: covered", lambda s: s.get("mode") == "covered"),
    ("scan", "min_reads", "mode: reads", lambda s: s.get("mode") == "reads"),
    *(("scan", key, "a bam (mode: reads or covered)", lambda s: s.get("mode", "fasta") != "fasta")
      for key in ("min_mapq", "bam_index")),
    ("scan", "min_distance", "peak calling (not merge: true)", lambda s: s.get("merge") is not True),
    *(("scan", key, "evaluate: true", lambda s: s.get("evaluate") is True) for key in EVALUATION_KEYS),
    *(("pretrain", key, "heldout_contigs", lambda s: bool(s.get("heldout_contigs")))
      for key in ("eval_every", "eval_windows")),
]


def refuse_keys_without_effect(config: dict) -> None:
    """A key that would be ignored is refused: one forgotten `dense: true` would otherwise build a task
    of windows without a word."""
    for section, key, needs, applies in ONLY_WITH:
        for name, settings in (config.get(section) or {}).items():
            if isinstance(settings, dict) and key in settings and not applies(settings):
                raise ValueError(f"config: {section}.{name}.{key} acts only with {needs}")
    if config.get("vocab") and not config.get("pretrain"):
        raise ValueError("config: vocab acts only with pretrain runs: it learns the tokenizer they train with")


def refuse_unused_site_keys(given: dict, config: dict) -> None:
    """A scan-eval tolerance (as `given`, before the defaults) of a kind of site the scan's model calls
    none of (tss_tolerance on a splice scan), or a min_intron where it calls no splice site, where the
    config names the task the model learnt: scan-eval would refuse it, after the scan."""
    for name, settings in (given.get("scan") or {}).items():
        task = scan_task(config, name)
        if task is None:
            continue
        kind = config["tasks"][task]["kind"]
        used = {site.tolerance for site in KINDS[kind].sites}
        for site in TOLERANCES:
            if f"{site}_tolerance" in settings and site not in used:
                raise ValueError(f"config: scan.{name}.{site}_tolerance: its model calls {kind} sites, "
                                 f"matched with {' and '.join(f'{u}_tolerance' for u in sorted(used))}")
        if "min_intron" in settings and not KINDS[kind].splices:
            raise ValueError(f"config: scan.{name}.min_intron: its model calls {kind} sites, not splice sites, "
                             "which min_intron decides")


def check_version(source) -> None:
    """A workflow read from a remote source runs the installed package: the version it was written for,
    read from the __version__ of the package beside it (where the version is written, once), or from the
    pyproject.toml that a workflow of before that names."""
    import tomllib

    from . import __version__

    try:
        text = Path(source).read_text()
        if Path(source).suffix == ".toml":
            wanted = tomllib.loads(text).get("project", {}).get("version")
        else:
            wanted = next((ast.literal_eval(node.value) for node in ast.parse(text).body if isinstance(node, ast.Assign)
                           and [getattr(t, "id", None) for t in node.targets] == ["__version__"]), None)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as error:  # TOMLDecodeError is a ValueError
        raise ValueError(f"{source}: cannot read the workflow's version ({error.__class__.__name__})") from None
    if not isinstance(wanted, str):
        raise ValueError(f"{source}: no version written there (a plain __version__ = \"...\")")
    if wanted != __version__:
        raise ValueError(f"this workflow is dnabert2 {wanted}, but the installed dnabert2 package is {__version__}: "
                         f"install dnabert2 {wanted} (pip install a checkout of the workflow's tag) beside Snakemake and in the "
                         "rules' environments")


def schema(path) -> dict:
    """The config schema, with what the task registry defines filled in (the task kinds, and one
    scan-eval tolerance per kind of site matching) and the rule for variants' INFO keys."""
    loaded = yaml.safe_load(Path(path).read_text())
    kind = loaded["properties"]["tasks"]["additionalProperties"]["properties"]["kind"]
    kind["enum"] = list(KINDS)
    kind["description"] = "; ".join(f"{k.name}: {k.summary}" for k in KINDS.values())
    scan = loaded["properties"]["scan"]["additionalProperties"]["properties"]
    for name, (default, description) in TOLERANCES.items():
        scan[f"{name}_tolerance"] = {"description": f"{description} (scan-eval)", "type": "integer", "minimum": 0,
                                     "default": default}
    info_key = loaded["properties"]["variants"]["additionalProperties"]["properties"]["info_key"]
    info_key.update(pattern=f"^{INFO_KEY.pattern}$", **{"not": {"enum": ["END"]}})
    return loaded


def validate(config: dict, schema: dict) -> None:
    """Validate against the schema, filling in its defaults (as snakemake.utils.validate does, from a
    schema held in memory rather than a file)."""
    from jsonschema import Draft202012Validator, exceptions, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, subschema):
        for name, spec in properties.items():
            if "default" in spec and isinstance(instance, dict):
                instance.setdefault(name, json.loads(json.dumps(spec["default"])))
        yield from check_properties(validator, properties, instance, subschema)

    # JSON Schema counts 4096.0 as an integer; the commands' options do not.
    integers = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    validator = validators.extend(Draft202012Validator, {"properties": properties_with_defaults},
                                  type_checker=integers)(schema)
    error = exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    where = ".".join(map(str, error.absolute_path)) or "the top level"
    if error.validator == "additionalProperties":  # a misspelt key: name it and the keys allowed there
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        raise ValueError(f"config: {where}: unknown key {', '.join(map(repr, unknown))}; allowed here: "
                         f"{', '.join(error.schema.get('properties', {}))}")
    if "propertyNames" in error.schema_path:  # the regular expression would say little to a user
        raise ValueError(f"config: {where}: {error.instance!r} cannot be a name: {error.schema['description']}")
    if error.validator == "enum" and "description" in error.schema:  # kind: tss, where promoter is "around TSSs"
        raise ValueError(f"config: {where}: {error.instance!r} is not one of {', '.join(error.validator_value)} "
                         f"({error.schema['description']})")
    if error.validator in ("pattern", "not"):  # what is allowed is in words in the description
        raise ValueError(f"config: {where}: {error.instance!r} is not allowed here: {error.schema['description']}")
    wanted = error.validator_value if error.validator == "type" else None
    if "number" in ([wanted] if isinstance(wanted, str) else wanted or []) and isinstance(error.instance, str) \
            and re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", error.instance):  # YAML 1.1 wants a point in 5.0e-4
        raise ValueError(f"config: {where}: YAML reads {error.instance} as text, not a number; write it with a point, "
                         f"as {error.instance.lower().replace('e', '.0e', 1)}, or in full")
    if wanted == "string" and isinstance(error.instance, (int, float)) and not isinstance(error.instance, bool):
        raise ValueError(f"config: {where}: YAML reads {error.instance} as a number; quote it, as "
                         f"\"{error.instance}\", for a name")
    if wanted == "object" and error.instance is None:
        raise ValueError(f"config: {where} is empty: give its settings, or leave it out")
    raise ValueError(f"config: {where}: {error.message}")


def check_references(config: dict) -> None:
    """Names that must refer to something: genomes, annotations, models, tasks, each scan's mode, and
    the files given."""
    named = [("vocab.genomes", g) for g in config["vocab"]["genomes"]]
    for model, settings in config["pretrain"].items():
        named += [(f"pretrain.{model}.genomes", g) for g in settings["genomes"]]
        if settings["weights"] and len(settings["weights"]) != len(settings["genomes"] or config["genomes"]):
            raise ValueError(f"config: pretrain.{model}.weights needs one weight per genome")
        if problem := window_over_batch(settings["window_tokens"], None, settings["batch_tokens"]):
            raise ValueError(f"config: pretrain.{model}: {problem}")
    named += [(f"tasks.{task}.genome", s["genome"]) for task, s in config["tasks"].items()]
    named += [(f"scan.{name}.genome", s["genome"]) for name, s in config["scan"].items()]
    named += [(f"variants.{name}.genome", s["genome"]) for name, s in config["variants"].items()]
    for key, name in named:
        if name not in config["genomes"]:
            raise ValueError(f"config: {key} names {name!r}, which is not under genomes")
    for name, entry in config["genomes"].items():
        if "sha256" in entry and "md5" in entry:
            raise ValueError(f"config: genomes.{name}: give one checksum, sha256 or md5, not both")
    learned = set(config["vocab"]["genomes"] or config["genomes"])
    for model, settings in config["pretrain"].items():
        trained = set(settings["genomes"] or config["genomes"])
        if settings["heldout_contigs"] and trained & learned and not trained <= learned:
            # Which of its genomes a held-out contig lies on is known only once they are fetched.
            raise ValueError(f"config: pretrain.{model} holds contigs out and trains on {', '.join(sorted(trained))}, "
                             f"of which vocab.genomes has only {', '.join(sorted(trained & learned))}: the vocabulary "
                             "could learn from the held-out contigs; give vocab.genomes all of these genomes or none")
        if settings["gpus"] > 1 and settings["batch_size"] % settings["gpus"]:
            raise ValueError(f"config: pretrain.{model}: batch_size {settings['batch_size']} does not split evenly "
                             f"over {settings['gpus']} GPUs")
    for task, settings in config["tasks"].items():
        if not settings["dense"]:
            try:
                KINDS[settings["kind"]].check_negatives(settings["negatives"])
            except UserError as error:
                raise ValueError(f"config: tasks.{task}.negatives: {error}") from None
        both = sorted(set(settings["test_contigs"]) & set(settings["dev_contigs"]))
        if both:
            raise ValueError(f"config: tasks.{task}: contig {both[0]} is in both test_contigs and dev_contigs; "
                             "a contig belongs to one split")
    for task, settings in config["tasks"].items():
        if "annotation" not in config["genomes"][settings["genome"]]:
            raise ValueError(f"config: tasks.{task} needs an annotation (GTF, GFF3 or GenBank) for genome "
                             f"{settings['genome']!r}; add genomes.{settings['genome']}.annotation")
    for name, settings in config["finetune"].items():
        for kind, known in (("model", config["pretrain"]), ("task", config["tasks"])):
            value, key = settings[kind], f"finetune.{name}.{kind}"
            if value in known or (kind, value) == ("model", CNN):
                continue
            # A whole model to fine-tune: a LoRA folder (adapter_config.json) is no starting point.
            files = model_files(value, adapter=False) if kind == "model" else task_files(value)
            if not _on_disk(key, value, files) and not (kind == "model" and hub_id(value)) and not to_make(value):
                what = "a folder on disk" + " or a Hugging Face Hub id" * (kind == "model")
                raise ValueError(f"config: finetune.{name}.{kind} {settings[kind]!r} is neither a {kind} in the "
                                 f"config nor {what}" + (_shadowed(value) if kind == "model" else ""))
        if settings["model"] == CNN and not is_dense_task(config, settings["task"]):
            raise ValueError(f"config: finetune.{name}: the cnn baseline trains on a dense task (tasks with dense: "
                             f"true); {settings['task']!r} is not one")
        if settings["model"] == CNN and settings["method"] != "auto":
            raise ValueError(f"config: finetune.{name}.method: the cnn baseline is trained whole, with no method")
    for name, settings in config["scan"].items():
        _check_scan(config, name, settings)
    for name, settings in config["variants"].items():
        _check_variants(config, name, settings)
    _check_files(config)
    _genomes_listed_once(config["genomes"])


def check_contigs(config: dict) -> None:
    """The contigs the config names (scans', tasks' test and dev, pretraining's held out), against the
    FASTA index beside a genome's local source where it is no older than the source. Without one the
    jobs check them, but only once the jobs before them (pretraining, fine-tuning) have run. A
    download's index is not read: it may be of a source the config has since replaced, which
    Snakemake will fetch anew."""
    indexed = {name: _indexed_contigs(entry) for name, entry in config["genomes"].items()}
    named = [(f"scan.{name}.{'contigs' if s['contigs'] else 'regions'}", [s["genome"]], scanned_contigs(name, s))
             for name, s in config["scan"].items()]
    named += [(f"tasks.{task}.{key}", [s["genome"]], s[key]) for task, s in config["tasks"].items()
              for key in ("test_contigs", "dev_contigs")]
    named += [(f"pretrain.{model}.heldout_contigs", s["genomes"] or list(config["genomes"]), s["heldout_contigs"])
              for model, s in config["pretrain"].items()]
    for key, genomes, contigs in named:
        if not contigs or any(indexed[g] is None for g in genomes):
            continue
        known = [c for g in genomes for c in indexed[g][1]]
        unknown = next((c for c in contigs if c not in known), None)
        if unknown is not None:
            raise ValueError(f"config: {key}: {unknown!r} is no contig of {' or '.join(genomes)} (its index "
                             f"{', '.join(str(indexed[g][0]) for g in genomes)} has {first_names(known)})")


def scanned_contigs(name: str, settings: dict) -> list[str]:
    """The contigs scan `name` names: its contigs, or those of its regions BED where it is there to
    read (one not there yet is Snakemake's to find); none for a whole-genome scan."""
    path = None if settings["contigs"] else settings["regions"]
    if not path or not Path(path).is_file():
        return settings["contigs"] or []
    try:
        return list(dict.fromkeys(contig for contig, _, _ in read_bed_regions(path)))
    except UserError as error:
        raise ValueError(f"config: scan.{name}.regions: {error}") from None


def _indexed_contigs(entry: dict) -> tuple[Path, list[str]] | None:
    """A local genome source's FASTA index, if no older than the source, and the contig names it holds."""
    source = local_path(entry["source"])
    if source is None or not source.is_file():
        return None
    index = Path(f"{source}.fai")
    if not index.is_file() or index.stat().st_mtime < source.stat().st_mtime:
        return None
    return index, list(fai_lengths(index))


def _check_files(config: dict) -> None:
    """A genome source of a known form, and no folder where a file is named. A missing file is left to
    Snakemake: a rule of a host pipeline (this workflow as a module) may make it."""
    files = []
    for name, entry in config["genomes"].items():
        try:
            source = local_path(entry["source"])
        except UserError as error:
            raise ValueError(f"config: genomes.{name}.source: {error}") from None
        if source is not None:
            files.append((f"genomes.{name}.source", source))
        if "annotation" in entry:
            files.append((f"genomes.{name}.annotation", Path(entry["annotation"])))
    files += [(f"variants.{name}.vcf", Path(s["vcf"])) for name, s in config["variants"].items()]
    files += [(f"scan.{name}.{key}", Path(s[key])) for name, s in config["scan"].items() for key in ("bam", "regions")
              if s[key]]
    for key, path in files:
        if path.is_dir():
            raise ValueError(f"config: {key}: {str(path)!r} is a folder, not a file")


def _genomes_listed_once(genomes: dict) -> None:
    """One FASTA under two annotations is two genomes; the same source and annotation twice is one."""
    listed = {}
    for name, entry in genomes.items():
        source = local_path(entry["source"])
        key = (str(source.resolve()) if source else entry["source"],
               str(Path(entry["annotation"]).resolve()) if "annotation" in entry else None)
        if key in listed:
            raise ValueError(f"config: genomes {listed[key]!r} and {name!r} are the same genome (source "
                             f"{entry['source']!r}); list each genome once")
        listed[key] = name


def _shadowed(model: str) -> str:
    """Why an id that names no folder is not taken for the Hub's, where a folder here makes it a path."""
    owner = shadowing_folder(model)
    return f"; the folder {owner}/ here makes it a path (write {model}@main for the Hub id)" if owner else ""


def _check_scan(config: dict, name: str, settings: dict) -> None:
    model = settings["model"]
    if model not in config["finetune"] and not _on_disk(f"scan.{name}.model", model, model_files(model)) \
            and not hub_id(model) and not to_make(model):
        raise ValueError(f"config: scan.{name}.model {settings['model']!r} is neither a finetune name in the config, "
                         f"a folder on disk nor a Hugging Face Hub id" + _shadowed(model))
    if (settings["mode"] == "fasta") != (settings["bam"] is None):
        needs = "needs a bam" if settings["bam"] is None else "scans no bam; use reads or covered"
        raise ValueError(f"config: scan.{name}: mode {settings['mode']} {needs}")
    if settings["regions"] and settings["contigs"]:
        raise ValueError(f"config: scan.{name}: give regions or contigs, not both")
    if settings["bam_index"] and os.path.abspath(settings["bam_index"]) not in map(os.path.abspath,
                                                                                   index_names(settings["bam"])):
        raise ValueError(f"config: scan.{name}.bam_index: htslib looks for the index of {settings['bam']} beside it, "
                         f"as {', '.join(map(str, index_names(settings['bam'])))}; "
                         f"{settings['bam_index']!r} is none of these")
    if settings["mode"] == "reads" and (settings["bedgraph"] or settings["bigwig"]):
        raise ValueError(f"config: scan.{name}: bedgraph and bigwig tracks hold window scores along the genome; "
                         "reads mode has none (set them false, or use mode covered)")
    if settings["mode"] == "reads" and settings["merge"]:
        raise ValueError(f"config: scan.{name}: merge joins windows along the genome; reads mode calls sites with the "
                         "reads that support each (set merge false, or use mode covered)")
    if settings["evaluate"] and "annotation" not in config["genomes"][settings["genome"]]:
        raise ValueError(f"config: scan.{name}.evaluate needs an annotation for genome {settings['genome']!r}")
    task = scan_task(config, name)
    if task is not None and settings["mode"] == "reads" and not config["tasks"][task]["dense"] \
            and settings["min_distance"]:
        raise ValueError(f"config: scan.{name}: min_distance: in reads mode a window classifier calls each window's "
                         "site with its reads, and no peaks (leave it null, or use mode covered)")
    if task is not None and config["tasks"][task]["dense"] and (settings["stride"] or settings["merge"]):
        raise ValueError(f"config: scan.{name}: stride and merge are for window scans; its model is per-base "
                         f"(task {task!r} is dense), which scores every base once")
    if settings["held_out"] and not settings["evaluate"]:
        raise ValueError(f"config: scan.{name}.held_out limits the evaluation to the test split; it needs evaluate: true")
    if settings["held_out"] and task is None:
        raise ValueError(f"config: scan.{name}.held_out needs a model that is a finetune name whose task is a "
                         "tasks name (its test split is what is evaluated)")
    if settings["held_out"]:
        _check_held_out(config, name, settings, task)
    if task is not None:
        known = KINDS[config["tasks"][task]["kind"]].labels
        for label in settings["labels"]:
            if label_position(known, label) is None:
                raise ValueError(f"config: scan.{name}.labels: {label!r} is no label of its model's task {task!r} "
                                 f"({', '.join(known)})")


def _check_held_out(config: dict, name: str, settings: dict, task: str) -> None:
    """A held-out evaluation must look at the task's test split: on its genome, and (when the task
    names its test contigs) on some of them; otherwise it would report nothing but nulls."""
    built = config["tasks"][task]
    if built["genome"] != settings["genome"]:
        raise ValueError(f"config: scan.{name}.held_out: the scan is of genome {settings['genome']!r}, its model's "
                         f"task {task!r} of {built['genome']!r}; the test split lies in the task's genome")
    tested, scanned = built.get("test_contigs") or [], scanned_contigs(name, settings)
    if tested and scanned and not set(tested) & set(scanned):
        raise ValueError(f"config: scan.{name}.held_out: the scan's contigs ({', '.join(scanned)}) hold none of "
                         f"task {task!r}'s test contigs ({', '.join(tested)})")


def _check_variants(config: dict, name: str, settings: dict) -> None:
    model = settings["model"]
    if model in config["finetune"]:
        run = config["finetune"][model]
        if run["model"] != CNN and not is_dense_task(config, run["task"]):
            raise ValueError(f"config: variants.{name}.model {model!r} is fine-tuned on a window task; variants are "
                             f"scored with a per-base model (a dense task, or cnn)")
    elif not _on_disk(f"variants.{name}.model", model, model_files(model)) and not hub_id(model) \
            and not to_make(model):
        raise ValueError(f"config: variants.{name}.model {model!r} is neither a finetune name in the config, a "
                         f"folder on disk nor a Hugging Face Hub id" + _shadowed(model))


def model_files(folder: str, adapter: bool = True) -> list[str]:
    """The files that stand for a model folder on disk, as a rule's inputs: its config.json and weights,
    or (adapter) a LoRA fine-tuning folder's adapter files. The weights too: a model trained again in
    place with the same settings writes the same config.json, which Snakemake, comparing checksums,
    takes for unchanged, and the scans of the old weights would stay."""
    path = Path(folder)
    if adapter and (path / ADAPTER_FILES[0]).is_file():
        return [str(path / name) for name in ADAPTER_FILES]
    weights = find_weights(path) or path / WEIGHT_FILES[0]
    return [str(path / "config.json"), str(weights)]


def task_files(folder: str) -> list[str]:
    """The files that stand for a task folder on disk (GUE format, or a dense task)."""
    return [str(Path(folder) / f"{split}.csv") for split in ("train", "dev", "test")]


def _on_disk(key: str, value: str, files: list[str]) -> bool:
    """Whether `value` is a folder here; one that lacks what it needs is an error naming the file."""
    if not Path(value).is_dir():
        return False
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ValueError(f"config: {key} {value!r} is a folder without {Path(missing[0]).name}")
    return True


def to_make(value: str) -> bool:
    """A folder written as ./PATH to say that a rule (of a host pipeline) makes it: not here yet, or
    here with the timestamp Snakemake keeps in a directory() output; left to Snakemake. One here
    without it (put there by hand) stands by its files, as any folder on disk: Snakemake sees a
    folder change by that timestamp only, and weights replaced in place would leave old scans.
    Without ./, a path not on disk is a mistake, or an owner/name a Hub id."""
    return value.startswith("./") and (not Path(value).is_dir() or (Path(value) / ".snakemake_timestamp").is_file())


def is_dense_task(config: dict, task: str) -> bool:
    """A task of the config with dense: true, or a task folder on disk whose task.json says dense (one
    that cannot be read is planned as a window task: its job says in one line what is wrong)."""
    if task in config["tasks"]:
        return config["tasks"][task]["dense"]
    try:
        return is_dense(task)
    except UserError:
        return False


def scan_task(config: dict, scan: str) -> str | None:
    """The tasks name a scan's model was fine-tuned on, where the config says."""
    model = config["finetune"].get(config["scan"][scan]["model"])
    return model["task"] if model and model["task"] in config["tasks"] else None


def device_of(settings: dict) -> str:
    """The device of an entry's job, from its gpus."""
    return "cuda" if settings["gpus"] else "cpu"


def vocab_options(config: dict) -> str:
    """The options of `vocab`: its section, and the contigs pretraining holds out (of runs on genomes
    the vocabulary is learned from), so the evaluation's contigs are unseen by the vocabulary too."""
    learned = set(config["vocab"]["genomes"] or config["genomes"])
    held = sorted({contig for p in config["pretrain"].values() if set(p["genomes"] or config["genomes"]) <= learned
                   for contig in p["heldout_contigs"]})
    return as_arguments(VocabSettings, {**config["vocab"], "heldout_contigs": held})


def vocab_mem_mb(config: dict) -> int:
    """The vocab job's memory: BPE training holds its sample many times over, about 50 MB a Mbp (1.1 GB
    for 20 Mbp of random sequence, 2.1 GB for 40, 2026-12-05), so the 200 Mbp a GPU config samples needs
    some 10 GB, where a cluster kills a job past its request."""
    return 1000 + 60 * config["vocab"]["sample_bp"] // 1_000_000


# The pretraining settings a run continues with (config/README): the rule passes them apart from
# Snakemake's rerun triggers, so changing them retrains nothing, nor reruns what reads the model.
PRETRAIN_CONTINUING = ("eval_every", "checkpoint_every", "batch_tokens", "compile")


def pretrain_options(settings: dict, continuing: bool = False) -> str:
    """The options of `pretrain` that shape the run, or (continuing) those of PRETRAIN_CONTINUING;
    evaluations only where contigs are held out for them (pretrain refuses --eval-every otherwise)."""
    settings = {**applying("pretrain", settings), "device": device_of(settings)}
    return as_arguments(PretrainSettings, {k: v for k, v in settings.items() if (k in PRETRAIN_CONTINUING) == continuing})


def task_options(settings: dict) -> str:
    """The options of `tasks` that act on its kind of task (the defaults fill in every key)."""
    return as_arguments(TaskSettings, applying("tasks", settings))


def applying(section: str, settings: dict) -> dict:
    """An entry's settings less the keys that do not act on it (ONLY_WITH), which a command given them
    would ignore or refuse."""
    unused = {key for where, key, _, applies in ONLY_WITH if where == section and not applies(settings)}
    return {key: value for key, value in settings.items() if key not in unused}


def finetune_options(settings: dict) -> str:
    """The options of `finetune`, or for the CNN baseline those of `cnn`."""
    settings = {**settings, "device": device_of(settings)}
    if settings["model"] == CNN:
        settings = {key: value for key, value in settings.items() if key in CNN_OPTIONS}
    return as_arguments(FinetuneSettings, settings)


def variant_options(settings: dict) -> str:
    return as_arguments(VariantSettings, {**settings, "device": device_of(settings)})


def scan_options(settings: dict) -> str:
    """A chunk's options: those of its mode only (ONLY_WITH: the depth of covered mode, the reads'
    filters of BAM scans); top-k is the gathering's; workers come from the job's threads (the rule's),
    so changing them scans nothing again."""
    chunk = {key: value for key, value in applying("scan", settings).items() if key not in ("top_k", "workers")}
    return as_arguments(ScanSettings, {**chunk, "device": device_of(settings)})


def junction_options(settings: dict) -> str:
    """The junctions of the contigs (or regions) and alignments the scan reads."""
    return as_arguments(JunctionsSettings, {key: settings[key] for key in ("regions", "contigs", "min_mapq")})


def gather_options(settings: dict) -> str:
    return as_arguments(ScanSettings, {"top_k": settings["top_k"]})


def scan_eval_options(settings: dict) -> str:
    """The tolerances, the shortest intron, the biotypes and the tags; scan-eval takes what was scanned
    from the scan's summary."""
    return as_arguments(ScanEvalSettings, {key: settings[key] for key in EVALUATION_KEYS})
