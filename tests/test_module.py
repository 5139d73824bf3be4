"""This workflow inside another pipeline: imported as a Snakemake module from the checkout, fed by
a host rule of its own, run through to the scan's calls and their evaluation; or only some of its
rules taken, with a model given on disk. Paths resolve from the workflow's own folder, never from
the host's, and the schema checks the config the host passes."""

import json
import subprocess

import pytest
import yaml

from conftest import GENOMES, ROOT, scan_classifier
from http_server import FileServer

# The host's own rules around README's module snippet.
UPSTREAM = """

rule genome_from_the_lab:
    input:
        "{genome}",
    output:
        "lab/genome.fa.gz",
    shell:
        "cp {{input}} {{output}}"
"""
TARGETS = """

rule all:
    default_target: True
    input:
        {targets},
"""


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    snippet = text.split("```snakemake\n", 1)[1].split("```", 1)[0]
    assert "path/to/dnabert2/workflow/Snakefile" in snippet and "use rule * from dnabert2" in snippet
    return snippet


def host(folder, targets: list[str], config: dict, use: str | None = None, snakefile: str | None = None):
    """A host pipeline in `folder`: README's snippet (pointing at this checkout, or at `snakefile`), a
    rule of its own upstream, its own config with a dnabert2 section; `use` replaces the snippet's
    `use rule` line."""
    folder.mkdir(parents=True, exist_ok=True)
    snippet = readme_snippet().replace("path/to/dnabert2/workflow/Snakefile",
                                       snakefile or str(ROOT / "workflow" / "Snakefile"))
    if use is not None:
        snippet = snippet.replace("use rule * from dnabert2 as dnabert2_*", use)
    (folder / "config").mkdir(exist_ok=True)
    (folder / "config" / "config.yaml").write_text(yaml.safe_dump({"dnabert2": config}))
    text = snippet + UPSTREAM.format(genome=GENOMES / "ce1pct.fa.gz") + \
        TARGETS.format(targets=", ".join(f'"{t}"' for t in targets))
    (folder / "Snakefile").write_text(text)
    return folder


def catalog_test_config() -> dict:
    """The workflow's .test config, on the host's genome (a host rule's output)."""
    config = yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())
    config["genomes"]["ce1pct"] = {"source": "lab/genome.fa.gz", "annotation": str(GENOMES / "ce1pct.gff3.gz")}
    return config


def snakemake(folder, *args):
    return subprocess.run(["snakemake", "--cores", "2", *args], cwd=folder, capture_output=True, text=True)


def test_a_host_pipeline_imports_the_workflow_and_feeds_it_a_genome_of_its_own(tmp_path):
    folder = host(tmp_path / "host", ["results/scan/splice.bed", "results/scan/splice/evaluation.json"],
                  catalog_test_config())
    result = snakemake(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    ran = result.stdout + result.stderr
    assert "rule genome_from_the_lab:" in ran and "rule dnabert2_download_genome:" in ran  # the host's rule upstream
    calls = (folder / "results/scan/splice.bed").read_text().splitlines()
    assert calls and all(line.split("\t")[0] == "IV" for line in calls)
    evaluation = json.loads((folder / "results/scan/splice/evaluation.json").read_text())
    assert evaluation["labels"]["donor"]["sites"] > 0
    assert not (folder / "workflow").exists() and not (folder / "envs").exists()  # nothing of ours copied in


def test_a_host_importing_every_rule_under_a_prefix_is_warned_of_nothing(tmp_path):
    # `localrules: all` named a rule the host has as dnabert2_all, and Snakemake said so on every run
    # of a host without an `all` of its own.
    folder = host(tmp_path / "host", ["results/scan/splice.bed"], catalog_test_config())
    snakefile = folder / "Snakefile"
    snakefile.write_text(snakefile.read_text().replace("rule all:", "rule annotate:"))
    result = snakemake(folder, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dnabert2_scan_chunk" in result.stdout
    assert "not present in the Snakefile" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_host_imports_the_workflow_under_a_prefix_with_its_own_relative_paths(tmp_path):
    """`prefix:` puts every path of the module's rules under a folder of the host: its outputs, but not
    the files the config names (the host's own, relative to where it runs), and pretraining's
    checkpoints beside its output, where two prefixed instances keep them apart."""
    config = catalog_test_config()
    config["genomes"]["ce1pct"]["annotation"] = "lab/genes.gff3.gz"
    config["pretrain"] = {"tiny": {"preset": "tiny", "steps": 2}}
    folder = host(tmp_path / "host", ["dnabert2/results/scan/splice/evaluation.json",
                                      "dnabert2/results/pretrain/tiny"], config)
    (folder / "lab").mkdir()
    (folder / "lab" / "genes.gff3.gz").write_bytes((GENOMES / "ce1pct.gff3.gz").read_bytes())
    snakefile = folder / "Snakefile"
    snakefile.write_text(snakefile.read_text().replace("module dnabert2:\n", 'module dnabert2:\n    prefix: "dnabert2"\n'))
    assert 'prefix: "dnabert2"' in snakefile.read_text()
    result = snakemake(folder, "--dry-run", "--printshellcmds")
    planned = result.stdout + result.stderr
    assert result.returncode == 0, planned
    assert "--annotation lab/genes.gff3.gz" in planned and "input: lab/genome.fa.gz" in planned
    assert "--checkpoint-dir dnabert2/results/checkpoints/tiny" in planned


def test_a_host_takes_only_the_scan_rules_with_a_model_on_disk(tmp_path):
    model = scan_classifier(tmp_path / "model", window=300)
    config = {"genomes": {"worm": {"source": "lab/genome.fa.gz"}},
              "scan": {"iv": {"model": str(model), "genome": "worm", "contigs": ["IV"]}}}
    folder = host(tmp_path / "host", ["results/scan/iv.bed"], config,
                  use="use rule download_genome, scan_chunk, scan_gather from dnabert2")
    result = snakemake(folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "results/scan/iv.bed").read_text()


def test_a_model_that_a_host_rule_makes_is_waited_for_not_fetched_from_the_hub(tmp_path):
    """Written ./models/m, a model folder not there yet is a rule's output, not the Hub id models/m."""
    config = {"genomes": {"worm": {"source": "lab/genome.fa.gz"}},
              "scan": {"iv": {"model": "./models/m", "genome": "worm", "contigs": ["IV"]}}}
    folder = host(tmp_path / "host", ["results/scan/iv.bed"], config,
                  use="use rule download_genome, scan_chunk, scan_gather from dnabert2")
    with open(folder / "Snakefile", "a") as handle:
        handle.write('\n\nrule model_from_the_lab:\n    output:\n        directory("models/m"),\n'
                     '    shell:\n        "mkdir -p {output}"\n')
    result = snakemake(folder, "-n", "-p")
    assert result.returncode == 0, result.stdout + result.stderr
    planned = result.stdout + result.stderr
    assert "rule model_from_the_lab:" in planned and "--model ./models/m" in planned


@pytest.mark.parametrize("use", ["use rule * from dnabert2 as dnabert2_*",
                                 "use rule download_genome, scan_chunk, scan_gather from dnabert2"])
def test_a_host_scans_with_a_hub_model_fetched_once_or_by_the_job(tmp_path, use):
    """With every rule, the host fetches the model once (dnabert2_fetch_model, a local rule under its
    prefixed name too) and the scan reads that commit offline; with some rules but not fetch_model, the
    scan job fetches it itself, as the command does."""
    config = {"genomes": {"worm": {"source": "lab/genome.fa.gz"}},
              "scan": {"iv": {"model": "lab/splice-tiny@v1", "genome": "worm", "contigs": ["IV"]}}}
    folder = host(tmp_path / "host", ["results/scan/iv.bed"], config, use=use)
    result = snakemake(folder, "-n", "-p")
    assert result.returncode == 0, result.stdout + result.stderr
    planned = result.stdout + result.stderr
    assert "localrules directive" not in planned
    if "*" in use:
        assert "rule dnabert2_fetch_model:" in planned
        assert ('HF_HUB_OFFLINE=1 python -m dnabert2 scan --model "$(cut -f2 resources/hub/lab/splice-tiny@v1.tsv '
                '| sed -n 2p)"') in planned
    else:
        assert "fetch_model" not in planned and "HF_HUB_OFFLINE" not in planned
        assert "python -m dnabert2 scan --model lab/splice-tiny@v1 " in planned


def test_a_host_imports_the_workflow_from_a_url_as_github_serves_it(tmp_path):
    """github(...) reads the workflow's files over HTTP(S) from GitHub's raw host, through Snakemake's
    source cache; a local server serving this checkout is read the same way. The rules then run the
    installed package (here the editable install of this checkout), whose version is checked."""
    model = scan_classifier(tmp_path / "model", window=300)
    config = {"genomes": {"worm": {"source": "lab/genome.fa.gz"}},
              "scan": {"iv": {"model": str(model), "genome": "worm", "contigs": ["IV"], "bigwig": True}}}
    with FileServer(ROOT) as server:
        folder = host(tmp_path / "host", ["results/scan/iv.bed"], config, snakefile=server.url("/workflow/Snakefile"),
                      use="use rule download_genome, scan_chunk, scan_gather from dnabert2")
        result = snakemake(folder)
        read = [path for path in ("/workflow/rules/common.smk", "/workflow/schemas/config.schema.yaml",
                                  "/dnabert2/__init__.py") if server.requests_for(path)]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(read) == 3, read  # the rules, the schema and the version, all from the server
    assert (folder / "results/scan/iv.bed").read_text()
    assert sorted(p.name for p in (folder / "results/scan/iv.bigwig").iterdir())


def test_a_host_config_without_a_required_key_is_refused_before_any_job(tmp_path):
    config = {"genomes": {"worm": {"annotation": "x.gff3"}}}
    folder = host(tmp_path / "host", ["lab/genome.fa.gz"], config)
    result = snakemake(folder, "--dry-run")
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "config: genomes.worm" in said and "source" in said, said
    assert "rule genome_from_the_lab" not in said


def test_a_prefix_that_clashes_with_a_host_rule_is_refused(tmp_path):
    folder = host(tmp_path / "host", ["lab/genome.fa.gz"], {"genomes": {"worm": {"source": "lab/genome.fa.gz"}}},
                  use="use rule * from dnabert2 as genome_*")
    (folder / "Snakefile").write_text((folder / "Snakefile").read_text().replace(
        "rule genome_from_the_lab:", "rule genome_download_genome:"))
    result = snakemake(folder, "--dry-run")
    assert result.returncode != 0
    assert "genome_download_genome" in result.stdout + result.stderr, result.stdout + result.stderr
