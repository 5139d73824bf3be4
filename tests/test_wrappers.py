"""The Snakemake wrappers (wrappers/dnabert2/<step>) as a host pipeline calls them: each wrapper's test
Snakefile run on real data from ../shared/data, README's wrapper snippet, meta.yaml documenting what
each step takes, the test Snakefiles lint- and snakefmt-clean, and a misnamed or missing input
refused in one line before the command starts, or with wrappers/check.smk before any job runs."""

import csv
import json
import subprocess

import numpy as np
import pysam
import pytest
import yaml

from conftest import DATA, GENOMES, ROOT, TOKENIZER
from dnabert2 import load_model, load_tokenizer
from dnabert2.sequences import Fasta, read_annotation
from dnabert2.wrappers import STEPS, WrapperError, arguments, check

WRAPPERS = ROOT / "wrappers" / "dnabert2"
ANNOTATION = GENOMES / "ce1pct.gff3.gz"
SAMPLE = DATA / "classification" / "gue_format_sample"


def snakemake(*args, cwd):
    return subprocess.run(["snakemake", "--cores", "2", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def run_test(step: str, folder, **config):
    """Run the wrapper's test Snakefile in `folder` with `config`; the folder, once it succeeded."""
    folder.mkdir(parents=True, exist_ok=True)
    result = snakemake("-s", WRAPPERS / step / "test" / "Snakefile", "--config",
                       *(f"{key}={value}" for key, value in config.items()), cwd=folder)
    logs = "".join(p.read_text() for p in (folder / "logs").glob("*.log")) if (folder / "logs").is_dir() else ""
    assert result.returncode == 0, result.stdout + result.stderr + logs
    return folder


def test_every_step_has_a_wrapper_and_meta_yaml_documents_its_names():
    assert sorted(p.name for p in WRAPPERS.iterdir()) == sorted(STEPS)
    for name, step in STEPS.items():
        meta = yaml.safe_load((WRAPPERS / name / "meta.yaml").read_text())
        assert meta["name"] == f"dnabert2 {name}" and meta["description"]
        documented = {kind: [next(iter(entry)) for entry in meta[kind]] for kind in ("input", "output", "params")}
        assert documented["input"] == list(step.inputs), name
        assert set(documented["output"]) == {*step.outputs, *step.beside}, name
        assert set(documented["params"]) == {*step.params, "extra"}, name
        assert (WRAPPERS / name / "test" / "Snakefile").is_file()


def test_wrapper_snakefiles_are_lint_and_snakefmt_clean(tmp_path):
    assert subprocess.run(["snakefmt", "--check", "wrappers"], cwd=ROOT, capture_output=True).returncode == 0
    for name in STEPS:
        config = {key: "x" for key in ("source", "genome", "tokenizer", "annotation", "model", "task", "calls",
                                        "summary", "vcf", "csv", "bed")}
        result = snakemake("-s", WRAPPERS / name / "test" / "Snakefile", "--lint", "--config",
                           *(f"{k}={v}" for k, v in config.items()), cwd=tmp_path)
        assert result.returncode == 0 and "Lints for" not in result.stdout + result.stderr, \
            name + result.stdout + result.stderr


def test_download_writes_an_indexed_bgzip_genome(tmp_path):
    folder = run_test("download", tmp_path, source=GENOMES / "ce1pct.fa.gz")
    with pysam.FastaFile(str(folder / "genome.fa.gz")) as fasta, Fasta(GENOMES / "ce1pct.fa.gz") as source:
        assert fasta.references == list(source.lengths)
        assert fasta.fetch("IV", 1000, 1100) == source.fetch("IV", 1000, 1100)
    assert (folder / "genome.fa.gz.gzi").is_file()


def test_vocab_learns_a_tokenizer(tmp_path):
    folder = run_test("vocab", tmp_path, genome=GENOMES / "ce1pct.fa.gz")
    tokenizer = load_tokenizer(folder / "tokenizer.json")
    assert tokenizer.get_vocab_size() == 512
    assert json.loads((folder / "vocab.json").read_text())["vocab_size"] == 512


def test_pretrain_writes_a_model_that_loads(tmp_path, ce1pct):
    folder = run_test("pretrain", tmp_path, genome=ce1pct, tokenizer=TOKENIZER)
    model = load_model(folder / "model")
    assert sum(p.numel() for p in model.parameters()) > 0


def test_tasks_builds_a_dense_splice_task(tmp_path, ce1pct):
    folder = run_test("tasks", tmp_path, genome=ce1pct, annotation=ANNOTATION)
    task = json.loads((folder / "dense_task" / "task.json").read_text())
    assert task["labels"] and "test" in json.dumps(task)


def test_finetune_takes_a_model_by_its_config_file(tmp_path, base):
    folder = run_test("finetune", tmp_path, model=base / "config.json", task=SAMPLE)
    model = load_model(folder / "fine-tuned")
    assert model.config.num_labels == 2


def test_evaluate_scores_a_model_beside_the_kmer_baseline(tmp_path, base):
    folder = run_test("evaluate", tmp_path, model=base, task=SAMPLE)
    with open(folder / "evaluation.tsv") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    assert {row["task"] for row in rows} == {"gue_format_sample"} and len(rows) >= 2
    assert (folder / "evaluation.md").is_file()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, cnn, ce1pct):
    return run_test("scan", tmp_path_factory.mktemp("scan"), model=cnn, genome=ce1pct)


def test_scan_calls_sites_and_writes_tracks(scanned):
    calls = [line.split("\t") for line in (scanned / "calls.bed").read_text().splitlines()]
    assert calls and {c[0] for c in calls} == {"IV"} and {c[5] for c in calls} == {"+", "-"}
    assert sorted(p.name for p in (scanned / "tracks").iterdir())
    summary = json.loads((scanned / "calls.json").read_text())
    assert sum(summary["calls"].values()) == len(calls)


def test_scan_eval_scores_the_calls_against_the_annotation(scanned, tmp_path):
    folder = run_test("scan-eval", tmp_path, calls=scanned / "calls.bed", summary=scanned / "calls.json",
                      annotation=ANNOTATION)
    report = json.loads((folder / "evaluation.json").read_text())
    assert report["labels"]["donor"]["sites"] > 0 and report["labels"]["donor"]["recall"] > 0


def test_variants_annotates_a_vcf(tmp_path, cnn, ce1pct):
    sites = [s for s in read_annotation(ANNOTATION).splice_sites() if s.contig == "IV"][:3]
    with Fasta(ce1pct) as genome:
        records = [(s.position, genome.fetch("IV", s.position, s.position + 1)) for s in sites]
    vcf = tmp_path / "in.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "".join(
        f"IV\t{p + 1}\t.\t{ref}\t{'C' if ref != 'C' else 'A'}\t.\t.\t.\n" for p, ref in sorted(records)))
    folder = run_test("variants", tmp_path / "run", model=cnn, vcf=vcf, genome=ce1pct)
    with pysam.VariantFile(str(folder / "scored.vcf.gz")) as scored:
        assert [r.info["DNABERT2"] for r in scored] and len(list(scored.fetch("IV"))) == len(records)


def test_embed_writes_a_vector_per_sequence(tmp_path, base):
    folder = run_test("embed", tmp_path, model=base, csv=SAMPLE / "test.csv")
    with np.load(folder / "embeddings.npz") as arrays:
        vectors = [arrays[k] for k in arrays.files if arrays[k].ndim == 2][0]
    assert vectors.shape[0] == 15 and np.isfinite(vectors).all()


def test_predict_scores_bed_regions(tmp_path, cnn, ce1pct):
    bed = tmp_path / "regions.bed"
    bed.write_text("IV\t10000\t11500\tfirst\t0\t+\nIV\t20000\t21500\tsecond\t0\t-\n")
    folder = run_test("predict", tmp_path / "run", model=cnn, bed=bed, genome=ce1pct)
    rows = list(csv.DictReader(open(folder / "predictions.tsv"), delimiter="\t"))
    assert [row["id"] for row in rows] == ["first", "second"]


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    snippet = [block.split("```", 1)[0] for block in text.split("```snakemake\n")[1:]
               if "wrapper:" in block.split("```", 1)[0]]
    assert len(snippet) == 1, "README has one wrapper snippet"
    assert "file:path/to/dnabert2/wrappers/dnabert2/scan" in snippet[0]
    return snippet[0]


def host(folder, rule: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Snakefile").write_text(rule.replace("path/to/dnabert2", str(ROOT)))
    return folder


def test_readme_wrapper_snippet_runs(tmp_path, cnn, ce1pct):
    folder = host(tmp_path, readme_snippet())
    (folder / "models").mkdir()
    (folder / "models" / "splice").symlink_to(cnn)
    (folder / "resources").mkdir()
    for suffix in ("", ".fai", ".gzi"):
        (folder / "resources" / f"genome.fa.gz{suffix}").symlink_to(f"{ce1pct}{suffix}")
    result = snakemake(cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "results" / "splice.bed").read_text()


def test_a_misnamed_input_is_refused_in_one_line_before_the_command_runs(tmp_path, cnn, ce1pct):
    rule = (WRAPPERS / "scan" / "test" / "Snakefile").read_text()
    folder = host(tmp_path, rule.replace("genome=config", "fasta=config").replace(
        'f"file:{workflow.basedir}/.."', f'"file:{WRAPPERS / "scan"}"'))
    result = snakemake("--config", f"model={cnn}", f"genome={ce1pct}", cwd=folder)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    errors = [line for line in said.splitlines() if "wrapper: error:" in line]
    assert errors == ["dnabert2 scan wrapper: error: unknown named input fasta; it takes model, genome, bam, "
                      "reference, regions"], said
    assert "Traceback" not in said and not (folder / "calls.bed").exists()


def test_a_missing_input_is_refused_before_any_job_runs_with_check_included(tmp_path):
    # wrappers/check.smk, included last, checks every wrapper rule as the workflow is read: the host's
    # own upstream rule never runs, and a dry run fails the same way.
    folder = host(tmp_path, """
rule genome:
    output:
        "resources/genome.fa",
    shell:
        "echo '>a' > {output}; echo ACGT >> {output}"


rule splice_sites:
    input:
        model="models/splice",
        reference=rules.genome.output[0],
    output:
        calls="results/splice.bed",
    wrapper:
        "file:path/to/dnabert2/wrappers/dnabert2/scan"


include: "path/to/dnabert2/wrappers/check.smk"
""")
    for dry in ((), ("--dry-run",)):
        result = snakemake(*dry, cwd=folder)
        assert result.returncode == 1
        assert (result.stdout + result.stderr).strip() == "rule splice_sites: dnabert2 scan wrapper: error: no named " \
            "input genome, or bam and reference"
        assert not (folder / "resources").exists()


@pytest.mark.parametrize("inputs, outputs, params, words", [
    ({"genome": "g"}, {"calls": "c"}, {}, "no named input model"),
    ({"model": "m"}, {"calls": "c"}, {}, "no named input genome, or bam and reference"),
    ({"model": "m", "bam": "b"}, {"calls": "c"}, {}, "no named input genome, or bam and reference"),
    ({"model": "m", "genome": "g"}, {"summary": "s"}, {}, "no named output calls"),
    ({"model": "m", "genome": "g"}, {"calls": "c"}, {"model": "o/n"}, "model given both as input and as param"),
    ({"model": "m", "genome": "g"}, {"calls": "c"}, {"threshold": 0.5}, "unknown named param threshold"),
    # Two files for an option that keeps one: the command would read the last alone, unsaid.
    ({"model": "m", "genome": ["g1", "g2"]}, {"calls": "c"}, {}, "input genome names 2 values; the command takes one"),
    # extra's options the wrapper gives itself: the command took the last (--out x.bed: a file Snakemake
    # did not know of, its output missing), or wrote a folder no rule names.
    ({"model": "m", "genome": "g"}, {"calls": "c"}, {"extra": "--threshold 0.5 --out x.bed"},
     "param extra gives --out, which the wrapper gives from the named output calls"),
    ({"model": "m", "genome": "g"}, {"calls": "c"}, {"extra": "--bigwig=bw"}, "gives --bigwig, which the wrapper gives"),
    ({"model": "m", "genome": "g"}, {"calls": "c"}, {"extra": "--fasta other.fa"}, "from the named input genome"),
    ({"model": "m", "genome": "g"}, {"calls": "c"}, {"extra": "--workers 4"}, "from the rule's threads"),
    ({"model": "m", "genome": "g"}, {"calls": "c"}, {"extra": "--labels 'donor"}, "param extra .*: No closing quotation"),
])
def test_check_names_what_is_missing_or_unknown(inputs, outputs, params, words):
    with pytest.raises(WrapperError, match=words):
        check(STEPS["scan"], inputs, outputs, params)


def test_a_task_kind_the_command_lacks_is_refused_before_it_runs():
    with pytest.raises(WrapperError, match="param kind 'tss': choose one of promoter, core-promoter, splice, tts"):
        check(STEPS["tasks"], {"genome": "g", "annotation": "a"}, {"task": "t"}, {"kind": "tss"})


def test_genomes_may_be_several_where_the_command_takes_several():
    check(STEPS["vocab"], {"genomes": ["a.fa", "b.fa"]}, {"tokenizer": "t.json"}, {})


def test_side_outputs_must_lie_where_the_command_writes_them():
    with pytest.raises(WrapperError, match="it must be out.vcf.gz.tbi"):
        check(STEPS["variants"], {"model": "m", "vcf": "v", "genome": "g"}, {"vcf": "out.vcf.gz", "tbi": "x.tbi"}, {})
    # The index a rule names is the one the command is asked for (else it picks one by the positions).
    variants = {"model": "m", "vcf": "v", "genome": "g"}
    for index in ("tbi", "csi"):
        words = arguments(STEPS["variants"], variants, {"vcf": "o.vcf.gz", index: f"o.vcf.gz.{index}"}, {}, 1)
        assert words[-2:] == ["--index", index]
    with pytest.raises(WrapperError, match="outputs csi and tbi: the command writes one of them"):
        check(STEPS["variants"], variants, {"vcf": "o.vcf.gz", "tbi": "o.vcf.gz.tbi", "csi": "o.vcf.gz.csi"}, {})
    with pytest.raises(WrapperError, match="param extra gives --index, which the wrapper gives from the named output"):
        check(STEPS["variants"], variants, {"vcf": "o.vcf.gz", "csi": "o.vcf.gz.csi"}, {"extra": "--index tbi"})
    check(STEPS["scan"], {"genome": "g"}, {"calls": "c"}, {"model": "owner/name"})  # a Hub id as a param
    # extra's own options, and those of inputs the rule does not name, go through.
    check(STEPS["scan"], {"genome": "g", "model": "m"}, {"calls": "c"}, {"extra": "--threshold 0.5 --regions r.bed"})
