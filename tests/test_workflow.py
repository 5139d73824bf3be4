"""The Snakemake workflow as users run it: lint, format, a full run of the default config, bad config."""

import json
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

WORKFLOW_FILES = ["Snakefile", "workflow", "config", "example", "envs"]


def snakemake(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def checkout(tmp_path):
    """The workflow copied into a fresh folder, as in a fresh clone (the package comes from the venv)."""
    for name in WORKFLOW_FILES:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    return tmp_path


def test_lint_reports_nothing():
    result = snakemake("--lint", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_snakefmt_leaves_the_workflow_unchanged():
    result = subprocess.run(["snakefmt", "--check", "Snakefile", "workflow"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_config_runs_download_and_vocab(checkout):
    result = snakemake("--cores", "2", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    genome = checkout / "resources/genomes/ce1pct/genome.fa.gz"
    for suffix in ("", ".fai", ".gzi"):
        assert genome.with_name(genome.name + suffix).stat().st_size > 0
    fai = [line.split("\t")[:2] for line in genome.with_name("genome.fa.gz.fai").read_text().splitlines()]
    assert [name for name, _ in fai] == ["I", "II", "III", "IV", "V", "X", "MtDNA"]
    assert sum(int(length) for _, length in fai) == 1_002_861
    tokenizer = json.loads((checkout / "results/vocab/tokenizer.json").read_text())
    assert len(tokenizer["model"]["vocab"]) == 4096
    report = json.loads((checkout / "results/vocab/report.json").read_text())
    assert 3.5 < report["heldout_bp_per_token"] < 7
    for log in ("logs/genome/ce1pct.log", "logs/vocab/vocab.log"):
        assert (checkout / log).exists()
    for bench in ("benchmarks/genome/ce1pct.tsv", "benchmarks/vocab/vocab.tsv"):
        assert (checkout / bench).exists()

    again = snakemake("--cores", "2", cwd=checkout)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def edit_config(checkout, change):
    path = checkout / "config/config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: c["vocab"].update(vocab_sise=100), ["vocab_sise"]),
        (lambda c: c["vocab"].update(genomes=["human"]), ["human"]),
        (lambda c: c["genomes"]["ce1pct"].pop("source"), ["source"]),
        (lambda c: c["vocab"].update(vocab_size=5), ["vocab_size"]),
    ],
)
def test_bad_config_is_refused_before_any_job(checkout, change, words):
    edit_config(checkout, change)
    result = snakemake("--cores", "1", "--dry-run", cwd=checkout)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout + result.stderr
    assert not (checkout / "resources").exists()


def test_missing_config_sections_take_the_schema_defaults(checkout):
    edit_config(checkout, lambda c: c.pop("vocab"))
    result = snakemake("--cores", "1", "--dry-run", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "vocab" in result.stdout
