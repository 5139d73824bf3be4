import json
import shlex
from pathlib import Path

import yaml
from snakemake.utils import validate


class _RefuseDuplicates(yaml.SafeLoader):
    """YAML (and JSON) keep the last of two equal keys without a word; a config must not."""

    path = None


def _given_twice(key, where):
    return ValueError(
        f"config: {key!r} is given twice under the same key ({where}); "
        "name each genome, task and run once"
    )


def _mapping(loader, node):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise _given_twice(
                key, f"{loader.path}, line {key_node.start_mark.line + 1}"
            )
        seen.add(key)
    return loader.construct_mapping(node)


def _json_object(pairs, path):
    keys = [k for k, _ in pairs]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            raise _given_twice(key, path)
    return dict(pairs)


_RefuseDuplicates.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping
)


def check_config_files():
    """The files Snakemake loaded the config from, read again to catch repeated keys."""
    for path in workflow.configfiles:
        text = Path(path).read_text()
        try:
            json.loads(text, object_pairs_hook=lambda pairs: _json_object(pairs, path))
            continue
        except json.JSONDecodeError:
            pass  # YAML, then
        _RefuseDuplicates.path = path
        yaml.load(text, Loader=_RefuseDuplicates)


check_config_files()
validate(config, "../schemas/config.schema.yaml")

# Rules run `python -m dnabert2` from this checkout, also inside a rule's conda environment, which
# holds only the third-party dependencies. Cluster jobs re-read this file, so they get it too.
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}; ")


# Config names (the schema's propertyNames) never hold a slash, so one rule's files are not read
# as another's.
wildcard_constraints:
    name="[A-Za-z0-9_.-]+",
    i=r"\d+",
    n=r"\d+",


def check_config():
    listed = {}
    for name, entry in config["genomes"].items():
        # One FASTA under two annotations is two genomes; the same source and annotation twice is one.
        key = tuple(
            str(Path(v).resolve()) if v and ":" not in v else v
            for v in (entry["source"], entry.get("annotation"))
        )
        if key in listed:
            raise ValueError(
                f"config: genomes {listed[key]!r} and {name!r} are the same genome (source "
                f"{entry['source']!r}); list each genome once"
            )
        listed[key] = name
    named = [("vocab.genomes", g) for g in config["vocab"]["genomes"]]
    for model, settings in config["pretrain"].items():
        named += [(f"pretrain.{model}.genomes", g) for g in settings["genomes"]]
        if settings["weights"] and len(settings["weights"]) != len(
            settings["genomes"] or config["genomes"]
        ):
            raise ValueError(
                f"config: pretrain.{model}.weights needs one weight per genome"
            )
    for task, settings in config["tasks"].items():
        named.append((f"tasks.{task}.genome", settings["genome"]))
        entry = config["genomes"].get(settings["genome"], {})
        if settings["genome"] in config["genomes"] and "annotation" not in entry:
            raise ValueError(
                f"config: tasks.{task} needs an annotation (GTF or GFF3) for genome "
                f"{settings['genome']!r}; add genomes.{settings['genome']}.annotation"
            )
    named += [
        (f"scan.{name}.genome", s["genome"]) for name, s in config["scan"].items()
    ]
    for key, name in named:
        if name not in config["genomes"]:
            raise ValueError(
                f"config: {key} names {name!r}, which is not under genomes"
            )
    for name, settings in config["finetune"].items():
        for kind, known in (("model", config["pretrain"]), ("task", config["tasks"])):
            value = settings[kind]
            if value not in known and not Path(value).is_dir():
                raise ValueError(
                    f"config: finetune.{name}.{kind} {value!r} is neither a {kind} in the "
                    f"config nor a folder on disk"
                )
    for name, settings in config["scan"].items():
        model = settings["model"]
        if model not in config["finetune"] and not Path(model).is_dir():
            raise ValueError(
                f"config: scan.{name}.model {model!r} is neither a finetune name in the "
                f"config nor a folder on disk"
            )
        if (settings["mode"] == "fasta") != (settings["bam"] is None):
            raise ValueError(
                f"config: scan.{name}: mode {settings['mode']} "
                + (
                    "needs a bam"
                    if settings["bam"] is None
                    else "scans no bam; use reads or covered"
                )
            )
        if settings["mode"] == "reads" and settings["bedgraph"]:
            raise ValueError(
                f"config: scan.{name}: a bedgraph holds window scores along the genome; "
                "reads mode has none (use bedgraph: false, or mode covered)"
            )
        if settings["evaluate"] and "annotation" not in config["genomes"].get(
            settings["genome"], {}
        ):
            raise ValueError(
                f"config: scan.{name}.evaluate needs an annotation for genome "
                f"{settings['genome']!r}"
            )


check_config()


def genome_fasta(name):
    return f"resources/genomes/{name}/genome.fa.gz"


def local_source(wildcards):
    """The source file when it is on disk, so that changing it reruns the download."""
    source = config["genomes"][wildcards.genome]["source"]
    path = Path(source.removeprefix("file://"))
    return [str(path)] if ":" not in source or source.startswith("file://") else []


def checksum_option(wildcards):
    entry = config["genomes"][wildcards.genome]
    for kind in ("sha256", "md5"):
        if kind in entry:
            return f"--{kind} {entry[kind]}"
    return ""


def vocab_genomes():
    return [genome_fasta(g) for g in (config["vocab"]["genomes"] or config["genomes"])]


def pretrain_settings(wildcards):
    return config["pretrain"][wildcards.model]


def pretrain_genomes(wildcards):
    names = pretrain_settings(wildcards)["genomes"] or config["genomes"]
    return [genome_fasta(g) for g in names]


def pretrain_launcher(wildcards):
    """One process per GPU through torchrun when the job has several; plain python otherwise."""
    gpus = pretrain_settings(wildcards)["gpus"]
    if gpus > 1:
        return f"torchrun --standalone --nproc-per-node {gpus}"
    return "python"


def pretrain_options(wildcards):
    s = pretrain_settings(wildcards)
    options = [
        f"--preset {s['preset']}",
        f"--steps {s['steps']}",
        f"--batch-size {s['batch_size']}",
        f"--window-tokens {s['window_tokens']}",
        f"--max-tokens {s['max_tokens']}",
        f"--lr {s['lr']}",
        f"--warmup {s['warmup']}",
        f"--checkpoint-every {s['checkpoint_every']}",
        f"--seed {s['seed']}",
        f"--device {'cuda' if s['gpus'] else 'cpu'}",
    ]
    if s["weights"]:
        options += [f"--weight {w}" for w in s["weights"]]
    if s["heldout_contigs"]:
        options.append(
            "--heldout-contigs " + " ".join(map(shlex.quote, s["heldout_contigs"]))
        )
        options.append(
            f"--eval-every {s['eval_every']} --eval-windows {s['eval_windows']}"
        )
    return " ".join(options)


def task_settings(wildcards):
    return config["tasks"][wildcards.task]


def task_annotation(wildcards):
    return config["genomes"][task_settings(wildcards)["genome"]]["annotation"]


def task_options(wildcards):
    s = task_settings(wildcards)
    options = [s["kind"], f"--negatives {s['negatives']}", f"--seed {s['seed']}"]
    for key in ("test_contigs", "dev_contigs"):
        if s[key]:
            options.append(
                f"--{key.replace('_', '-')} " + " ".join(map(shlex.quote, s[key]))
            )
    return " ".join(options)


def task_folder(task):
    """A task built by the workflow, or a GUE task folder on disk."""
    return f"results/tasks/{task}" if task in config["tasks"] else task


def task_files(task):
    return [f"{task_folder(task)}/{split}.csv" for split in ("train", "dev", "test")]


def model_folder(model):
    """A model pretrained by the workflow, or a model folder on disk (e.g. the released files)."""
    return f"results/pretrain/{model}" if model in config["pretrain"] else model


def finetune_settings(wildcards):
    return config["finetune"][wildcards.name]


def finetune_model(wildcards):
    return [f"{model_folder(finetune_settings(wildcards)['model'])}/config.json"]


def finetune_options(wildcards):
    s = finetune_settings(wildcards)
    options = [
        "--full" if s["method"] == "full" else "--lora",
        f"--epochs {s['epochs']}",
        f"--batch-size {s['batch_size']}",
        "--seeds " + " ".join(map(str, s["seeds"])),
        f"--device {'cuda' if s['gpus'] else 'cpu'}",
    ]
    if s["lr"]:
        options.append(f"--lr {s['lr']}")
    return " ".join(options)


def scan_settings(wildcards):
    return config["scan"][wildcards.name]


def scan_model(scan):
    """A model fine-tuned by the workflow, or a fine-tuned model folder on disk."""
    model = config["scan"][scan]["model"]
    return f"results/finetune/{model}" if model in config["finetune"] else model


def scan_inputs(wildcards):
    s = scan_settings(wildcards)
    model = scan_model(wildcards.name)
    inputs = {
        "genome": genome_fasta(s["genome"]),
        "model": (
            f"results/finetune/{s['model']}/metrics.json"
            if s["model"] in config["finetune"]
            else f"{model}/config.json"
        ),
    }
    if s["bam"]:
        inputs["bam"] = s["bam"]
    return inputs


def scan_options(wildcards):
    s = scan_settings(wildcards)
    source = {
        "fasta": "--fasta {genome}",
        "reads": "--bam {bam} --reference {genome}",
        "covered": f"--bam {{bam}} --reference {{genome}} --covered {s['min_depth']}",
    }[s["mode"]].format(
        genome=genome_fasta(s["genome"]), bam=shlex.quote(s["bam"] or "")
    )
    options = [
        f"--model {shlex.quote(scan_model(wildcards.name))}",
        source,
        f"--threshold {s['threshold']}",
        f"--workers {s['workers']}",
        f"--device {'cuda' if s['gpus'] else 'cpu'}",
    ]
    if s["stride"]:
        options.append(f"--stride {s['stride']}")
    for key in ("labels", "contigs"):
        if s[key]:
            options.append(f"--{key} " + " ".join(map(shlex.quote, s[key])))
    return " ".join(options)


def scan_chunks(wildcards):
    n = scan_settings(wildcards)["chunks"]
    return expand(
        "results/scan/{name}/chunk{i}of{n}.json", name=wildcards.name, i=range(n), n=n
    )


def bedgraph_option(wildcards, output):
    return (
        f"--bedgraph {output.bedgraph}" if scan_settings(wildcards)["bedgraph"] else ""
    )


def empty_bedgraph(wildcards, output):
    """The shell prefix that leaves an empty .bedgraph where a scan writes none."""
    return "" if scan_settings(wildcards)["bedgraph"] else f": > {output.bedgraph}; "
