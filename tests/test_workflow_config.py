"""The workflow's config checks and rule options (dnabert2/workflow_config.py), without Snakemake:
duplicate keys, the schema completed from the task registry, defaults against the commands'
settings, cross-references, and options that the commands parse back into the same settings."""

import copy
import dataclasses
import re
import shlex
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from dnabert2 import workflow_config as wc
from dnabert2.cli import build_parser
from dnabert2.options import settings_from
from dnabert2.settings import (PRESET_NAMES, FinetuneSettings, JunctionsSettings, PretrainSettings, ScanEvalSettings,
                               ScanSettings, TaskSettings, VariantSettings, VocabSettings)
from dnabert2.tasks.registry import KINDS, TOLERANCES

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def checked(config: dict) -> dict:
    config = copy.deepcopy(config)
    wc.check(config, SCHEMA)
    return config


def refused(config: dict, *words: str) -> str:
    with pytest.raises(ValueError) as error:
        wc.check(copy.deepcopy(config), SCHEMA)
    message = str(error.value)
    assert message.startswith("config:") and "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_the_default_config_passes_and_gets_every_default():
    config = checked(DEFAULT)
    assert config["pretrain"]["tiny"]["batch_tokens"] == 32768
    assert config["scan"]["ce1pct_splice"]["tts_tolerance"] == 100
    assert config["finetune"]["ce1pct_splice"]["seeds"] == [0]


def test_the_schema_takes_its_task_kinds_and_tolerances_from_the_registry():
    schema = wc.schema(SCHEMA)
    kind = schema["properties"]["tasks"]["additionalProperties"]["properties"]["kind"]
    assert kind["enum"] == list(KINDS) and "tts" in kind["enum"]
    scan = schema["properties"]["scan"]["additionalProperties"]["properties"]
    assert {f"{name}_tolerance" for name in TOLERANCES} <= set(scan)
    config = copy.deepcopy(DEFAULT)
    config["tasks"]["ends"] = {"genome": "ce1pct", "kind": "tts"}
    assert checked(config)["tasks"]["ends"]["negatives"] == "genomic"
    config["tasks"]["ends"]["kind"] = "enhancer"
    refused(config, "tasks.ends.kind", "enhancer")


# Where the workflow's default differs from the command's, and why.
WORKFLOW_DEFAULTS = {
    ("pretrain", "eval_every"): "a long run is evaluated on its way, not only at the end",
    ("pretrain", "checkpoint_every"): "a failed job resumes from its latest checkpoint",
    ("scan", "min_depth"): "the depth of covered mode; the command has it only with --covered",
    ("scan", "workers"): "a job's threads are its workers and one; the command takes the cores it finds",
}
SECTIONS = {"vocab": VocabSettings, "pretrain": PretrainSettings, "tasks": TaskSettings,
            "finetune": FinetuneSettings, "scan": ScanSettings, "variants": VariantSettings}


@pytest.mark.parametrize("section", SECTIONS)
def test_schema_defaults_are_the_commands_defaults(section):
    schema = wc.schema(SCHEMA)["properties"][section]
    properties = (schema.get("additionalProperties") or schema)["properties"]
    fields = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
    if section == "scan":
        fields |= {f.name: f for f in dataclasses.fields(ScanEvalSettings)}
    shared = sorted(set(properties) & set(fields))
    assert shared, section
    for name in shared:
        field = fields[name]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if (section, name) in WORKFLOW_DEFAULTS:
            assert properties[name]["default"] != default, f"{section}.{name}: the same now; drop the exception"
            continue
        assert none_given(properties[name]["default"]) == none_given(default), \
            f"{section}.{name}: schema {properties[name]['default']!r}, command {default!r}"
    if section == "pretrain":
        assert properties["preset"]["enum"] == list(PRESET_NAMES)


def none_given(value):
    """No value and an empty list both mean that none was given."""
    return None if value == [] else value


def test_config_readme_explains_every_key_in_its_section():
    """The schema sends users to config/README.md for every key: each is there, in its own section."""
    text = (ROOT / "config" / "README.md").read_text()
    sections = dict(re.findall(r"^## `(\w+)`\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S))
    missing = []
    for name, section in wc.schema(SCHEMA)["properties"].items():
        inner = section.get("additionalProperties")
        keys = (inner if isinstance(inner, dict) else section).get("properties", {})
        missing += [f"{name}.{key}" for key in keys if f"`{key}`" not in sections.get(name, "")]
    assert not missing, f"keys config/README.md does not explain: {', '.join(missing)}"


def test_a_task_folder_whose_task_json_is_unreadable_is_planned_as_a_window_task(tmp_path):
    """Planning reads task.json for a task folder on disk; one it cannot read leaves the job to say
    what is wrong in one line, not Snakemake's stack."""
    for text, dense in (('{"dense": true}', True), ("[]", False), ('\ufeff{"dense": true}', True), ("", False)):
        (tmp_path / "task.json").write_text(text)
        assert wc.is_dense_task({"tasks": {}}, str(tmp_path)) is dense, text


def test_presets_named_in_the_settings_are_the_models():
    from dnabert2.model import PRESETS

    assert tuple(PRESETS) == PRESET_NAMES


def parsed(command: str, words: str, cls):
    """What the command makes of the options, as its settings dataclass."""
    required = {"pretrain": "--genome g.fa --tokenizer t.json --out o", "tasks": "promoter --genome g --annotation a --out o",
                "finetune": "--model m --data d --out o", "scan": "--model m --out o.bed",
                "scan-eval": "--calls c --annotation a", "vocab": "--genome g --out o",
                "variants": "--model m --vcf v --fasta f --out o.vcf.gz", "junctions": "--bam b --out o.bed"}[command]
    args = build_parser(command).parse_args([command, *shlex.split(required), *shlex.split(words)])
    return settings_from(args, cls)


def test_rule_options_parse_back_into_the_config_settings(tmp_path):
    config = checked(DEFAULT)
    pretrain = config["pretrain"]["tiny"] | {"weights": [2, 1], "heldout_contigs": ["V", "X"]}
    settings = parsed("pretrain", wc.pretrain_options(pretrain) + " " + wc.pretrain_options(pretrain, continuing=True),
                      PretrainSettings)
    for key in ("preset", "steps", "batch_size", "window_tokens", "batch_tokens", "lr", "warmup", "eval_every",
                "eval_windows", "checkpoint_every", "seed", "weights", "heldout_contigs"):
        assert getattr(settings, key) == pretrain[key], key
    assert settings.device == "cpu"
    # Without held-out contigs there is nothing to evaluate, and pretrain refuses --eval-every.
    assert "--eval-every" not in wc.pretrain_options(pretrain | {"heldout_contigs": []}, continuing=True)
    # Apart from the options that shape the run (a rerun trigger): those the run continues with.
    assert "--checkpoint-every" not in wc.pretrain_options(pretrain) and "--steps" in wc.pretrain_options(pretrain)
    # The vocabulary is learned without the contigs pretraining holds out for its evaluation.
    assert parsed("vocab", wc.vocab_options(config), VocabSettings) == VocabSettings(
        **{k: v for k, v in config["vocab"].items() if k != "genomes"}, heldout_contigs=["V"])
    task = {"genome": "ce1pct", "kind": "splice", "test_contigs": ["IV"], "dev_contigs": [], "negatives": "genomic",
            "seed": 3}
    assert parsed("tasks", wc.task_options(task), TaskSettings) == TaskSettings(test_contigs=["IV"], seed=3)
    chosen = {"biotypes": ["mRNA", "lnc_RNA"], "tags": ["MANE Select", "basic"]}
    assert parsed("tasks", wc.task_options(task | chosen), TaskSettings) == TaskSettings(test_contigs=["IV"], seed=3,
                                                                                          **chosen)
    # Only the options that act on the kind of task: not a dense task's to a task of windows, nor a
    # splice task's shortest intron to a promoter task.
    filled = checked({**DEFAULT, "tasks": {**DEFAULT["tasks"], "p": {"genome": "ce1pct", "kind": "promoter"},
                                           "d": {"genome": "ce1pct", "kind": "splice", "dense": True}}})["tasks"]
    assert not {"--min-intron", "--core", "--flank", "--empty-rate"} & set(shlex.split(wc.task_options(filled["p"])))
    assert "--negatives" not in wc.task_options(filled["d"]) and "--core" in wc.task_options(filled["d"])
    finetune = config["finetune"]["ce1pct_splice"] | {"gpus": 1, "seeds": [0, 1], "patience": 5}
    settings = parsed("finetune", wc.finetune_options(finetune), FinetuneSettings)
    assert (settings.method, settings.epochs, settings.lr, settings.seeds, settings.patience, settings.device) == (
        "auto", 4, None, [0, 1], 5, "cuda")
    for method in ("lora", "full"):
        assert parsed("finetune", wc.finetune_options(finetune | {"method": method}), FinetuneSettings).method == method
    # The CNN baseline's run gets the options `cnn` takes, and only those.
    cnn = config["finetune"]["ce1pct_splice_cnn"] | {"lr": 0.002, "seeds": [1, 2]}
    args = build_parser("cnn").parse_args(["cnn", "--data", "d", "--out", "o", *shlex.split(wc.finetune_options(cnn))])
    assert (args.epochs, args.batch_size, args.lr, args.seeds, args.device) == (4, 8, 0.002, [1, 2], "cpu")
    (tmp_path / "v.vcf").write_text("##fileformat=VCFv4.2\n")
    variants = checked({**DEFAULT, "variants": {"v": {"vcf": str(tmp_path / "v.vcf"), "model": "ce1pct_splice", "genome": "ce1pct",
                                                      "distance": 200, "gpus": 1}}})["variants"]["v"]
    settings = parsed("variants", wc.variant_options(variants), VariantSettings)
    assert (settings.distance, settings.info_key, settings.device) == (200, "DNABERT2", "cuda")


@pytest.mark.parametrize("mode", ["fasta", "reads", "covered"])
def test_scan_options_per_mode(mode):
    config = checked(DEFAULT)
    scan = config["scan"]["ce1pct_splice"] | {"mode": mode, "top_k": 50, "labels": ["promoter"], "stride": 75,
                                               "min_depth": 7, "min_mapq": 20, "min_reads": 3, "tss_tolerance": 20}
    settings = parsed("scan", wc.scan_options(scan), ScanSettings)
    assert settings.min_depth == (7 if mode == "covered" else None)
    assert (settings.min_mapq, settings.min_reads) == {"fasta": (0, 1), "reads": (20, 3), "covered": (20, 1)}[mode]
    assert settings.top_k is None  # ranked once, when the chunks are gathered
    assert "--workers" not in wc.scan_options(scan)  # the rule's, from the job's threads
    assert (settings.labels, settings.stride, settings.threshold) == (["promoter"], 75, 0.5)
    assert wc.gather_options(scan) == "--top-k 50"
    # The junctions beside a BAM scan are those of the contigs it reads.
    assert parsed("junctions", wc.junction_options(scan | {"contigs": ["I", "chr 2"]}), JunctionsSettings).contigs == \
        ["I", "chr 2"]
    assert wc.junction_options(scan | {"contigs": []}) == "--min-mapq 20"
    assert parsed("junctions", wc.junction_options(scan | {"regions": "test.bed"}), JunctionsSettings).regions == \
        Path("test.bed")
    evaluation = parsed("scan-eval", wc.scan_eval_options(scan), ScanEvalSettings)
    assert (evaluation.tss_tolerance, evaluation.splice_tolerance, evaluation.contigs) == (20, 0, None)
    assert evaluation.biotypes is evaluation.tags is None
    evaluation = parsed("scan-eval", wc.scan_eval_options(scan | {"biotypes": ["mRNA"], "tags": ["MANE Select"]}),
                        ScanEvalSettings)
    assert (evaluation.biotypes, evaluation.tags) == (["mRNA"], ["MANE Select"])


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("genomes:\n  a:\n    source: x.fa\n  a:\n    source: y.fa\n")
    with pytest.raises(ValueError, match=r"'a' is given twice .*config.yaml, line 4"):
        wc.refuse_repeated_keys(path)
    path = tmp_path / "config.json"
    path.write_text('{"genomes": {"a": {"source": "x"}, "a": {"source": "y"}}}')
    with pytest.raises(ValueError, match="'a' is given twice"):
        wc.refuse_repeated_keys(path)
    path.write_text('{"genomes": {"a": {"source": "x"}, "b": {"source": "y"}}}')
    wc.refuse_repeated_keys(path)


def window_task(config: dict) -> None:
    """The default config's task as a task of windows (without the dense-only keys)."""
    task = config["tasks"]["ce1pct_splice"]
    task.update(dense=False)
    for key in ("core", "flank"):
        task.pop(key)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: c["vocab"].update(vocab_sise=100), ["vocab: unknown key 'vocab_sise'", "allowed here", "vocab_size"]),
        (lambda c: c["vocab"].update(vocab_size=5), ["vocab.vocab_size", "minimum"]),
        (lambda c: c["pretrain"]["tiny"].update(max_tokens=4096), ["pretrain.tiny.max_tokens is now called batch_tokens"]),
        (lambda c: c["pretrain"]["tiny"].update(preset="huge"), ["pretrain.tiny.preset", "huge"]),
        (lambda c: c["pretrain"]["tiny"].update(genomes=["mouse"]), ["pretrain.tiny.genomes", "mouse"]),
        (lambda c: c["pretrain"]["tiny"].update(weights=[1, 2]), ["pretrain.tiny.weights"]),
        (lambda c: c["pretrain"]["tiny"].update(genomes=["ce1pct", "ce1pct"]), ["pretrain.tiny.genomes",
                                                                               "non-unique"]),
        (lambda c: c["vocab"].update(genomes=["ce1pct", "ce1pct"]), ["vocab.genomes", "non-unique"]),
        (lambda c: c["pretrain"]["tiny"].update(lr="5e-4"), ["pretrain.tiny.lr: YAML reads 5e-4 as text", "as 5.0e-4"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(test_contigs=[5]),
         ["tasks.ce1pct_splice.test_contigs.0: YAML reads 5 as a number; quote it, as \"5\""]),
        (lambda c: c.update(pretrain=None), ["config: pretrain is empty"]),
        (lambda c: c["finetune"]["ce1pct_splice"].update(lr="1e-4"),  # a number or null
         ["finetune.ce1pct_splice.lr: YAML reads 1e-4 as text", "as 1.0e-4"]),
        (lambda c: c["pretrain"]["tiny"].update(steps="1e5"), ["pretrain.tiny.steps: '1e5' is not of type 'integer'"]),
        (lambda c: (c["genomes"].update(lam={"source": "lambda.fa"}), c["vocab"].update(genomes=["ce1pct"]),
                    c["pretrain"]["tiny"].update(heldout_contigs=["V"])),
         ["pretrain.tiny holds contigs out and trains on ce1pct, lam", "vocab.genomes has only ce1pct"]),
        (lambda c: c["scan"].update({"-s": c["scan"]["ce1pct_splice"]}), ["scan: '-s' cannot be a name", "no - first"]),
        (lambda c: c["tasks"].update({"-t": c["tasks"]["ce1pct_splice"]}), ["tasks: '-t' cannot be a name"]),
        (lambda c: c["genomes"]["ce1pct"].pop("annotation"), ["tasks.ce1pct_splice needs an annotation"]),
        (lambda c: c["genomes"].update(worm=dict(c["genomes"]["ce1pct"])), ["are the same genome"]),
        (lambda c: c["finetune"]["ce1pct_splice"].update(model="nowhere"), ["finetune.ce1pct_splice.model"]),
        (lambda c: c["finetune"]["ce1pct_splice"].update(model="models/gone/tiny"), ["finetune.ce1pct_splice.model",
                                                                                     "Hugging Face Hub id"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(mode="reads"), ["mode reads needs a bam"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(bam="reads.bam"), ["mode fasta scans no bam"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(bam="r.bam", mode="reads"), ["reads mode has none"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(bam="r.bam", mode="reads", bedgraph=False, bigwig=False,
                                                     merge=True), ["merge joins windows", "reads mode"]),
        (lambda c: (window_task(c), c["finetune"].pop("ce1pct_splice_cnn"), c["scan"].pop("ce1pct_splice_cnn"),
                    c["scan"]["ce1pct_splice"].update(bam="r.bam", mode="reads", bedgraph=False, bigwig=False,
                                                      min_distance=50)), ["min_distance", "reads mode"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(genome="hg38"), ["scan.ce1pct_splice.genome", "hg38"]),
        (lambda c: window_task(c), ["finetune.ce1pct_splice_cnn", "dense task"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(model="lab/splice"), ["scan.ce1pct_splice.held_out",
                                                                           "finetune name"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(model="example"), ["scan.ce1pct_splice.model 'example' is a "
                                                                        "folder without config.json"]),
        (lambda c: c["finetune"]["ce1pct_splice"].update(task="example"), ["finetune.ce1pct_splice.task 'example' is "
                                                                           "a folder without train.csv"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(core=0), ["tasks.ce1pct_splice.core", "minimum"]),
        (lambda c: c.update(variants={"v": {"vcf": "v.vcf", "model": "ce1pct_splice", "genome": "hg38"}}),
         ["variants.v.genome", "hg38"]),
        (lambda c: c.update(variants={"v": {"vcf": "v.vcf", "model": "nowhere", "genome": "ce1pct"}}),
         ["variants.v.model", "nowhere"]),
        (lambda c: (window_task(c), c["finetune"].pop("ce1pct_splice_cnn"),
                    c["scan"].clear(), c.update(variants={"v": {"vcf": "v.vcf", "model": "ce1pct_splice",
                                                                "genome": "ce1pct"}})),
         ["variants.v.model", "window task", "per-base model"]),
        (lambda c: c["genomes"].update({"..": {"source": "example/ce1pct.fa.gz"}}), ["genomes: '..' cannot be a name",
                                                                                     "not dots alone"]),
        (lambda c: c["tasks"].update({True: c["tasks"]["ce1pct_splice"]}), ["tasks: True cannot be a name", "quote"]),
        (lambda c: c["scan"].update({"ce1pct_splice.bigwig": c["scan"]["ce1pct_splice"]}),
         ["scan: 'ce1pct_splice.bigwig' cannot be a name", "no dots"]),
        (lambda c: c["vocab"].update(vocab_size=4096.0), ["vocab.vocab_size", "not of type 'integer'"]),
        (lambda c: c["pretrain"]["tiny"].update(window_tokens=128, batch_tokens=64),
         ["pretrain.tiny: batch tokens 64 cannot hold a window of 128 tokens"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(evaluate=False), ["scan.ce1pct_splice.held_out", "evaluate: true"]),
        (lambda c: c["genomes"]["ce1pct"].update(source="example"), ["genomes.ce1pct.source: 'example' is a folder"]),
        (lambda c: c["genomes"]["ce1pct"].update(source="foo:bar"), ["genomes.ce1pct.source", "unknown source 'foo:bar'"]),
        (lambda c: c["genomes"]["ce1pct"].update(source="ensembl:homo_sapiens:latest"), ["bad Ensembl source"]),
        (lambda c: c["genomes"]["ce1pct"].update(source="https:///genome.fa.gz"), ["a https URL names a server"]),
        (lambda c: c["genomes"]["ce1pct"].update(annotation="example"), ["genomes.ce1pct.annotation", "a folder"]),
        (lambda c: c.update(variants={"v": {"vcf": "example", "model": "ce1pct_splice_cnn", "genome": "ce1pct"}}),
         ["variants.v.vcf: 'example' is a folder"]),
        (lambda c: c["finetune"]["ce1pct_splice"].update(model="example/tiny-model"),
         ["finetune.ce1pct_splice.model 'example/tiny-model' is neither"]),
        (lambda c: c.update(variants={"v": {"vcf": "v.vcf", "model": "ce1pct_splice_cnn", "genome": "ce1pct",
                                            "info_key": "1KG"}}), ["variants.v.info_key: '1KG' is not allowed", "not starting with a digit"]),
        (lambda c: c.update(variants={"v": {"vcf": "v.vcf", "model": "ce1pct_splice_cnn", "genome": "ce1pct",
                                            "info_key": "END"}}), ["variants.v.info_key: 'END' is not allowed", "not END"]),
        # Keys that would be ignored, and settings the job would refuse only once it ran.
        (lambda c: c["tasks"]["ce1pct_splice"].pop("dense"), ["tasks.ce1pct_splice.core acts only with dense: true"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(dense="true"), ["tasks.ce1pct_splice.dense", "boolean"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(negatives="shuffled"),
         ["tasks.ce1pct_splice.negatives acts only with a task of windows"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(kind="promoter", min_intron=50),
         ["tasks.ce1pct_splice.min_intron acts only with a task of splice sites"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(min_depth=3), ["scan.ce1pct_splice.min_depth acts only with "
                                                                    "mode: covered"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(min_mapq=20), ["scan.ce1pct_splice.min_mapq acts only with a bam"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(kind="tss"),
         ["tasks.ce1pct_splice.kind: 'tss' is not one of promoter, core-promoter, splice, tts", "around TSSs"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(regions="r.bed", contigs=["IV"]),
         ["scan.ce1pct_splice: give regions or contigs, not both"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(regions="example"), ["scan.ce1pct_splice.regions: 'example' is a folder"]),
        (lambda c: c["vocab"].update(vocab_size=2_000_000), ["vocab.vocab_size", "1048576"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(bam_index="x.bam.csi"),
         ["scan.ce1pct_splice.bam_index acts only with a bam"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(bam="x.bam", mode="covered", bam_index="idx/x.bam.csi"),
         ["scan.ce1pct_splice.bam_index: htslib looks for the index of x.bam beside it", "x.bam.bai, x.bam.csi",
          "'idx/x.bam.csi' is none of these"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(bam="x.bam", mode="covered", min_reads=2),
         ["scan.ce1pct_splice.min_reads acts only with mode: reads"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(merge=True, min_distance=50),
         ["scan.ce1pct_splice.min_distance acts only with peak calling (not merge: true)"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(evaluate=False, held_out=False, splice_tolerance=5),
         ["scan.ce1pct_splice.splice_tolerance acts only with evaluate: true"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(tss_tolerance=50),
         ["scan.ce1pct_splice.tss_tolerance: its model calls splice sites, matched with splice_tolerance"]),
        (lambda c: (c["tasks"]["ce1pct_splice"].update(kind="promoter"), c["scan"]["ce1pct_splice"].update(min_intron=30)),
         ["scan.ce1pct_splice.min_intron: its model calls promoter sites, not splice sites"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(evaluate=False, held_out=False, biotypes=["protein_coding"]),
         ["scan.ce1pct_splice.biotypes acts only with evaluate: true"]),
        (lambda c: c["pretrain"]["tiny"].pop("heldout_contigs"), ["pretrain.tiny.eval_every acts only with "
                                                                   "heldout_contigs"]),
        (lambda c: (c.pop("pretrain"), c["finetune"]["ce1pct_splice"].update(model="lab/dna-model")),
         ["vocab acts only with pretrain runs"]),
        (lambda c: c["genomes"]["ce1pct"].update(sha256="a" * 64, md5="b" * 32), ["genomes.ce1pct", "not both"]),
        (lambda c: c["pretrain"]["tiny"].update(gpus=3), ["pretrain.tiny: batch_size 32", "over 3 GPUs"]),
        (lambda c: (window_task(c), c["tasks"]["ce1pct_splice"].update(negatives="shuffled")),
         ["tasks.ce1pct_splice.negatives: splice negatives must be 'genomic', not 'shuffled'"]),
        (lambda c: c["tasks"]["ce1pct_splice"].update(test_contigs=["IV"], dev_contigs=["IV"]),
         ["tasks.ce1pct_splice: contig IV is in both test_contigs and dev_contigs"]),
        (lambda c: c["scan"]["ce1pct_splice"].update(labels=["foo"]), ["scan.ce1pct_splice.labels: 'foo'",
                                                                      "neither, donor, acceptor"]),
        # A held-out evaluation that could see none of the test split.
        (lambda c: (c["tasks"]["ce1pct_splice"].update(test_contigs=["IV"]),
                    c["scan"]["ce1pct_splice"].update(contigs=["III"])),
         ["scan.ce1pct_splice.held_out", "contigs (III) hold none of", "test contigs (IV)"]),
        (lambda c: (c["genomes"].update(worm={"source": "other.fa.gz", "annotation": "other.gff3"}),
                    c["scan"]["ce1pct_splice"].update(genome="worm")),
         ["scan.ce1pct_splice.held_out: the scan is of genome 'worm'", "task 'ce1pct_splice' of 'ce1pct'"]),
    ],
)
def test_bad_configs_get_one_line_naming_the_key(change, words):
    config = copy.deepcopy(DEFAULT)
    change(config)
    refused(config, *words)


def test_a_scan_scored_against_a_genome_without_annotation_is_refused():
    config = copy.deepcopy(DEFAULT)
    config["genomes"]["bare"] = {"source": "example/bare.fa.gz"}
    config["scan"]["ce1pct_splice"]["genome"] = "bare"
    refused(config, "scan.ce1pct_splice.evaluate needs an annotation", "bare")


def test_remote_genome_sources_are_not_looked_for_here():
    config = copy.deepcopy(DEFAULT)
    for i, source in enumerate(["ensembl:homo_sapiens:112:GRCh38", "ucsc:hg38", "ncbi:GCF_000001405.40",
                                "https://example.org/g.fa.gz", "ftp://example.org/g.fa.gz"]):
        config["genomes"][f"g{i}"] = {"source": source}
    checked(config)


def test_a_model_folder_on_disk_stands_for_its_config_and_weights(tmp_path):
    """A LoRA fine-tuning folder has no config.json: the rules take its adapter files as input. The
    weights are inputs too (a model trained again in place writes the same config.json), and a folder
    without them is refused before any job."""
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_config.json").write_text("{}")
    config = copy.deepcopy(DEFAULT)
    config["scan"]["ce1pct_splice"].update(model=str(lora), held_out=False)
    refused(config, "scan.ce1pct_splice.model", "a folder without adapter_model.safetensors")
    (lora / "adapter_model.safetensors").write_text("{}")
    checked(config)
    assert wc.model_files(str(lora)) == [str(lora / "adapter_config.json"), str(lora / "adapter_model.safetensors")]
    released = tmp_path / "released"
    released.mkdir()
    (released / "config.json").write_text("{}")
    (released / "pytorch_model.bin").write_text("")
    assert wc.model_files(str(released)) == [str(released / "config.json"), str(released / "pytorch_model.bin")]
    # It holds no whole model to fine-tune further.
    config["finetune"]["ce1pct_splice"]["model"] = str(lora)
    refused(config, "finetune.ce1pct_splice.model", "a folder without config.json")


def test_models_may_be_hugging_face_hub_ids():
    config = copy.deepcopy(DEFAULT)
    config["finetune"]["ce1pct_splice"]["model"] = "zhihan1996/DNABERT-2-117M@main"
    config["scan"]["released"] = {"model": "lab/splice-model", "genome": "ce1pct"}
    checked(config)


def test_a_folder_named_as_a_models_owner_makes_it_a_path_and_the_error_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    config = copy.deepcopy(DEFAULT)
    config["scan"]["ce1pct_splice"]["model"] = "models/splice"
    refused(config, "scan.ce1pct_splice.model 'models/splice' is neither", "the folder models/ here makes it a path",
            "models/splice@main for the Hub id")


def test_a_remote_workflow_refuses_an_installed_package_of_another_version(tmp_path):
    init = tmp_path / "__init__.py"
    init.write_text('"""The package."""\n\n__version__ = "9.9.9"\n__all__ = []\n')
    pyproject = tmp_path / "pyproject.toml"  # what a workflow from before the version moved names
    pyproject.write_text('[project]\nname = "dnabert2"\nversion = "9.9.9"\n')
    for source in (init, pyproject):
        with pytest.raises(ValueError, match=r"this workflow is dnabert2 9\.9\.9, but the installed dnabert2 package is"):
            wc.check_version(source)
    wc.check_version(ROOT / "dnabert2/__init__.py")
    for text, words in (("from ._version import __version__\n", "no version written there"),
                        ("__version__ = (\n", "cannot read the workflow's version (SyntaxError)")):
        init.write_text(text)
        with pytest.raises(ValueError, match=re.escape(f"{init}: {words}")):
            wc.check_version(init)


def test_yaml_merge_keys_are_read_as_yaml_reads_them(tmp_path):
    """`<<: *anchor` shares settings between entries; a key it brings may be given again, once."""
    path = tmp_path / "config.yaml"
    path.write_text("scan:\n  a: &common {model: m, genome: g}\n  b:\n    <<: *common\n    genome: h\n")
    wc.refuse_repeated_keys(path)
    path.write_text("scan:\n  a: &common {model: m}\n  b:\n    <<: *common\n    genome: h\n    genome: i\n")
    with pytest.raises(ValueError, match=r"'genome' is given twice .*line 6"):
        wc.refuse_repeated_keys(path)


def test_a_bam_index_named_by_another_path_to_the_same_place_is_taken(tmp_path, monkeypatch):
    """bam given absolute and bam_index relative (or the reverse) name one file beside the BAM."""
    monkeypatch.chdir(tmp_path)
    config = copy.deepcopy(DEFAULT)
    config["scan"]["ce1pct_splice"].update(bam=str(tmp_path / "x.bam"), mode="covered", bam_index="x.bam.csi")
    config["scan"]["ce1pct_splice"].update(held_out=False, evaluate=False)
    assert checked(config)["scan"]["ce1pct_splice"]["bam_index"] == "x.bam.csi"


def test_contig_names_are_checked_against_an_index_at_hand(tmp_path):
    """A scan.contigs typo was met only by the scan's job, after pretraining and fine-tuning had run."""
    import os

    import pysam

    source = tmp_path / "g.fa"
    source.write_text(">I first\nACGTACGTAC\n>II\nACGTACGTAC\n")
    config = copy.deepcopy(DEFAULT)
    config["genomes"]["ce1pct"]["source"] = str(source)
    config["pretrain"]["tiny"]["heldout_contigs"] = ["II"]
    config["scan"]["ce1pct_splice"]["contigs"] = ["chrI"]
    checked(config)  # no index: the job checks them
    pysam.faidx(str(source))
    for section, name, key in (("scan", "ce1pct_splice", "contigs"), ("tasks", "ce1pct_splice", "dev_contigs"),
                               ("pretrain", "tiny", "heldout_contigs")):
        config["scan"]["ce1pct_splice"]["contigs"] = ["I"]
        config[section][name][key] = ["II", "chrI"]
        refused(config, f"config: {section}.{name}.{key}: 'chrI' is no contig of ce1pct (its index {source}.fai "
                        "has I, II)")
        config[section][name][key] = ["II"]
        checked(config)
    # So are those of a regions BED (UCSC's chrI for Ensembl's I), and a held-out scan's must reach the
    # test contigs (the task's are IV: scan-eval found nothing to evaluate, after the scan).
    regions = tmp_path / "regions.bed"
    regions.write_text("II\t0\t5\nchrI\t0\t5\n")
    config["scan"]["ce1pct_splice"].pop("contigs")
    config["scan"]["ce1pct_splice"]["regions"] = str(regions)
    config["tasks"]["ce1pct_splice"].update(test_contigs=["II"], dev_contigs=["I"])
    refused(config, "config: scan.ce1pct_splice.regions: 'chrI' is no contig of ce1pct")
    regions.write_text("I\t0\t5\n")
    refused(config, "config: scan.ce1pct_splice.held_out: the scan's contigs (I) hold none of task 'ce1pct_splice'"
                    "'s test contigs (II)")
    regions.write_text("I\t0\t5\nII\t0\t5\n")
    checked(config)
    regions.write_text("I\t5\t0\n")
    refused(config, "config: scan.ce1pct_splice.regions: ")
    config["scan"]["ce1pct_splice"].pop("regions")
    for key in ("test_contigs", "dev_contigs"):
        config["tasks"]["ce1pct_splice"].pop(key)
    # An index older than its source may name other contigs.
    config["scan"]["ce1pct_splice"]["contigs"] = ["chrI"]
    os.utime(f"{source}.fai", (0, 0))
    checked(config)
