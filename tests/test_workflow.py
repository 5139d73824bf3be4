"""The Snakemake workflow as users run it: lint, format, a full run of the default config, bad config."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import pysam
import pyBigWig
import pytest
import torch
import yaml

from conftest import DATA, GENOMES, ROOT, TOKENIZER, scan_classifier
from dnabert2 import load_model, load_tokenizer
from dnabert2.model import build_model, preset, save_model
from dnabert2.sequences import Fasta, read_annotation

WORKFLOW_FILES = ["Snakefile", "workflow", "config", "example", "envs", ".test"]


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


def test_every_rule_has_a_log_and_a_benchmark():
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        rules = len(re.findall(r"^rule \w+:", text, flags=re.M))
        for directive in ("log", "benchmark"):
            assert len(re.findall(rf"^    {directive}:", text, flags=re.M)) == rules, f"{smk.name}: a rule without {directive}:"


def test_default_config_runs_the_chain(checkout):
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
    model = checkout / "results/pretrain/tiny"
    rows = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 301))
    assert rows[-1]["eval_loss"] < rows[0]["loss"] - 0.5  # it learned something on the example
    assert load_model(model).config.num_hidden_layers == 2
    assert load_tokenizer(model).get_vocab() == load_tokenizer(checkout / "results/vocab/tokenizer.json").get_vocab()
    checkpoints = checkout / "results/checkpoints/tiny"
    assert sorted(p.name for p in checkpoints.glob("step-*.pt")) == ["step-00000200.pt", "step-00000300.pt"]
    task = json.loads((checkout / "results/tasks/ce1pct_splice/task.json").read_text())
    assert task["dense"] and task["core_bp"] == 2000 and task["flank_bp"] == 100
    assert set(task["contigs"]) == {"train", "dev", "test"}
    lengths = dict((name, int(length)) for name, length in fai)
    for name, model in (("ce1pct_splice", "results/pretrain/tiny"), ("ce1pct_splice_cnn", "cnn")):
        metrics = json.loads((checkout / f"results/finetune/{name}/metrics.json").read_text())
        assert metrics["head"] == "dense" and metrics["model"] == model
        assert set(metrics["test"]["labels"]) == {"donor", "acceptor"}
        calls = [line.split("\t") for line in (checkout / f"results/scan/{name}.bed").read_text().splitlines()]
        assert all(int(c[2]) == int(c[1]) + 1 <= lengths[c[0]] and c[3] in ("donor", "acceptor") and c[5] in "+-"
                   for c in calls)
        scanned = json.loads((checkout / f"results/scan/{name}.json").read_text())
        assert scanned["chunks"] == 2 and scanned["dense"] and scanned["bases"] == sum(lengths.values())
        assert sum(scanned["calls"].values()) == len(calls)
        bigwigs = sorted(p.name for p in (checkout / f"results/scan/{name}.bigwig").glob("*.bw"))
        assert bigwigs == ["acceptor.minus.bw", "acceptor.plus.bw", "donor.minus.bw", "donor.plus.bw"]
        with pyBigWig.open(str(checkout / f"results/scan/{name}.bigwig/donor.plus.bw")) as track:
            assert not np.isnan(track.values("IV", 0, lengths["IV"], numpy=True)).any()  # every base scored
        evaluation = json.loads((checkout / f"results/scan/{name}/evaluation.json").read_text())
        test_sites = sum(s.contig in task["contigs"]["test"] for s in read_annotation(GENOMES / "ce1pct.gff3.gz")
                         .splice_sites())
        assert evaluation["overall"]["sites"] == test_sites and evaluation["held_out"].endswith("tasks/ce1pct_splice")
        assert all(evaluation["labels"][label]["pr_auc"] is not None for label in ("donor", "acceptor"))
        assert len(evaluation["metaplot"]["donor"]) == 401
    # The CNN baseline learns splice sites in four CPU epochs (a site is under 0.1% of the bases).
    cnn = json.loads((checkout / "results/scan/ce1pct_splice_cnn/evaluation.json").read_text())
    assert cnn["labels"]["donor"]["pr_auc"] > 0.1
    table = (checkout / "results/report/scans.tsv").read_text().splitlines()
    assert len(table) == 5 and table[0].startswith("scan\tlabel")
    tracks = sorted((checkout / "results/scan/ce1pct_splice.bedgraph").glob("*.bedgraph"))
    assert len(tracks) == 4
    steps = ("genome/ce1pct", "vocab/vocab", "pretrain/tiny", "tasks/ce1pct_splice", "finetune/ce1pct_splice",
             "finetune/ce1pct_splice_cnn", "scan/ce1pct_splice/chunk0of2", "scan/ce1pct_splice/gather",
             "report/scans", "report/metaplot")
    for step in steps:
        assert (checkout / f"logs/{step}.log").exists() and (checkout / f"benchmarks/{step}.tsv").exists()

    again = snakemake("--cores", "2", cwd=checkout)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    report = snakemake("--report", "report.html", cwd=checkout)
    assert report.returncode == 0, report.stdout + report.stderr
    html = (checkout / "report.html").read_text()
    for shown in ("pretraining_tiny.svg", "scan_ce1pct_splice.svg", "metaplot.svg", "scans.tsv", "metrics.json",
                  "evaluation.json", "Pretraining", "Fine-tuning", "Scanning"):
        assert shown in html, shown

    # A new scan threshold reruns the scan and nothing upstream of it.
    edit_config(checkout, lambda c: c["scan"]["ce1pct_splice"].update(threshold=0.9))
    plan = snakemake("--cores", "2", "--dry-run", cwd=checkout)
    jobs = re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, flags=re.M)
    assert dict(jobs) == {"scan_chunk": "2", "scan_gather": "1", "scan_eval": "1", "plot_scan_scores": "1",
                          "scan_table": "1", "plot_metaplot": "1", "default": "1", "total": "8"}, plan.stdout

    # A VCF listed in the config is scored with the fine-tuned per-base model; nothing else reruns.
    donors = [s for s in read_annotation(checkout / "example/ce1pct.gff3.gz").splice_sites() if s.kind == "donor"][:5]
    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    with Fasta(genome) as fasta:
        rows = [f"{s.contig}\t{s.position + 1}\tsnv{i}\t{b}\t{other[b]}\t.\t.\t.\n"
                for i, s in enumerate(donors) for b in [fasta.fetch(s.contig, s.position, s.position + 1)]]
    (checkout / "snvs.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                                       + "".join(rows))
    edit_config(checkout, lambda c: c.update(variants={"snvs": {"vcf": "snvs.vcf", "model": "ce1pct_splice",
                                                                "genome": "ce1pct"}}))
    result = snakemake("--cores", "2", "results/variants/snvs.vcf.gz", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, flags=re.M)[:2] == [
        ("score_variants", "1"), ("total", "1")], result.stderr
    with pysam.VariantFile(str(checkout / "results/variants/snvs.vcf.gz")) as vcf:
        assert [r.id for r in vcf] == [f"snv{i}" for i in range(len(donors))]
        assert all("DNABERT2" in r.info for r in vcf.fetch())
    # Its index is an output: Snakemake dates it with the VCF, so htslib (which compares whole seconds)
    # finds none older than its VCF.
    scored = checkout / "results/variants/snvs.vcf.gz"
    assert int(scored.with_name(scored.name + ".csi").stat().st_mtime) >= int(scored.stat().st_mtime)
    assert not scored.with_name(scored.name + ".tbi").exists()

    # Turning a scan's bedGraph track on scans again and draws its figure from the track; more loader
    # workers for the other scan change none of its calls, and scan nothing again.
    edit_config(checkout, lambda c: c["scan"]["ce1pct_splice"].update(threshold=0.5, workers=3))
    edit_config(checkout, lambda c: c["scan"]["ce1pct_splice_cnn"].update(bedgraph=True))
    plan = snakemake("--cores", "2", "--dry-run", "--printshellcmds", cwd=checkout)
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, flags=re.M))
    assert jobs["scan_chunk"] == "2" and jobs["scan_gather"] == "1", plan.stdout
    assert "plot scores results/scan/ce1pct_splice_cnn.bedgraph" in plan.stdout


def test_the_test_case_runs_as_the_workflow_catalog_runs_it(checkout):
    result = snakemake("--cores", "2", "--directory", ".test", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    evaluation = json.loads((checkout / ".test/results/scan/splice/evaluation.json").read_text())
    assert evaluation["labels"]["donor"]["sites"] > 0 and evaluation["labels"]["donor"]["pr_auc"] is not None
    assert (checkout / ".test/results/scan/splice.bigwig/donor.plus.bw").is_file()
    assert not (checkout / "results").exists()  # everything under the test case's folder


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
        (lambda c: c["pretrain"]["tiny"].update(genomes=["mouse"]), ["pretrain.tiny.genomes", "mouse"]),
        (lambda c: c["pretrain"]["tiny"].update(weights=[1, 2]), ["pretrain.tiny.weights"]),
        (lambda c: c["pretrain"]["tiny"].update(preset="huge"), ["huge"]),
        (lambda c: c["genomes"]["ce1pct"].pop("annotation"), ["tasks.ce1pct_splice needs an annotation"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(genome="yeast"), ["tasks.ce1pct_splice.genome", "yeast"]),
        (lambda c: c["finetune"]["ce1pct_splice"].update(task="tata"), ["finetune.ce1pct_splice.task", "tata"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(dense=False), ["tasks.ce1pct_splice.core acts only with dense"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(model="splice"), ["scan.ce1pct_splice.model", "splice"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(genome="hg38"), ["scan.ce1pct_splice.genome", "hg38"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(mode="reads"), ["scan.ce1pct_splice", "needs a bam"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(treshold=0.9), ["treshold"]),
        (lambda c: c["genomes"].update(worm=dict(c["genomes"]["ce1pct"])), ["are the same genome", "list each genome once"]),
    ],
)
def test_bad_config_is_refused_before_any_job(checkout, change, words):
    edit_config(checkout, change)
    result = snakemake("--cores", "1", "--dry-run", cwd=checkout)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout + result.stderr
    assert not (checkout / "resources").exists()


def test_paths_with_spaces_reach_the_commands_whole(checkout):
    """A user's annotation, task folder or VCF under a folder with a space in its name is quoted in
    every command that reads it."""
    folder = checkout / "my data"
    shutil.copytree(checkout / "example", folder)
    (folder / "v.vcf").write_text("##fileformat=VCFv4.2\n")
    edit_config(checkout, lambda c: (c["genomes"]["ce1pct"].update(annotation="my data/ce1pct.gff3.gz"),
                                     c.update(variants={"v": {"vcf": "my data/v.vcf", "model": "ce1pct_splice_cnn",
                                                              "genome": "ce1pct"}})))
    result = snakemake("--cores", "1", "--dry-run", "--printshellcmds", "results/scan/ce1pct_splice/evaluation.json",
                       "results/variants/v.vcf.gz", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    commands = [line for line in result.stdout.splitlines() if "python -m dnabert2" in line]
    for command in ("tasks", "scan-eval", "variants"):
        line = next(c for c in commands if f"dnabert2 {command} " in c)
        assert "'my data/" in line, line


def test_a_lora_folder_on_disk_is_planned_for_scanning_and_variants(checkout):
    """A LoRA fine-tuning folder holds adapter_config.json, no config.json: the plan takes what is there
    (and its adapter weights)."""
    lora = checkout / "models" / "lora"
    lora.mkdir(parents=True)
    for name in ("adapter_config.json", "finetune.json", "adapter_model.safetensors"):
        (lora / name).write_text("{}")
    (checkout / "v.vcf").write_text("##fileformat=VCFv4.2\n")
    edit_config(checkout, lambda c: (c["scan"]["ce1pct_splice"].update(model="models/lora", held_out=False),
                                     c.update(variants={"v": {"vcf": "v.vcf", "model": "models/lora",
                                                              "genome": "ce1pct"}})))
    result = snakemake("--cores", "1", "--dry-run", "results/scan/ce1pct_splice.bed", "results/variants/v.vcf.gz",
                       cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scan_chunk" in result.stdout and "score_variants" in result.stdout


@pytest.mark.parametrize("written", ["absolute", "./models/splice"])
def test_a_model_on_disk_trained_again_in_place_reruns_its_scan(checkout, written):
    """A model folder on disk stands for its weights too: trained again in place with the same settings,
    its config.json is the same bytes (Snakemake takes a newer file of the same checksum as unchanged),
    and the scans of the old weights must not stay as if they were the new ones'. Written ./ (as the
    example configs write a folder to put there) too: it stood as the folder, whose files Snakemake
    does not see change."""
    model = scan_classifier(checkout / "models" / "splice", 60)
    name = str(model) if written == "absolute" else written
    edit_config(checkout, lambda c: (c["genomes"].update(ex1={"source": str(DATA / "bam/ex1/ex1.fa")}),
                                     c["scan"].update(ex1={"model": name, "genome": "ex1", "stride": 30})))
    result = snakemake("--cores", "2", "results/scan/ex1.bed", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing to be done" in snakemake("--cores", "1", "--dry-run", "results/scan/ex1.bed", cwd=checkout).stdout
    time.sleep(1)
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes())  # trained again
    (model / "config.json").write_text((model / "config.json").read_text())
    result = snakemake("--cores", "1", "--dry-run", "results/scan/ex1.bed", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scan_chunk" in result.stdout and "model.safetensors" in result.stdout


def test_a_file_named_like_an_output_of_no_configured_run_is_no_job_of_ours(checkout):
    """A host's own results/scan/mine.bed, or a typo: no rule of this workflow makes it (its input
    functions would look the name up in the config, and Snakemake print their KeyError)."""
    for target in ("results/scan/mine.bed", "results/scan/mine/evaluation.json", "results/variants/mine.tsv",
                   "resources/genomes/mine/genome.fa.gz", "results/evaluate/mine.tsv",
                   "results/report/scan_mine.svg", "results/report/pretraining_mine.svg", "resources/hub/lab/mine.tsv"):
        result = snakemake("--cores", "1", "--dry-run", target, cwd=checkout)
        said = result.stdout + result.stderr
        assert result.returncode != 0 and f"No rule to produce {target}" in said and "KeyError" not in said, said


def test_a_folder_this_workflow_made_before_is_taken_from_disk(checkout):
    """A model given by path into results/ (./results/finetune/old: fine-tuned under an earlier config)
    is a folder on disk, not a finetune job without settings (a KeyError from Snakemake before)."""
    old = checkout / "results" / "finetune" / "old"
    scan_classifier(old, 60)
    edit_config(checkout, lambda c: c["scan"]["ce1pct_splice"].update(model="./results/finetune/old", held_out=False))
    result = snakemake("--cores", "1", "--dry-run", "results/scan/ce1pct_splice.bed", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scan_chunk" in result.stdout and "finetune" not in result.stdout.split("Job stats")[-1]


def test_a_bams_index_is_an_input_of_its_scan(checkout):
    """A BAM a host workflow writes, and then indexes: the scan asks for the index, so that the host's
    rule runs first (and a missing one is named before any job runs, not by the scan that fails)."""
    model = scan_classifier(checkout / "models" / "splice", 60)
    sirv = DATA / "bam" / "sirv_ont"
    shutil.copy(sirv / "pcs109_5k_spliced.bam", checkout / "reads.bam")
    edit_config(checkout, lambda c: (c["genomes"].update(sirv={"source": str(sirv / "SIRV_150601a.fasta.gz")}),
                                     c["scan"].update(reads={"model": str(model), "genome": "sirv", "bam": "reads.bam",
                                                             "mode": "reads"})))
    targets = ("results/scan/reads.bed", "results/scan/reads/junctions.bed")
    result = snakemake("--cores", "1", "--dry-run", *targets, cwd=checkout)
    assert result.returncode != 0 and "reads.bam.bai" in result.stdout + result.stderr, result.stdout + result.stderr
    # Where htslib also looks: reads.bai, or a .csi (samtools index -c) as reads.csi.
    for index, csi in (("reads.bai", False), ("reads.csi", True)):
        pysam.index(str(checkout / "reads.bam"), str(checkout / index), *(["-c"] if csi else []))
        result = snakemake("--cores", "1", "--dry-run", "--printshellcmds", *targets, cwd=checkout)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "scan_chunk" in result.stdout and "scan_junctions" in result.stdout and index in result.stdout
        (checkout / index).unlink()
    # A host that will write a .csi (samtools index -c) names it: the scan waits for that one.
    edit_config(checkout, lambda c: c["scan"]["reads"].update(bam_index="reads.bam.csi"))
    result = snakemake("--cores", "1", "--dry-run", *targets, cwd=checkout)
    said = result.stdout + result.stderr
    assert result.returncode != 0 and "reads.bam.csi" in said and "reads.bam.bai" not in said, said


def test_a_scan_of_regions_reads_its_bed_as_an_input(checkout):
    """regions: of a one-contig genome, the stretches a task tests on; the BED is an input (a host's
    rule may write it, and a changed one scans again)."""
    edit_config(checkout, lambda c: c["scan"]["ce1pct_splice"].update(regions="test.bed", held_out=False))
    target = "results/scan/ce1pct_splice.bed"
    result = snakemake("--cores", "1", "--dry-run", target, cwd=checkout)
    assert result.returncode != 0 and "test.bed" in result.stdout + result.stderr, result.stdout + result.stderr
    (checkout / "test.bed").write_text("IV\t0\t50000\n")
    result = snakemake("--cores", "1", "--dry-run", "--printshellcmds", target, cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--regions test.bed" in result.stdout


def test_entered_midway_from_models_on_disk(checkout):
    """No pretraining: a model folder on disk (the released layout) is fine-tuned on a task built
    from the example genome, and a classifier folder on disk scans the SIRV nanopore reads both
    ways, in chunks, scored against the annotation."""
    torch.manual_seed(0)
    encoder = save_model(build_model(preset("tiny"), "mlm"), checkout / "models" / "encoder", load_tokenizer(TOKENIZER))
    model = scan_classifier(checkout / "models" / "splice", 60)
    sirv = DATA / "bam" / "sirv_ont"
    config = {
        "genomes": {"sirv": {"source": str(sirv / "SIRV_150601a.fasta.gz"),
                             "annotation": str(sirv / "SIRV_C_150601a.gtf.gz")},
                    "ce1pct": {"source": "example/ce1pct.fa.gz", "annotation": "example/ce1pct.gff3.gz"}},
        "tasks": {"promoter": {"genome": "ce1pct", "kind": "promoter"}},
        "finetune": {"promoter": {"model": str(encoder), "task": "promoter", "method": "full", "epochs": 1}},
        "scan": {name: {"model": str(model), "genome": "sirv", "bam": str(sirv / "pcs109_5k_spliced.bam"),
                        "mode": mode, "chunks": 2, "stride": 40, "threshold": 0.8,
                        "evaluate": True, "splice_tolerance": 10, "workers": 0, **depth}
                 for name, mode, depth in (("reads", "reads", {}), ("covered", "covered", {"min_depth": 50}))},
    }
    (checkout / "bam.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("--cores", "2", "--configfile", "bam.yaml", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (checkout / "results" / "pretrain").exists() and not (checkout / "results" / "vocab").exists()
    metrics = json.loads((checkout / "results/finetune/promoter/metrics.json").read_text())
    assert json.loads((checkout / "results/finetune/promoter/finetune.json").read_text())["base_model"] == str(encoder)
    assert set(metrics["test"]) == {"mcc", "f1", "accuracy", "auroc", "auprc"}
    assert len((checkout / "results/evaluate/promoter.tsv").read_text().splitlines()) == 3
    for name in ("reads", "covered"):
        summary = json.loads((checkout / f"results/scan/{name}.json").read_text())
        assert summary["mode"] == name and summary["chunks"] == 2
        calls = (checkout / f"results/scan/{name}.bed").read_text().splitlines()
        assert calls and len(calls) == sum(summary["calls"].values())
        evaluation = json.loads((checkout / f"results/scan/{name}/evaluation.json").read_text())
        assert set(evaluation["labels"]) == {"donor", "acceptor"} and evaluation["overall"]["sites"] > 0
        assert (checkout / f"results/report/scan_{name}.svg").stat().st_size > 0
        junctions = (checkout / f"results/scan/{name}/junctions.bed").read_text().splitlines()
        assert len(junctions) > 100 and all(j.split("\t")[3].startswith("reads=") for j in junctions)


def test_a_genome_named_twice_is_refused(checkout):
    path = checkout / "config/config.yaml"
    text = path.read_text()
    path.write_text(text.replace("genomes:\n", "genomes:\n  ce1pct:\n    source: example/other.fa.gz\n", 1))
    result = snakemake("--cores", "1", "--dry-run", cwd=checkout)
    assert result.returncode != 0 and "'ce1pct' is given twice" in result.stdout + result.stderr
    assert "config/config.yaml, line 7" in result.stdout + result.stderr  # the repeated key's line
    # The same in a JSON config given on the command line.
    (checkout / "twice.json").write_text('{"genomes": {"a": {"source": "example/ce1pct.fa.gz"}, '
                                         '"a": {"source": "example/ce1pct.fa.gz"}}}')
    result = snakemake("--cores", "1", "--dry-run", "--configfile", "twice.json", cwd=checkout)
    assert result.returncode != 0 and "'a' is given twice" in result.stdout + result.stderr


EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.yaml"))


def stand_in_inputs(checkout, config_path):
    """Empty stand-ins for the files an example config expects the user to have put on disk (an
    annotation, a BAM, a VCF, a model folder): a dry run checks the plan, not the data."""
    config = yaml.safe_load(config_path.read_text())
    paths = [g["annotation"] for g in config["genomes"].values() if "annotation" in g]
    paths += [g["source"] for g in config["genomes"].values() if ":" not in g["source"]]
    paths += [s["bam"] + suffix for s in config.get("scan", {}).values() if s.get("bam") for suffix in ("", ".bai")]
    paths += [v["vcf"] for v in config.get("variants", {}).values()]
    for path in map(checkout.joinpath, paths):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    trained = set(config.get("finetune", {})) | set(config.get("pretrain", {}))
    folders = [f["model"] for f in config.get("finetune", {}).values()]
    folders += [s["model"] for s in config.get("scan", {}).values()]
    for folder in {checkout / f for f in folders if f not in trained}:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").touch()
    return config


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_configs_plan_their_whole_chain(checkout, example):
    config = stand_in_inputs(checkout, example)
    result = snakemake("--dry-run", "--cores", "8", "--configfile", f"config/examples/{example.name}", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    # The example stands alone: none of the default config's runs come along.
    assert "ce1pct_splice" not in result.stdout or "ce1pct" in config["genomes"]
    assert int(jobs.get("pretrain", 0)) == len(config.get("pretrain", {}))
    assert int(jobs.get("scan_chunk", 0)) == sum(s.get("chunks", 1) for s in config.get("scan", {}).values())
    assert int(jobs.get("scan_eval", 0)) == sum(bool(s.get("evaluate")) for s in config.get("scan", {}).values())


def test_slurm_profile_sends_gpu_jobs_to_gpus(checkout):
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

    example = checkout / "config" / "examples" / "gpu_ensembl.yaml"
    config = yaml.safe_load(example.read_text())
    config["finetune"]["tair10_promoter"]["gpus"] = 0  # a GPU rule run on CPUs must not hold a GPU node
    example.write_text(yaml.safe_dump(config))
    stand_in_inputs(checkout, example)
    # A dry run caps threads at --cores (1 unless given); a SLURM run caps nothing. Run as the workflow
    # catalog runs it (workflow/Snakefile), where Snakemake also loads any workflow/profiles/default.
    result = snakemake("--profile", "workflow/profiles/slurm", "--dry-run", "--cores", "64", "--configfile",
                       "config/examples/gpu_ensembl.yaml", "-s", "workflow/Snakefile", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    # Where each job goes is chosen at submission: a partition given to it, else the SLURM plugin's
    # choice from the profile's partitions.
    partitions = read_partition_file(checkout / "workflow/profiles/slurm/partitions.yaml")
    jobs = {}
    for block in result.stdout.split("\nrule ")[1:]:
        resources = dict(re.findall(r"(\w+)=([^,\n]+)", re.search(r"resources: (.*)", block).group(1)))
        threads = re.search(r"threads: (\d+)", block)
        job = SimpleNamespace(name=block.split(":", 1)[0], resources=resources, text=block,
                              threads=int(threads.group(1)) if threads else 1)
        job.partition = resources.get("slurm_partition") or get_best_partition(partitions, job, logging.getLogger())
        jobs.setdefault(job.name, []).append(job)
    pretrain = jobs["pretrain"][0]
    assert pretrain.resources["gpu"] == "8" and pretrain.resources["nodes"] == "1"  # torchrun --standalone: one node
    assert pretrain.partition == "<gpu-partition>"
    assert "OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 8" in pretrain.text
    # Loader workers for each of the eight processes, from CPUs the job asks for (SLURM's --cpus-per-task).
    assert pretrain.threads == 32 and "--workers 4 " in pretrain.text
    for rule in ("finetune", "evaluate"):  # scoring a fine-tuned model goes where it was fine-tuned
        on_gpus = [job for job in jobs[rule] if "tair10_splice" in job.text]
        on_cpus = [job for job in jobs[rule] if "tair10_promoter" in job.text]
        assert on_gpus and all(job.resources["gpu"] == "1" and job.partition == "<gpu-partition>" for job in on_gpus)
        assert on_cpus and all(job.resources.get("gpu", "0") == "0" and job.partition == "<cpu-partition>"
                               for job in on_cpus)
    assert all("--device cuda" in job.text for job in jobs["evaluate"] if job.partition == "<gpu-partition>")
    assert len(jobs["scan_chunk"]) == 32
    assert all(job.resources["gpu"] == "1" and job.partition == "<gpu-partition>" for job in jobs["scan_chunk"])
    assert all("--chunk" in job.text for job in jobs["scan_chunk"])
    assert jobs["vocab"][0].partition == "<cpu-partition>" and "gpu" not in jobs["vocab"][0].resources
    # Learning BPE on 200 Mbp takes some 10 GB (about 50 MB a Mbp): the job asks for it, not a fixed 4 GB.
    assert config["vocab"]["sample_bp"] == 200_000_000 and int(jobs["vocab"][0].resources["mem_mb"]) >= 10_000


def test_missing_config_sections_take_the_schema_defaults(checkout):
    edit_config(checkout, lambda c: c.pop("vocab"))
    result = snakemake("--cores", "1", "--dry-run", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "vocab" in result.stdout


def test_a_failed_pretraining_job_resumes_from_its_checkpoints(checkout):
    # Stop the job right after its first checkpoint, as Ctrl-C or a cluster's time limit would; Snakemake
    # removes the job's outputs but not the checkpoints, and the next run continues from them.
    edit_config(checkout, lambda c: c["pretrain"]["tiny"].update(steps=400, checkpoint_every=10, batch_size=8))
    assert snakemake("--cores", "2", "results/vocab/tokenizer.json", cwd=checkout).returncode == 0
    # Only the pretraining job: other jobs of the default chain (the CNN baseline needs no pretrained
    # model) would otherwise share the cores and the moment of the interruption.
    # Snakemake hears SIGINT even where the suite was started ignoring it (conftest's
    # stops_heard_as_from_a_terminal).
    process = subprocess.Popen(["snakemake", "--cores", "2", "results/pretrain/tiny"], cwd=checkout,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    checkpoints = checkout / "results/checkpoints/tiny"
    deadline = time.time() + 300
    while not list(checkpoints.glob("step-*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: Snakemake and its job both get it
    output = process.communicate()[0]
    assert not (checkout / "results/pretrain/tiny/model.safetensors").exists(), \
        f"SIGINT in the test process: {signal.getsignal(signal.SIGINT)}\n{output}"
    assert list(checkpoints.glob("step-*.pt"))

    result = snakemake("--cores", "2", "--rerun-incomplete", "results/pretrain/tiny", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    log = (checkout / "logs/pretrain/tiny.log").read_text()
    rows = [json.loads(line) for line in (checkout / "results/pretrain/tiny/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 401))
    assert load_model(checkout / "results/pretrain/tiny").config.hidden_size == 128
    assert "resuming from results/checkpoints/tiny/step-" in log and "Traceback" not in log

    # Other settings: a fresh run, not a refusal once Snakemake has removed the finished model; the
    # checkpoints of the earlier settings go.
    edit_config(checkout, lambda c: c["pretrain"]["tiny"].update(steps=20, eval_every=10))
    result = snakemake("--cores", "2", "results/pretrain/tiny", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    log = (checkout / "logs/pretrain/tiny.log").read_text()
    assert "steps: 400 in the checkpoint, 20 now): --force, so starting afresh" in log and "resuming" not in log
    rows = [json.loads(line) for line in (checkout / "results/pretrain/tiny/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert [r["step"] for r in rows if "eval_loss" in r] == [10, 20]
    assert sorted(p.name for p in checkpoints.glob("step-*.pt")) == ["step-00000010.pt", "step-00000020.pt"]
    # Settings the run continues with (config/README) retrain nothing, nor rerun what reads the model.
    edit_config(checkout, lambda c: c["pretrain"]["tiny"].update(eval_every=5, checkpoint_every=5, compile=True))
    assert "Nothing to be done" in snakemake("--cores", "1", "--dry-run", "results/pretrain/tiny", cwd=checkout).stdout


def test_a_one_contig_genome_gets_its_task_split_by_position(checkout):
    """E. coli in the config: the genome is fetched from disk and its promoter task split along the
    chromosome, as the command does, instead of failing."""
    config = {"genomes": {"ecoli": {"source": str(DATA / "genomes" / "ecoli_k12_mg1655.fna.gz"),
                                    "annotation": str(DATA / "genomes" / "ecoli_k12_mg1655.gff.gz")}},
              "tasks": {"ecoli_promoter": {"genome": "ecoli", "kind": "promoter"}}}
    (checkout / "ecoli.yaml").write_text(yaml.safe_dump(config))
    result = snakemake("results/tasks/ecoli_promoter", "--cores", "2", "--configfile", "ecoli.yaml", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    task = json.loads((checkout / "results/tasks/ecoli_promoter/task.json").read_text())
    assert task["split"] == "positions" and task["contigs"]["test"] == ["NC_000913.3"]
    assert "splitting each contig by position" in (checkout / "logs/tasks/ecoli_promoter.log").read_text()


def test_a_model_named_by_hub_id_is_fetched_once_and_read_offline_by_the_jobs(checkout):
    edit_config(checkout, lambda c: c["finetune"]["ce1pct_splice"].update(model="zhihan1996/DNABERT-2-117M@main"))
    result = snakemake("--cores", "1", "--dry-run", "--printshellcmds", "results/scan/ce1pct_splice.bed", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    fetched = "resources/hub/zhihan1996/DNABERT-2-117M@main.tsv"
    assert f"dnabert2 fetch zhihan1996/DNABERT-2-117M@main --out {fetched}" in result.stdout
    assert re.search(rf"rule finetune:\n    input: {re.escape(fetched)}", result.stdout)
    # The job reads the commit fetched, as its TSV names it, from the cache only.
    assert f'HF_HUB_OFFLINE=1 python -m dnabert2 finetune --model "$(cut -f2 {fetched} | sed -n 2p)"' in result.stdout
    # A LoRA adapter of it finds its base in the cache: its scan is offline too.
    assert "HF_HUB_OFFLINE=1 python -m dnabert2 scan --model results/finetune/ce1pct_splice" in result.stdout
    assert "rule pretrain:" not in result.stdout  # the released model replaces the workflow's own
