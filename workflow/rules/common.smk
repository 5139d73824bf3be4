import shlex
from pathlib import Path

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

# Rules run `python -m dnabert2` from this checkout, also inside a rule's conda environment, which
# holds only the third-party dependencies. Cluster jobs re-read this file, so they get it too.
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}; ")


def check_config():
    named = [("vocab.genomes", g) for g in config["vocab"]["genomes"]]
    for model, settings in config["pretrain"].items():
        named += [(f"pretrain.{model}.genomes", g) for g in settings["genomes"]]
        if settings["weights"] and len(settings["weights"]) != len(
            settings["genomes"] or config["genomes"]
        ):
            raise ValueError(
                f"config: pretrain.{model}.weights needs one weight per genome"
            )
    for key, name in named:
        if name not in config["genomes"]:
            raise ValueError(
                f"config: {key} names {name!r}, which is not under genomes"
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
