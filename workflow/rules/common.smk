import shlex
from pathlib import Path

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

# Rules run `python -m dnabert2` from this checkout, also inside a rule's conda environment, which
# holds only the third-party dependencies. Cluster jobs re-read this file, so they get it too.
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}; ")


def check_config():
    for name in config["vocab"]["genomes"]:
        if name not in config["genomes"]:
            raise ValueError(
                f"config: vocab.genomes names {name!r}, which is not under genomes"
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
