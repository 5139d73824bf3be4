"""Base resolution: dense tasks from a real genome and annotation, the per-base head and the CNN
baseline trained by the fine-tuning loop, dense scans (every base once per strand, chunks joined
byte for byte, single-base peaks), per-base metrics and scan-eval's PR-AUC, top-k accuracy and
metaplot. Models are tiny and barely trained: mechanics, not biology."""

import csv
import gzip
import json
import shutil
from collections import Counter

import numpy as np
import pyBigWig
import pysam
import pytest
import torch
from conftest import CORE, FLANK, GENOMES, TOKENIZER, assert_user_error, run_cli, without_bases

from dnabert2.bases.metrics import SiteCounts
from dnabert2.errors import UserError
from dnabert2.model import build_model, load_model, preset, save_model
from dnabert2.scan.peaks import PeakCaller
from dnabert2.sequences import Fasta, read_annotation
from dnabert2.tasks.dense import read_dense_task
from dnabert2.tokenizer import load_tokenizer

ANNOTATION = GENOMES / "ce1pct.gff3.gz"
SIRV = GENOMES.parent / "bam" / "sirv_ont"


def rows_of(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_dense_task_labels_every_annotated_site_on_its_strand(dense_task):
    task = json.loads((dense_task / "task.json").read_text())
    assert task["dense"] is True and task["core_bp"] == CORE and task["flank_bp"] == FLANK
    assert task["labels"] == {"0": "neither", "1": "donor", "2": "acceptor"}
    assert task["contigs"]["test"] == ["IV"] and task["contigs"]["dev"] == ["V"]
    sites = {(s.contig, s.position, s.strand, s.kind) for s in read_annotation(ANNOTATION).splice_sites()}
    # The sites only transcripts left out give (7 the 1% cut-out truncates) are marked unlabelled.
    unlabelled = {(s.contig, s.position, s.strand) for s in read_annotation(ANNOTATION).unlabelled({"donor", "acceptor"})}
    assert unlabelled and not unlabelled & {site[:3] for site in sites}
    found, motifs, marked = set(), {"donor": 0, "acceptor": 0}, set()
    for split in ("train", "dev", "test"):
        in_split, unlabelled_in_split = set(), set()
        rows = rows_of(dense_task / f"{split}.csv")
        assert rows and {r["contig"] for r in rows} <= set(task["contigs"][split])
        for r in rows:
            assert len(r["sequence"]) == CORE + 2 * FLANK
            start = int(r["start"])
            for pair in r["sites"].split():
                offset, label = map(int, pair.split(":"))
                kind = task["labels"][str(label)]
                position = start + offset if r["strand"] == "+" else start + CORE - 1 - offset
                assert (r["contig"], position, r["strand"], kind) in sites
                in_split.add((r["contig"], position, r["strand"], kind))
                # On the window's strand a donor starts its intron's GT, an acceptor ends its AG.
                at = FLANK + offset
                motifs[kind] += r["sequence"][at:at + 2] == "GT" if kind == "donor" else r["sequence"][at - 1:at + 1] == "AG"
            for offset in map(int, r["unlabelled"].split()):
                position = start + offset if r["strand"] == "+" else start + CORE - 1 - offset
                assert (r["contig"], position, r["strand"]) in unlabelled
                unlabelled_in_split.add((r["contig"], position, r["strand"]))
        assert task["counts"][split]["windows"] == len(rows)
        # Sites in the overlap of a contig's last two cores are counted once.
        assert task["counts"][split] == {"windows": len(rows), **Counter(k for *_, k in in_split),
                                         "unlabelled": len(unlabelled_in_split)}
        found |= in_split
        marked |= unlabelled_in_split
    assert len(marked) >= 6  # those in a kept core
    # Every annotated site in a full core of a split's contigs is labelled (cores tile whole contigs).
    assert len(found) > 0.9 * len(sites)
    assert motifs["donor"] > 0.95 * sum(k == "donor" for *_, k in found)
    assert motifs["acceptor"] > 0.95 * sum(k == "acceptor" for *_, k in found)
    # Dev and test hold every core of their contigs, so that their per-base metrics are those a scan of
    # the contigs gives; train leaves out most cores without a site (--empty-rate 0.1).
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        lengths = genome.lengths
    for split in ("train", "dev", "test"):
        rows = rows_of(dense_task / f"{split}.csv")
        tiles = {(c, start, strand) for c in task["contigs"][split] for strand in "+-"
                 for start in {*range(0, lengths[c] - CORE + 1, CORE), lengths[c] - CORE}}
        kept = {(r["contig"], int(r["start"]), r["strand"]): bool(r["sites"]) for r in rows}
        empty, siteless = sum(not has for has in kept.values()), len(tiles) - sum(kept.values())
        if split == "train":
            assert set(kept) < tiles and 0 < empty < 0.25 * siteless
        else:
            assert set(kept) == tiles and empty == siteless > 0


def test_a_contig_shorter_than_a_core_is_named_with_the_sites_it_loses(ce1pct, tmp_path):
    # III in the example is 137,839 bp with 40 annotated TSSs. (MtDNA, of 137 bp, holds none: its two tRNAs
    # are cut from a longer transcript.)
    result = run_cli("tasks", "promoter", "--dense", "--core", 140000, "--genome", ce1pct, "--annotation", ANNOTATION,
                     "--out", tmp_path / "promoter")
    assert result.returncode == 0, result.stderr
    assert ("1 contig(s) shorter than --core (140000 bp) give no window, and their 40 annotated site(s) none: "
            "III") in result.stderr


def test_a_dense_task_is_scored_by_scanning_not_by_evaluate(base, dense_task, tmp_path):
    result = run_cli("evaluate", "--model", base, "--data", dense_task, "--out", tmp_path / "table.tsv")
    assert_user_error(result, "a dense task", "scan-eval")
    assert not (tmp_path / "table.tsv").exists()


def test_a_dense_task_of_one_contig_says_its_test_split_is_stretches_of_it(tmp_path):
    """As a task of windows says it: the line read "test NC_000913.3", as if the whole contig were held out."""
    result = run_cli("tasks", "promoter", "--dense", "--genome", GENOMES / "ecoli_k12_mg1655.fna.gz", "--annotation",
                     GENOMES / "ecoli_k12_mg1655.gff.gz", "--out", tmp_path / "t", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("; test stretches of NC_000913.3")
    assert json.loads((tmp_path / "t" / "task.json").read_text())["split"] == "positions"


def test_a_dense_split_of_few_sites_is_said_to_say_little(ce1pct, tmp_path):
    """C. elegans' ncRNAs: 5 TSSs on III, 9 on V. A window task of so few examples was warned of, a
    dense one not."""
    result = run_cli("tasks", "promoter", "--dense", "--biotype", "ncRNA", "--test-contigs", "V", "--dev-contigs", "III",
                     "--genome", ce1pct, "--annotation", ANNOTATION, "--out", tmp_path / "t")
    assert result.returncode == 0, result.stderr
    counts = json.loads((tmp_path / "t" / "task.json").read_text())["counts"]
    for split in ("dev", "test"):
        assert f"the {split} split holds few sites (promoter {counts[split]['promoter']}): its metrics say little" \
            in result.stderr
    assert "the train split" not in result.stderr


def test_dense_task_bad_input(ce1pct, tmp_path):
    ecoli = run_cli("tasks", "splice", "--dense", "--genome", GENOMES / "ecoli_k12_mg1655.fna.gz",
                    "--annotation", GENOMES / "ecoli_k12_mg1655.gff.gz", "--out", tmp_path / "new" / "ecoli")
    assert_user_error(ecoli, "no annotated donor sites")
    assert not (tmp_path / "new").exists()
    zero = run_cli("tasks", "splice", "--dense", "--genome", ce1pct, "--annotation", ANNOTATION, "--out",
                   tmp_path / "zero", "--core", 0)
    assert zero.returncode == 2 and "--core" in zero.stderr and not (tmp_path / "zero").exists()
    forgotten = run_cli("tasks", "splice", "--genome", ce1pct, "--annotation", ANNOTATION, "--out", tmp_path / "w",
                        "--core", 100, "--empty-rate", 0.5)  # --dense forgotten: a task of windows
    assert_user_error(forgotten, "--core, --empty-rate shape dense tasks", "would ignore them")
    assert not (tmp_path / "w").exists()
    # Split by position (one contig), the splits lie a core and two flanks apart: a long flank empties them.
    plasmid = GENOMES / "Ypestis_pPCP1_NC_005816.gb.gz"
    flanked = run_cli("tasks", "promoter", "--dense", "--genome", plasmid, "--annotation", plasmid, "--out",
                      tmp_path / "d", "--core", 500, "--flank", 3000)
    assert_user_error(flanked, "split holds no annotated site in a 500 bp core; give a shorter --core or --flank, or a larger genome")
    # A --biotype that leaves a split no site was blamed on the core's length alone.
    biotype = run_cli("tasks", "splice", "--dense", "--genome", ce1pct, "--annotation", ANNOTATION, "--out",
                      tmp_path / "d", "--biotype", "ncRNA")
    assert_user_error(biotype, "split holds no annotated site of the transcripts --biotype and --tag keep in a")
    assert not (tmp_path / "d").exists()
    shuffled = run_cli("tasks", "splice", "--dense", "--genome", ce1pct, "--annotation", ANNOTATION, "--out",
                       tmp_path / "d", "--negatives", "shuffled")
    assert_user_error(shuffled, "--negatives is for tasks of windows")
    assert not (tmp_path / "d").exists()
    for dense in (["--dense"], []):  # gaps that are no introns change no TSS: the option did nothing
        ignored = run_cli("tasks", "promoter", *dense, "--genome", ce1pct, "--annotation", ANNOTATION, "--out",
                          tmp_path / "p", "--min-intron", 50)
        assert_user_error(ignored, "--min-intron", "a promoter task has no splice sites")
        assert not (tmp_path / "p").exists()


def test_per_base_head_packed_and_padded_agree_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(preset("tiny", num_labels=3), "dense").eval()
    from dnabert2.bases.inputs import dense_batch, encode_bases

    tokenizer = load_tokenizer(TOKENIZER)
    sequences = ["ACGTTGCAAGGCTTAACGTAGGT" * 5, "TTGACCAGTAGNNACGT" * 3]
    encoded = encode_bases(tokenizer, sequences)
    batch = dense_batch(encoded, sequences, "cpu")
    packed = model(**batch).logits
    assert packed.shape == (2, len(sequences[0]), 3)
    ids = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(i) for i, _ in encoded], batch_first=True, padding_value=3)
    padded = model(ids, batch["token_of_base"], batch["bases"], attention_mask=(ids != 3).long(),
                   base_mask=batch["base_mask"]).logits
    torch.testing.assert_close(packed, padded)
    # Each sequence scores alike alone and beside a longer one: its last bases read zeros past its end,
    # not the state that padding points at.
    for i, sequence in enumerate(sequences):
        alone = model(**dense_batch(encode_bases(tokenizer, [sequence]), [sequence], "cpu")).logits[0]
        torch.testing.assert_close(packed[i, :len(sequence)], alone, atol=1e-5, rtol=1e-5)
    # Bases of one token share its state; the convolution over bases still tells them apart.
    first = batch["token_of_base"][0]
    same_token = (first[1:] == first[:-1]).nonzero()[0].item()
    assert not torch.allclose(packed[0, same_token], packed[0, same_token + 1])

    save_model(model, tmp_path / "m", tokenizer)
    again = load_model(tmp_path / "m")
    assert type(again).__name__ == "DNABertForBaseClassification"
    torch.testing.assert_close(again(**batch).logits, packed)
    with pytest.raises(Exception, match="has 3 labels, not 4"):
        load_model(tmp_path / "m", head="dense", num_labels=4)


def test_finetuning_a_per_base_model_with_lora_merges_and_reloads(base, dense_task, tmp_path):
    out = tmp_path / "lora"
    result = run_cli("finetune", "--model", base, "--data", dense_task, "--out", out, "--lora", "--epochs", 1,
                     "--batch-size", 8, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["head"] == "dense" and set(metrics["test"]["labels"]) == {"donor", "acceptor"}
    for label in ("donor", "acceptor"):
        m = metrics["test"]["labels"][label]
        assert m["sites"] > 0 and 0 <= m["pr_auc"] <= 1 and 0 <= m["top_k_accuracy"] <= 1
        # counts of the test split, the same in every seed: written as counts, with no spread
        assert type(m["sites"]) is int and type(m["bases"]) is int
        assert set(metrics["test_sd"]["labels"][label]) == {"pr_auc", "top_k_accuracy"}
    assert (out / "adapter_config.json").is_file() and json.loads((out / "finetune.json").read_text())["head"] == "dense"
    merged = load_model(out)
    assert type(merged).__name__ == "DNABertForBaseClassification" and merged.config.num_labels == 3
    with pytest.raises(Exception, match="head 'classification' is not available"):
        load_model(out, head="classification")


def test_a_collapsed_per_base_model_is_pointed_at_the_cnn_baseline(base, dense_task, tmp_path):
    """One epoch from random weights calls no site on dev: the warning names the baseline a dense task
    has (the CNN), not the k-mer one `evaluate` would refuse to run on it."""
    out = tmp_path / "flat"
    result = run_cli("finetune", "--model", base, "--data", dense_task, "--out", out, "--full", "--epochs", 1,
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["collapsed"] is True and "calls no site on any dev base" in result.stderr
    assert "dnabert2 cnn" in metrics["warning"] and "evaluate" not in metrics["warning"]


def test_cnn_baseline_learns_splice_sites(cnn):
    """Two epochs of the SpliceAI-style CNN on real C. elegans sites rank them far above chance
    (the share of sites among core bases, under 0.001)."""
    metrics = json.loads((cnn / "metrics.json").read_text())
    assert metrics["model"] == "cnn" and metrics["collapsed"] is False
    assert metrics["test"]["pr_auc"] > 0.1 and metrics["test"]["top_k_accuracy"] > 0.1
    # The task's flanks are narrower than what the CNN reads: said, not refused.
    assert f"flanks of {FLANK} bp, less than the CNN's 200 bp of context" in (cnn.parent / "stderr.txt").read_text()


def test_fine_tuning_metrics_count_each_base_once(dense_task):
    """A contig's last core overlaps the one before it (in the training split here): its bases and
    sites count once in the metrics, as in task.json."""
    from dnabert2.bases.job import DenseJob

    job = DenseJob(dense_task, None)
    with open(dense_task / "train.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    bases = {(r["contig"], r["strand"], int(r["start"]) + i) for r in rows for i in range(job.task.core)}
    assert len(bases) < len(rows) * job.task.core  # the overlap is there to count twice
    # Unlabelled bases (sites only transcripts left out give) count in no metric.
    unlabelled = {(r["contig"], r["strand"], int(r["start"]) + (o if r["strand"] == "+" else job.task.core - 1 - o))
                  for r in rows for o in map(int, r["unlabelled"].split())}
    assert unlabelled and unlabelled <= bases
    bases -= unlabelled
    probabilities = np.random.default_rng(0).dirichlet(np.ones(3), size=len(rows) * job.task.core)
    scores = job.scores("train", probabilities)
    sites = json.loads((dense_task / "task.json").read_text())["counts"]["train"]
    for label in ("donor", "acceptor"):
        assert scores["labels"][label]["bases"] == len(bases)
        assert scores["labels"][label]["sites"] == sites[label]


def test_a_per_base_scan_of_n_alone_is_refused_without_naming_max_n(cnn, tmp_path):
    """Its cores of N alone are skipped; with none scored the scan is refused, in words that fit a
    per-base model (it takes no --max-n), whole or gathered from chunks."""
    (tmp_path / "gap.fa").write_text(">gap\n" + "N" * 3000 + "\n")
    common = ["--model", cnn, "--fasta", tmp_path / "gap.fa", "--device", "cpu", "--workers", 0]
    assert_user_error(run_cli("scan", *common, "--out", tmp_path / "all.bed"), "is N alone, so no base was scored")
    for i in range(2):
        result = run_cli("scan", *common, "--chunk", f"{i}/2", "--out", tmp_path / f"c{i}.bed", "--summary",
                         tmp_path / f"c{i}.json")
        assert result.returncode == 0, result.stderr
    result = run_cli("scan-gather", tmp_path / "c0.json", tmp_path / "c1.json", "--out", tmp_path / "all.bed")
    assert_user_error(result, "is N alone, so no base was scored")
    assert "--max-n" not in result.stderr and not (tmp_path / "all.bed").exists()


def test_the_cnn_is_refused_where_a_dnabert2_model_is_needed(cnn, dense_task, ce1pct, tmp_path):
    """The CNN scans and predicts like a per-base model, but has no encoder to fine-tune, to pretrain
    further (it was told by the tokenizer.json it lacks) or to embed with (test_predict)."""
    with pytest.raises(UserError, match=r"architectures \['SpliceCNN'\] is not a DNABERT-2"):
        load_model(cnn)
    result = run_cli("finetune", "--model", cnn, "--data", dense_task, "--out", tmp_path / "ft", "--device", "cpu")
    assert_user_error(result, "SpliceCNN", "not a DNABERT-2")
    result = run_cli("pretrain", "--genome", ce1pct, "--init", cnn, "--out", tmp_path / "pt",
                     "--steps", 1, "--device", "cpu")
    assert_user_error(result, "SpliceCNN", "not a DNABERT-2")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("damage, words", [
    ("base", ["dev.csv: line 2", "characters that are no nucleotide", "'X'"]),
    ("labels", ["task.json: 'labels' must map each class number to its name"]),
    # PR-AUC is undefined at every epoch: the first epoch was kept, whatever the later ones learned
    ("no dev site", ["dev.csv: no annotated site in any window", "picks the epoch and the seed"]),
    # Window tasks refuse a class train lacks; so do dense ones.
    ("no acceptor in train", ["train.csv: no acceptor site in any window; nothing to learn it from"]),
])
def test_a_damaged_dense_task_is_refused_before_training(base, dense_task, tmp_path, damage, words):
    task = shutil.copytree(dense_task, tmp_path / "task")
    if damage == "base":
        lines = (task / "dev.csv").read_text().split("\n")
        lines[1] = lines[1][:500] + "X" + lines[1][501:]  # read as N before, scored as if it were one
        (task / "dev.csv").write_text("\n".join(lines))
    elif damage in ("no dev site", "no acceptor in train"):
        split, kept = ("dev", ()) if damage == "no dev site" else ("train", ("1",))  # 1: donor, 2: acceptor
        with open(task / f"{split}.csv", newline="") as handle:
            rows = [row[:1] + [" ".join(s for s in row[1].split() if s.split(":")[1] in kept)] + row[2:]
                    if number else row for number, row in enumerate(csv.reader(handle))]
        with open(task / f"{split}.csv", "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
    else:
        described = json.loads((task / "task.json").read_text())
        described["labels"] = list(described["labels"].values())
        (task / "task.json").write_text(json.dumps(described))
    for command in (["cnn"], ["finetune", "--model", base]):
        result = run_cli(*command, "--data", task, "--out", tmp_path / "out", "--epochs", 1, "--device", "cpu")
        assert_user_error(result, *words)
        assert not (tmp_path / "out").exists()
    missing = run_cli("cnn", "--data", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert_user_error(missing, "nowhere: no such folder")
    (tmp_path / "task.csv").write_text("sequence,label\n")
    assert_user_error(run_cli("cnn", "--data", tmp_path / "task.csv", "--out", tmp_path / "out"),
                      "task.csv: a file, not a task folder")


def test_a_per_base_models_task_json_names_every_label_it_scores(cnn, tmp_path):
    """Two names for the CNN's three outputs scanned without acceptors, and passed; none was a KeyError."""
    model = shutil.copytree(cnn, tmp_path / "model")
    (tmp_path / "g.fa").write_text(">c\n" + "ACGTTAGGTAAG" * 40 + "\n")
    described = json.loads((cnn / "task.json").read_text())
    for labels, words in ((None, ["model: a per-base model without the task.json of its dense task", "labels"]),
                          ({"0": "neither", "1": "donor"}, ["model/task.json names 2 labels (0, 1), but the model scores 3"])):
        (model / "task.json").write_text(json.dumps({**described, "labels": labels} if labels else
                                                    {k: v for k, v in described.items() if k != "labels"}))
        result = run_cli("scan", "--model", model, "--fasta", tmp_path / "g.fa", "--out", tmp_path / "c.bed")
        assert_user_error(result, *words)
        assert not (tmp_path / "c.bed").exists()


def test_a_dense_task_keeps_the_iupac_codes_of_its_genome(dense_task, tmp_path):
    """tasks --dense keeps a genome's R, Y, … in the flanks as they are: they read as N."""
    task = shutil.copytree(dense_task, tmp_path / "task")
    lines = (task / "dev.csv").read_text().split("\n")
    lines[1] = "RY" + lines[1][2:]
    (task / "dev.csv").write_text("\n".join(lines))
    assert read_dense_task(task).splits["dev"][0].sequence.startswith("RY")


def bigwig_values(folder, name, contig, length):
    with pyBigWig.open(str(folder / name)) as bigwig:
        return np.nan_to_num(bigwig.values(contig, 0, length, numpy=True), nan=-1.0)


def scan_in_chunks(common, count, folder):
    """The summaries of a scan run in `count` chunks, each with its bedGraph folder."""
    summaries = []
    for i in range(count):
        out = folder / f"chunk{i}.bed"
        result = run_cli("scan", *common, "--out", out, "--summary", out.with_suffix(".json"), "--chunk",
                         f"{i}/{count}", "--bedgraph", folder / f"chunk{i}.bg")
        assert result.returncode == 0, result.stderr
        summaries.append(out.with_suffix(".json"))
    return summaries


def test_dense_scan_scores_every_base_once_and_chunks_join_byte_for_byte(cnn, ce1pct, tmp_path):
    common = ["--model", cnn, "--fasta", ce1pct, "--contigs", "IV", "MtDNA", "--threshold", 0.2, "--workers", 0]
    whole = run_cli("scan", *common, "--out", tmp_path / "whole.bed.gz", "--summary", tmp_path / "whole.json",
                    "--bedgraph", tmp_path / "whole.bg", "--bigwig", tmp_path / "whole.bw")
    assert whole.returncode == 0, whole.stderr
    summary = json.loads((tmp_path / "whole.json").read_text())
    lengths = summary["contig_lengths"]
    assert summary["dense"] is True and summary["calls_by"] == "peaks" and summary["stride"] is None
    assert summary["bases"] == lengths["IV"] + lengths["MtDNA"]
    for name in ("donor.plus.bw", "donor.minus.bw", "acceptor.plus.bw", "acceptor.minus.bw"):
        for contig in ("IV", "MtDNA"):
            assert (bigwig_values(tmp_path / "whole.bw", name, contig, lengths[contig]) >= 0).all(), name
    # Calls are single bases at least min_distance apart per label and strand, scoring as their track.
    calls = [line.split("\t") for line in gzip.decompress((tmp_path / "whole.bed.gz").read_bytes()).decode().splitlines()]
    assert calls and all(int(c[2]) - int(c[1]) == 1 and c[9] == "0" for c in calls)
    tracks = {}
    for c in calls:
        key = (c[3], c[5], c[0])
        if key not in tracks:
            strand = "plus" if c[5] == "+" else "minus"
            tracks[key] = bigwig_values(tmp_path / "whole.bw", f"{c[3]}.{strand}.bw", c[0], lengths[c[0]])
        assert abs(tracks[key][int(c[1])] * 1000 - int(c[4])) <= 1
    distance = summary["min_distance"]["donor"]
    for label in ("donor", "acceptor"):
        for strand in "+-":
            starts = sorted(int(c[1]) for c in calls if c[3] == label and c[5] == strand and c[0] == "IV")
            assert all(b - a > distance for a, b in zip(starts, starts[1:]))

    summaries = scan_in_chunks(common, 3, tmp_path)
    result = run_cli("scan-gather", *summaries, "--out", tmp_path / "gathered.bed.gz", "--bedgraph",
                     tmp_path / "gathered.bg")
    assert result.returncode == 0, result.stderr
    assert gzip.decompress((tmp_path / "gathered.bed.gz").read_bytes()) == \
        gzip.decompress((tmp_path / "whole.bed.gz").read_bytes())
    for track in (tmp_path / "whole.bg").iterdir():
        assert (tmp_path / "gathered.bg" / track.name).read_text() == track.read_text()
    # - is standard output, in plain BED, for a pipe into bedtools; the line a scan prints goes to stderr.
    for streamed in (run_cli("scan", *common, "--out", "-"), run_cli("scan-gather", *summaries, "--out", "-")):
        assert streamed.returncode == 0, streamed.stderr
        assert streamed.stdout == gzip.decompress((tmp_path / "whole.bed.gz").read_bytes()).decode()
        assert streamed.stderr.splitlines()[-1].startswith(f"-: {summary['calls']['acceptor']} acceptor")
    refused = run_cli("scan", *common, "--out", "-", "--summary", tmp_path / "s.json")
    assert_user_error(refused, "--summary names the calls file", "give --out a file name")
    failed = run_cli("scan", *common[:4], "--contigs", "Nope", "--out", "-")
    assert_user_error(failed, "unknown contig 'Nope'")
    assert refused.stdout == failed.stdout == "" and not (tmp_path / "s.json").exists()


def test_a_last_core_cut_short_is_read_whole_as_the_task_tiled_it(dense_task, ce1pct, tmp_path):
    """`tasks` reads a stretch's last core whole, flush with its end; scan read it cut short, with less
    context than the model learnt with (a task's test stretch, scanned, did not score as fine-tuning's
    test did): its bases score as in a scan of the one core ending there. The encoder attends across
    the whole window, so every base of a core cut short scored otherwise."""
    torch.manual_seed(0)
    model = tmp_path / "model"
    save_model(build_model(preset("tiny", num_labels=3), "dense").eval(), model, load_tokenizer(TOKENIZER))
    shutil.copyfile(dense_task / "task.json", model / "task.json")
    tracks = {}
    for name, start in (("cut", 20000), ("flush", 22300 - CORE)):
        (tmp_path / f"{name}.bed").write_text(f"I\t{start}\t22300\n")
        result = run_cli("scan", "--model", model, "--fasta", ce1pct, "--regions", tmp_path / f"{name}.bed",
                         "--out", tmp_path / f"{name}.calls.bed", "--bigwig", tmp_path / name, "--workers", 0)
        assert result.returncode == 0, result.stderr
        tracks[name] = {track: bigwig_values(tmp_path / name, track, "I", 22300)[22000:]
                        for track in ("donor.plus.bw", "donor.minus.bw", "acceptor.plus.bw", "acceptor.minus.bw")}
    for track, flush in tracks["flush"].items():
        assert (flush >= 0).all()
        np.testing.assert_allclose(tracks["cut"][track], flush, atol=1e-6, err_msg=track)


def test_contigs_named_as_pandas_missing_values_or_with_a_hash_keep_their_tracks(cnn, ce1pct, tmp_path):
    # NA, null and nan are missing values to pandas, and # starts its comments: read back from bedGraph,
    # their rows were merged under nan (gathered) or dropped (scan-eval: no base scored, exit 0).
    names = ["NA", "null", "chr#1"]
    with Fasta(ce1pct) as fasta:
        genome = "".join(f">{name}\n{fasta.fetch('IV', 4000 * i, 4000 * (i + 1))}\n" for i, name in enumerate(names))
    (tmp_path / "g.fa").write_text(genome)
    (tmp_path / "g.gff3").write_text("##gff-version 3\n" + "".join(
        f"{name}\tt\tmRNA\t101\t3000\t.\t+\t.\tID=t{i}\n{name}\tt\texon\t101\t500\t.\t+\t.\tParent=t{i}\n"
        f"{name}\tt\texon\t1001\t3000\t.\t+\t.\tParent=t{i}\n" for i, name in enumerate(names)))
    common = ["--model", cnn, "--fasta", tmp_path / "g.fa", "--workers", 0]
    for kind in ("bedgraph", "bigwig"):
        result = run_cli("scan", *common, "--out", tmp_path / f"{kind}.bed", "--summary", tmp_path / f"{kind}.json",
                         f"--{kind}", tmp_path / kind)
        assert result.returncode == 0, result.stderr
    reports = {}
    for kind in ("bedgraph", "bigwig"):
        result = run_cli("scan-eval", "--calls", tmp_path / f"{kind}.bed", "--summary", tmp_path / f"{kind}.json",
                         "--annotation", tmp_path / "g.gff3")
        assert result.returncode == 0, result.stderr
        reports[kind] = json.loads(result.stdout)["labels"]["donor"]
    assert reports["bedgraph"]["bases"] == 2 * 12_000 and reports["bedgraph"] == reports["bigwig"]
    summaries = scan_in_chunks(common, 2, tmp_path)
    result = run_cli("scan-gather", *summaries, "--out", tmp_path / "gathered.bed", "--bedgraph", tmp_path / "gathered",
                     "--bigwig", tmp_path / "gathered.bw")
    assert result.returncode == 0, result.stderr
    for track in (tmp_path / "bedgraph").iterdir():
        assert (tmp_path / "gathered" / track.name).read_text() == track.read_text()
    with pyBigWig.open(str(tmp_path / "gathered.bw" / "donor.plus.bw")) as bw:
        assert list(bw.chroms()) == names


@pytest.mark.parametrize("threshold, least", [(0.0025, 3), (0.0005, 1)])
def test_no_call_scores_below_the_threshold(cnn, ce1pct, tmp_path, threshold, least):
    """Thresholds between thousandths are not rounded down (half to even, 0.0025 would call 0.002)."""
    out = tmp_path / "calls.bed"
    result = run_cli("scan", "--model", cnn, "--fasta", ce1pct, "--contigs", "MtDNA", "--threshold", threshold,
                     "--min-distance", 1, "--out", out, "--workers", 0)
    assert result.returncode == 0, result.stderr
    scores = [int(line.split("\t")[4]) for line in out.read_text().splitlines()]
    assert scores and min(scores) >= least


def test_scan_eval_per_base_metrics_match_the_tracks(cnn, ce1pct, tmp_path, dense_task):
    from sklearn.metrics import average_precision_score

    result = run_cli("scan", "--model", cnn, "--fasta", ce1pct, "--contigs", "IV", "V", "--out", tmp_path / "c.bed",
                     "--summary", tmp_path / "s.json", "--bigwig", tmp_path / "bw", "--bedgraph", tmp_path / "bg",
                     "--workers", 0)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    (tmp_path / "s-bg.json").write_text(json.dumps(summary | {"bigwig_dir": None}))  # the bedGraph folder alone
    reports = []
    for name in ("s", "s-bg"):
        result = run_cli("scan-eval", "--calls", tmp_path / "c.bed", "--annotation", ANNOTATION, "--summary",
                         tmp_path / f"{name}.json", "--held-out", dense_task, "--out", tmp_path / f"{name}.eval.json")
        assert result.returncode == 0, result.stderr
        reports.append(json.loads((tmp_path / f"{name}.eval.json").read_text()))
    report = reports[0]
    # bigWig holds float32, bedGraph decimal text: the same tracks, the same figures to the last digit.
    assert reports[1] == report
    lengths = json.loads((tmp_path / "s.json").read_text())["contig_lengths"]
    # By hand: every base of the test contig IV, both strands; a site is its base exactly (tolerance 0).
    sites = read_annotation(ANNOTATION).splice_sites()
    for label in ("donor", "acceptor"):
        scores, positive = [], []
        for strand, name in (("+", "plus"), ("-", "minus")):
            values = np.rint(bigwig_values(tmp_path / "bw", f"{label}.{name}.bw", "IV", lengths["IV"]) * 1000)
            here = np.zeros(lengths["IV"], dtype=bool)
            here[[s.position for s in sites if s.kind == label and s.contig == "IV" and s.strand == strand]] = True
            scores.append(values)
            positive.append(here)
        scores, positive = np.concatenate(scores), np.concatenate(positive)
        m = report["labels"][label]
        assert m["bases"] == 2 * lengths["IV"] and m["sites"] == positive.sum()
        assert m["pr_auc"] == pytest.approx(average_precision_score(positive, scores), abs=1e-4)
        # The metaplot peaks at the site itself.
        curve = report["metaplot"][label]
        assert len(curve) == 401 and np.argmax(curve) == 200
    # Another scan, of V alone, into the same bigWig folder: the first scan's summary no longer says
    # what the tracks hold, and its figures would be V's alone under "the whole scan".
    result = run_cli("scan", "--model", cnn, "--fasta", ce1pct, "--contigs", "V", "--out", tmp_path / "v.bed",
                     "--bigwig", tmp_path / "bw", "--workers", 0)
    assert result.returncode == 0, result.stderr
    assert_user_error(run_cli("scan-eval", "--calls", tmp_path / "c.bed", "--annotation", ANNOTATION, "--summary",
                              tmp_path / "s.json", "--out", tmp_path / "again.json"), "not the track the scan of")


def test_cnn_test_figures_are_scan_evals_on_a_split_by_position(cnn, ce1pct, tmp_path):
    """One contig splits by position. Its test stretch starts where a scan of the contig puts a core,
    and the bases at sites only left-out transcripts give (of either label) count in neither the
    test figures training writes nor scan-eval's: the two give the same figures, as the README says."""
    from contextlib import nullcontext

    import dnabert2
    from dnabert2.bases.job import DenseJob

    with Fasta(ce1pct) as fasta:
        sequence, length = fasta.fetch("I", 0, fasta.lengths["I"]), fasta.lengths["I"]
    (tmp_path / "I.fa").write_text(f">I\n{sequence}\n")
    task = tmp_path / "task"
    result = run_cli("tasks", "splice", "--dense", "--genome", tmp_path / "I.fa", "--annotation", ANNOTATION,
                     "--core", CORE, "--flank", FLANK, "--out", task)
    assert result.returncode == 0, result.stderr
    described = json.loads((task / "task.json").read_text())
    assert described["split"] == "positions" and described["counts"]["test"]["unlabelled"] > 0
    for stretches in described["regions"].values():
        assert all(start % CORE == 0 and (end % CORE == 0 or end == length) for _, start, end in stretches)
    job = DenseJob(task, None)
    model = dnabert2.load_model(cnn, device="cpu")
    figures = job.scores("test", job.predict(model, "test", 8, torch.device("cpu"), nullcontext()))
    result = run_cli("scan", "--model", cnn, "--fasta", tmp_path / "I.fa", "--out", tmp_path / "c.bed", "--summary",
                     tmp_path / "s.json", "--bigwig", tmp_path / "bw", "--workers", 0)
    assert result.returncode == 0, result.stderr
    result = run_cli("scan-eval", "--calls", tmp_path / "c.bed", "--annotation", ANNOTATION, "--summary",
                     tmp_path / "s.json", "--held-out", task, "--out", tmp_path / "eval.json")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval.json").read_text())["labels"]
    for label in ("donor", "acceptor"):
        keys = ("bases", "pr_auc", "top_k_accuracy")
        assert {k: report[label][k] for k in keys} == {k: figures["labels"][label][k] for k in keys}, label


def test_per_base_metrics_equal_scikit_learn_and_count_ties_fairly():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(1)
    positive = rng.random(50_000) < 0.002
    scores = np.clip(np.rint((rng.random(50_000) * 0.6 + positive * 0.5) * 1000), 0, 1000).astype(int)
    counts = SiteCounts()
    for part in np.array_split(np.arange(50_000), 7):  # counted in pieces, as scan-eval reads a genome
        counts.add(scores[part], positive[part])
    assert counts.pr_auc() == pytest.approx(average_precision_score(positive, scores), abs=1e-12)
    k = positive.sum()
    assert counts.top_k_accuracy() == pytest.approx(positive[np.argsort(-scores, kind="stable")[:k]].mean(), abs=0.02)
    tie = SiteCounts()
    tie.add(np.array([500, 500, 500, 500]), np.array([True, False, False, False]))
    assert tie.top_k_accuracy() == 0.25


def reference_peaks(scores, threshold, distance):
    n = len(scores)
    maximum = [all(scores[i] >= scores[j] for j in range(max(0, i - distance), min(n, i + distance + 1)))
               for i in range(n)]
    return [i for i in range(n) if scores[i] >= threshold and maximum[i]
            and not any(maximum[j] and scores[j] == scores[i] for j in range(max(0, i - distance), i))]


@pytest.mark.parametrize("distance", [1, 3, 10, 40])
def test_peaks_are_the_reference_ones_however_the_track_is_fed(distance):
    rng = np.random.default_rng(distance)
    scores = rng.integers(0, 60, 3000) * 10  # ties, plateaus
    expected = reference_peaks(scores, 300, distance)
    for pieces in (1, 4, 37):
        caller = PeakCaller(300, distance)
        caller.start("c", 0)
        for part in np.array_split(np.arange(3000), pieces):
            caller.feed(int(part[0]), scores[part], owned=True)
        caller.finish()
        assert [p for _, p, _ in caller.peaks] == expected
        assert all(b - a > distance for a, b in zip(expected, expected[1:]))
    # Sites a window apart stay two calls; unowned positions suppress without being called.
    caller = PeakCaller(500, 100)
    caller.start("c", 0)
    track = np.zeros(1000, dtype=int)
    track[[300, 700]] = [900, 800]
    track[650] = 990
    caller.feed(0, track[:640], owned=True)
    caller.feed(640, track[640:], owned=False)
    caller.finish()
    assert [p for _, p, _ in caller.peaks] == [300]
    # A site tied with one that a higher site suppresses is still called (scores are thousandths: ties
    # are common); 8,966 on E. coli's + strand went uncalled so, nothing else within 100 bp called.
    caller = PeakCaller(500, 100)
    caller.start("c", 8700)
    track = np.zeros(400, dtype=int)
    track[[8814 - 8700, 8877 - 8700, 8966 - 8700]] = [557, 541, 541]
    caller.feed(8700, track, owned=True)
    caller.finish()
    assert [p for _, p, _ in caller.peaks] == [8814, 8966]


def test_dense_scan_bad_input(cnn, base, ce1pct, tmp_path):
    common = ["--model", cnn, "--fasta", ce1pct, "--contigs", "MtDNA"]
    short = run_cli("scan", *common, "--out", tmp_path / "a.bed", "--window", 2 * FLANK)
    assert_user_error(short, "no core between", "flanks")
    for option in (["--stride", 50], ["--merge"], ["--max-n", 0.5]):
        assert_user_error(run_cli("scan", *common, "--out", tmp_path / "a.bed", *option), "per-base model")
    assert_user_error(run_cli("scan", *common, "--reference", ce1pct, "--out", tmp_path / "a.bed"),
                      "--reference is the genome a --bam's reads align to")
    zero = run_cli("scan", *common, "--out", tmp_path / "a.bed", "--min-distance", 0)
    assert zero.returncode == 2 and "--min-distance" in zero.stderr
    assert not list(tmp_path.glob("a.bed*"))
    # A window longer than the task's: still every base once, with more of each window scored.
    longer = run_cli("scan", *common, "--out", tmp_path / "b.bed", "--window", 3 * CORE, "--summary",
                     tmp_path / "b.json")
    assert longer.returncode == 0, longer.stderr
    assert json.loads((tmp_path / "b.json").read_text())["bases"] == 137


def test_no_output_lands_inside_a_track_folder_or_on_the_models_files(cnn, ce1pct, tmp_path):
    """A track folder is written whole, replacing what was in it: an output inside it would be lost
    (exit 0) or fail after the tracks were written. A model's own file as an output would be
    overwritten with calls, and the model lost."""
    common = ["--model", cnn, "--fasta", ce1pct, "--contigs", "MtDNA"]
    for outputs, inside in ((["--out", "s.bed", "--bigwig", "bw", "--bedgraph", "bw/bg"], "bw/bg"),
                            (["--out", "bw/s.bed", "--bigwig", "bw"], "bw/s.bed"),
                            (["--out", "s.bed", "--summary", "bg/s.json", "--bedgraph", "bg"], "bg/s.json")):
        result = run_cli("scan", *common, *outputs, cwd=tmp_path)
        assert_user_error(result, f"{inside}: inside the track folder")
        assert list(tmp_path.iterdir()) == []
    model = tmp_path / "model"
    shutil.copytree(cnn, model)
    before = {f.name: f.read_bytes() for f in model.iterdir()}
    for command, options, name in (("scan", ["--fasta", ce1pct, "--contigs", "MtDNA"], "config.json"),
                                   ("predict", ["--fasta", ce1pct], "model.safetensors"),
                                   ("mutagenesis", ["--fasta", ce1pct, "--region", "MtDNA:1-20"], "config.json")):
        result = run_cli(command, "--model", model, *options, "--out", model / name)
        assert_user_error(result, f"the output would overwrite the input {model / name}")
    assert {f.name: f.read_bytes() for f in model.iterdir()} == before


def test_a_min_distance_past_the_longest_region_calls_what_that_length_calls(cnn, ce1pct, tmp_path):
    """No two bases of a 6 kb region lie 6 kb apart: a billion bp spaces the peaks as 6 kb does, in the
    memory a 6 kb distance takes (each track once held a billion-position context)."""
    (tmp_path / "r.bed").write_text("II\t20000\t26000\n")
    for distance in (6000, 10**9):
        result = run_cli("scan", "--model", cnn, "--fasta", ce1pct, "--regions", tmp_path / "r.bed", "--threshold",
                         0.05, "--min-distance", distance, "--out", tmp_path / f"{distance}.bed", "--workers", 0)
        assert result.returncode == 0, result.stderr
    calls = (tmp_path / "6000.bed").read_text()
    assert calls and calls == (tmp_path / f"{10**9}.bed").read_text()


def test_a_short_window_padded_to_a_common_length_scores_as_it_does_alone(cnn, ce1pct):
    """A scan pads a window cut short at a contig's end to a multiple of 256 bp, so that convolutions
    meet few lengths; masked, the padding changes none of its scores."""
    from dnabert2.bases.inputs import dense_batch
    from dnabert2.scan.dense import PADDED_TO, load_dense_scanner

    scanner = load_dense_scanner(cnn, device="cpu")
    length = scanner.window - 37
    assert length % PADDED_TO and length > 2 * scanner.flank
    with Fasta(ce1pct) as genome:
        sequence = genome.fetch("IV", 5000, 5000 + length)
    padded = scanner.probabilities(None, [sequence], 10**6)[0]
    with torch.inference_mode():
        alone = scanner.model(**dense_batch(None, [sequence], torch.device("cpu"))).logits.float().softmax(-1)[0]
    assert padded.shape == (length - 2 * scanner.flank, 3)
    np.testing.assert_allclose(padded, alone[scanner.flank:length - scanner.flank].numpy(), atol=1e-6)


def test_close_site_pairs_count_as_resolved_only_with_a_call_each():
    from dnabert2.scan.evaluation import _close_pairs

    sites = np.array([100, 300, 1000, 1150])
    assert _close_pairs(sites, np.array([100, 300, 1000, 1150]), 0) == (2, 2)
    assert _close_pairs(sites, np.array([100, 1000]), 0) == (2, 0)
    # One call between two sites within the tolerance of both finds them, but does not tell them apart.
    assert _close_pairs(sites, np.array([1075]), 100) == (2, 0)
    assert _close_pairs(sites, np.array([1010, 1140]), 100) == (2, 1)


def test_reads_mode_calls_peaks_along_each_read_where_its_bases_align(cnn, tmp_path):
    """Nanopore cDNA reads on the SIRV spike-ins: every base of each read scored once per strand, peaks
    placed on the reference through the alignment (spliced reads included), counted once per read
    whatever the chunking."""
    bam = SIRV / "pcs109_5k_spliced.bam"
    common = ["--model", cnn, "--bam", bam, "--reference", SIRV / "SIRV_150601a.fasta.gz", "--contigs", "SIRV5",
              "--threshold", 0.3, "--workers", 0]
    whole = run_cli("scan", *common, "--out", tmp_path / "whole.bed", "--summary", tmp_path / "whole.json")
    assert whole.returncode == 0, whole.stderr
    calls = [line.split("\t") for line in (tmp_path / "whole.bed").read_text().splitlines()]
    assert calls and all(c[0] == "SIRV5" and int(c[2]) == int(c[1]) + 1 and int(c[6]) >= 1 for c in calls)
    aligned, read_bases = set(), 0
    with pysam.AlignmentFile(str(bam)) as reads:
        for read in reads.fetch("SIRV5"):
            aligned.update(r for _, r in read.get_aligned_pairs(matches_only=True))
            read_bases += 0 if read.is_secondary or read.is_supplementary else read.query_length
    assert all(int(c[1]) in aligned for c in calls)
    # Most donor calls with read support sit on a GT: the reads' introns, as the reference holds them.
    with Fasta(SIRV / "SIRV_150601a.fasta.gz") as fasta:
        supported = [c for c in calls if c[3] == "donor" and c[5] == "+" and int(c[6]) >= 5]
        assert supported and sum(fasta.fetch("SIRV5", int(c[1]), int(c[1]) + 2) == "GT" for c in supported) \
            > 0.8 * len(supported)
    parts = []
    for i in range(2):
        out = tmp_path / f"part{i}.bed"
        result = run_cli("scan", *common, "--out", out, "--summary", out.with_suffix(".json"), "--chunk", f"{i}/2")
        assert result.returncode == 0, result.stderr
        parts.append(out.with_suffix(".json"))
    assert run_cli("scan-gather", *parts, "--out", tmp_path / "gathered.bed", "--summary",
                   tmp_path / "gathered.json").returncode == 0
    assert (tmp_path / "gathered.bed").read_text() == (tmp_path / "whole.bed").read_text()
    # The chunks classify the reads they share; each read's windows are tallied once, by one of them.
    whole, gathered = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("whole", "gathered"))
    assert {k: whole[k] for k in ("windows", "tokens", "bases")} == {k: gathered[k] for k in ("windows", "tokens", "bases")}
    assert whole["calls_by"] == "peaks along each read, counted per site" and whole["min_distance"]
    # bp/s counts read bases, each once: not flanks, padding or the second strand.
    assert whole["bases"] == read_bases
    # Peaks lie along each read: --min-distance reaches along it past the end of short --regions (a
    # distance cut to the regions' length once let a read's lesser hits 18-27 bp from its peak through).
    site = int(supported[0][1])
    (tmp_path / "r.bed").write_text(f"SIRV5\t{site - 5}\t{site + 5}\nSIRV5\t{site + 15}\t{site + 25}\n")
    found = {}
    for distance in (10, 30):
        out = tmp_path / f"r{distance}.bed"
        result = run_cli("scan", *[o for o in common if o not in ("--contigs", "SIRV5")], "--regions", tmp_path / "r.bed",
                         "--min-distance", distance, "--out", out)
        assert result.returncode == 0, result.stderr
        found[distance] = {(c[1], c[3], c[5]): int(c[6]) for c in (line.split("\t") for line in out.read_text().splitlines())}
    # Farther apart, fewer hits along each read: the same sites or fewer, with less support in all.
    assert set(found[30]) <= set(found[10]) and sum(found[30].values()) < sum(found[10].values())


def test_reads_mode_gives_a_reads_n_bases_no_score(cnn, tmp_path):
    """As in a genome scan, N gets no score, so no call lands on it."""
    bam = tmp_path / "n.bam"
    with pysam.AlignmentFile(str(SIRV / "pcs109_5k_spliced.bam")) as reads, \
            pysam.AlignmentFile(str(bam), "wb", template=reads) as out:
        read = next(r for r in reads.fetch("SIRV5") if not r.is_secondary and not r.is_supplementary
                    and r.query_length > 800)
        qualities, sequence = read.query_qualities, read.query_sequence
        read.query_sequence = sequence[:300] + "N" * 100 + sequence[400:]
        read.query_qualities = qualities
        hidden = {r for q, r in read.get_aligned_pairs(matches_only=True) if 300 <= q < 400}
        out.write(read)
    pysam.index(str(bam))
    result = run_cli("scan", "--model", cnn, "--bam", bam, "--reference", SIRV / "SIRV_150601a.fasta.gz",
                     "--threshold", 0, "--min-distance", 1, "--workers", 0, "--out", tmp_path / "calls.bed")
    assert result.returncode == 0, result.stderr
    called = {int(line.split("\t")[1]) for line in (tmp_path / "calls.bed").read_text().splitlines()}
    assert len(hidden) > 50 and called and not called & hidden


def test_reads_mode_calls_peaks_only_among_bases_aligned_inside_the_regions(cnn, tmp_path):
    """As a genome scan calls within its regions, a read's bases outside them (and its soft clips) give
    context but neither become calls nor suppress a peak inside: with --min-distance longer than the
    read, each label and strand has exactly one peak, the best base within the regions."""
    bam = tmp_path / "one.bam"
    with pysam.AlignmentFile(str(SIRV / "pcs109_5k_spliced.bam")) as reads, \
            pysam.AlignmentFile(str(bam), "wb", template=reads) as out:
        read = next(r for r in reads.fetch("SIRV5") if not r.is_secondary and not r.is_supplementary
                    and r.query_length > 800)
        out.write(read)
        aligned = dict(read.get_aligned_pairs(matches_only=True))
        start = aligned.get(400) or aligned[401]
        end = max(r for q, r in aligned.items() if q < 550) + 1
    pysam.index(str(bam))
    regions = tmp_path / "regions.bed"
    regions.write_text(f"SIRV5\t{start}\t{end}\n")
    result = run_cli("scan", "--model", cnn, "--bam", bam, "--reference", SIRV / "SIRV_150601a.fasta.gz",
                     "--regions", regions, "--threshold", 0, "--min-distance", 5000, "--workers", 0,
                     "--out", tmp_path / "calls.bed")
    assert result.returncode == 0, result.stderr
    calls = [line.split("\t") for line in (tmp_path / "calls.bed").read_text().splitlines()]
    assert sorted((c[3], c[5]) for c in calls) == [("acceptor", "+"), ("acceptor", "-"), ("donor", "+"),
                                                   ("donor", "-")]
    assert all(start <= int(c[1]) < end for c in calls)


def test_reads_mode_counts_the_reads_with_a_base_in_the_regions_not_those_fetched_to_reach_them(cnn, tmp_path):
    bam = SIRV / "pcs109_5k_spliced.bam"
    region = ("SIRV5", 2000, 3000)
    with pysam.AlignmentFile(str(bam)) as reads:
        inside = sum(1 for r in reads.fetch(*region) if not r.flag & 0xF04
                     and any(region[1] <= pos < region[2] for _, pos in r.get_aligned_pairs(matches_only=True)))
        on_contig = sum(1 for r in reads.fetch(region[0]) if not r.flag & 0xF04)
    (tmp_path / "region.bed").write_text("\t".join(map(str, region)) + "\n")
    result = run_cli("scan", "--model", cnn, "--bam", bam, "--reference", SIRV / "SIRV_150601a.fasta.gz",
                     "--regions", tmp_path / "region.bed", "--workers", 0, "--out", tmp_path / "calls.bed")
    assert result.returncode == 0, result.stderr
    assert 0 < inside < on_contig and f"scanned {inside} reads" in result.stderr


def test_reads_stored_without_bases_cannot_be_scanned_but_their_coverage_can(cnn, tmp_path):
    bare = without_bases(SIRV / "pcs109_5k_spliced.bam", tmp_path / "bare.bam")
    common = ["--model", cnn, "--bam", bare, "--reference", SIRV / "SIRV_150601a.fasta.gz", "--contigs", "SIRV5"]
    reads = run_cli("scan", *common, "--out", tmp_path / "reads.bed", "--workers", 1)  # raised in a worker
    assert_user_error(reads, "holds no read bases (SEQ '*')", "--covered")
    assert not list(tmp_path.glob("reads.bed*"))
    covered = run_cli("scan", *common, "--covered", 5, "--out", tmp_path / "covered.bed", "--summary",
                      tmp_path / "covered.json", "--workers", 0)
    assert covered.returncode == 0, covered.stderr
    assert json.loads((tmp_path / "covered.json").read_text())["bases"] > 0


def test_reads_storing_matches_as_equals_are_scanned_with_the_references_bases(cnn, tmp_path):
    """samtools calmd -e writes '=' for each base that matches the reference: reads mode reads those
    from --reference (the same calls as from the reads' own bases), and asks for it without one."""
    reference = SIRV / "SIRV_150601a.fasta.gz"
    equals = tmp_path / "equals.bam"
    with pysam.AlignmentFile(str(SIRV / "pcs109_5k_spliced.bam")) as source, Fasta(reference) as genome, \
            pysam.AlignmentFile(str(equals), "wb", template=source) as sink:
        for read in source.fetch("SIRV5"):
            if read.query_sequence and not read.is_unmapped:
                span = genome.fetch("SIRV5", read.reference_start, read.reference_end)
                bases = list(read.query_sequence)
                for query, position in read.get_aligned_pairs(matches_only=True):
                    if bases[query] == span[position - read.reference_start]:
                        bases[query] = "="
                read.query_sequence = "".join(bases)
            sink.write(read)
    pysam.index(str(equals))
    common = ["--model", cnn, "--contigs", "SIRV5"]
    result = run_cli("scan", *common, "--bam", SIRV / "pcs109_5k_spliced.bam", "--out", tmp_path / "own.bed",
                     "--workers", 0)
    assert result.returncode == 0, result.stderr
    # In a DataLoader worker, which opens the reference itself.
    result = run_cli("scan", *common, "--bam", equals, "--reference", reference, "--out", tmp_path / "equals.bed",
                     "--workers", 1)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "equals.bed").read_text() == (tmp_path / "own.bed").read_text() != ""
    result = run_cli("scan", *common, "--bam", equals, "--out", tmp_path / "bare.bed", "--workers", 0)
    assert_user_error(result, "stores the bases that match the reference as '=' (samtools calmd -e): give --reference")
    assert not list(tmp_path.glob("bare.bed*"))


def test_covered_mode_scans_every_base_where_the_reads_cover(cnn, tmp_path):
    common = ["--model", cnn, "--bam", SIRV / "pcs109_5k_spliced.bam", "--reference", SIRV / "SIRV_150601a.fasta.gz",
              "--contigs", "SIRV5", "--covered", 20, "--workers", 0]
    result = run_cli("scan", *common, "--out", tmp_path / "c.bed", "--summary", tmp_path / "c.json",
                     "--bedgraph", tmp_path / "bg")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "c.json").read_text())
    assert summary["mode"] == "covered" and summary["dense"]
    # The summary's regions are the covered stretches widened by twice --min-distance (10 bp for
    # splice sites; a dense scan reads its flanks beyond them): every base of them scored once per
    # strand, and only those, less than the contig.
    regions = summary["regions"]
    length = summary["contig_lengths"]["SIRV5"]
    assert len(regions) > 1 and all(contig == "SIRV5" for contig, _, _ in regions)
    assert 0 < summary["bases"] == sum(end - start for _, start, end in regions) < length
    with pysam.AlignmentFile(str(SIRV / "pcs109_5k_spliced.bam")) as bam:
        for _, start, end in regions:  # 20 reads or more 20 bp into a stretch from either end, fewer just outside
            depth = np.array(bam.count_coverage("SIRV5", start, end, quality_threshold=0)).sum(0)
            assert (start == 0 or depth[20] >= 20 > depth[19]) and (end == length or depth[-21] >= 20 > depth[-20]), \
                (start, end)
    track = [line.split("\t") for line in (tmp_path / "bg" / "donor.plus.bedgraph").read_text().splitlines()[1:]]
    assert sum(int(e) - int(s) for _, s, e, _ in track) == summary["bases"]
    calls = [line.split("\t") for line in (tmp_path / "c.bed").read_text().splitlines()]
    assert calls and all(any(s <= int(c[1]) < e for _, s, e in regions) for c in calls)
    # scan-eval counts the annotated sites of the scanned stretches only, not of the whole contig.
    gtf = SIRV / "SIRV_C_150601a.gtf.gz"
    result = run_cli("scan-eval", "--calls", tmp_path / "c.bed", "--summary", tmp_path / "c.json", "--annotation", gtf,
                     "--out", tmp_path / "eval.json")
    assert result.returncode == 0, result.stderr
    inside = {(site.kind, site.strand, site.position) for site in read_annotation(gtf).splice_sites()
              if site.contig == "SIRV5" and any(s <= site.position < e for _, s, e in regions)}
    counted = json.loads((tmp_path / "eval.json").read_text())["labels"]
    assert sum(counted[label]["sites"] for label in ("donor", "acceptor")) == len(inside) > 0


def test_a_site_scores_its_best_within_the_tolerance_and_bases_near_it_are_no_false_alarms():
    """A perfect TSS track, its peaks 30 bp off the annotated sites, with the 100 bp tolerance of TSSs:
    every site ranks first; exact to the base it would rank nowhere."""
    from dnabert2.scan.evaluation import UNSCORED, _count_bases

    scores = np.zeros(20_000, dtype=np.int64)
    sites = np.arange(1_000, 19_000, 1_500)
    scores[sites + 30] = 1000
    scores[sites + 29] = 900  # a shoulder beside each peak: near a site, so not counted against it
    none = np.array([], dtype=np.int64)
    near, exact = SiteCounts(), SiteCounts()
    _count_bases(near, scores, sites, 0, len(scores), 100, none)
    _count_bases(exact, scores, sites, 0, len(scores), 0, none)
    assert near.pr_auc() == 1.0 and near.top_k_accuracy() == 1.0 and near.metrics()["sites"] == len(sites)
    assert exact.pr_auc() < 0.01
    # A peak at a site only a transcript left out gives (unlabelled) is neither a site nor a false alarm.
    scores[530] = 1000
    counted, set_aside = SiteCounts(), SiteCounts()
    _count_bases(counted, scores, sites, 0, len(scores), 100, none)
    _count_bases(set_aside, scores, sites, 0, len(scores), 100, np.array([500]))
    assert counted.pr_auc() < 1.0 and set_aside.pr_auc() == 1.0
    assert set_aside.metrics()["bases"] == near.metrics()["bases"] - 201
    scores[530] = 0
    # Bases the scan gave no score (an N run it skipped) count neither way: not as misses scoring 0.
    scores[sites[2] - 500:sites[2] + 500] = UNSCORED
    gap = SiteCounts()
    assert _count_bases(gap, scores, sites, 0, len(scores), 100, none) == 1
    assert gap.pr_auc() == 1.0 and gap.metrics()["sites"] == len(sites) - 1
    # Of the 1,000 bases gone, 201 lie near the site (uncounted already): 799 others and the site go.
    assert gap.metrics()["bases"] == near.metrics()["bases"] - 799 - 1


def one_gene_scan(tmp_path):
    """Score tracks (bigWig in bw/, bedGraph in bg/) of contig c (2,000 bp), 0 but 5 thousandths at the
    first of its gene's four donors (200, 400, 600, 800), its GFF3, and an empty calls file."""
    from dnabert2.scan.tracks import Tracks

    (tmp_path / "c.gff3").write_text("##gff-version 3\n" + "\n".join(
        ["c\tt\tgene\t101\t1000\t.\t+\t.\tID=g", "c\tt\tmRNA\t101\t1000\t.\t+\t.\tID=m;Parent=g"]
        + [f"c\tt\texon\t{a}\t{a + 99}\t.\t+\t.\tParent=m" for a in range(101, 1000, 200)]) + "\n")
    donors = np.arange(200, 1000, 200)  # each intron's first base, 0-based
    scores = np.zeros(2000, dtype=np.int64)
    scores[donors[0]] = 5  # thousandths
    tracks = Tracks()
    tracks.add_many("donor", "+", "c", np.arange(2000), np.arange(1, 2001), scores, join=True)
    tracks.write(tmp_path / "bg", tmp_path / "bw", {"c": 2000})
    (tmp_path / "calls.bed").write_text("")


def test_scan_eval_reads_calls_under_browser_track_and_comment_lines(tmp_path):
    """As UCSC's formats allow, and as a calls file comes back from a genome browser session."""
    one_gene_scan(tmp_path)
    (tmp_path / "calls.bed").write_text("browser position c:1-2000\ntrack name=calls\n# scored by hand\n"
                                        "c\t200\t201\tdonor\t900\t+\t1\t-1\t-1\t0\n")
    result = run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", tmp_path / "c.gff3",
                     "--out", tmp_path / "eval.json")
    assert result.returncode == 0, result.stderr
    donor = json.loads((tmp_path / "eval.json").read_text())["labels"]["donor"]
    assert (donor["calls"], donor["sites"], donor["precision"]) == (1, 4, 1.0)


def test_a_tolerance_past_the_contig_scores_as_the_contig_length_does(tmp_path):
    """Every base lies within reach of every site either way. A loop over the offsets and a filter as
    wide as the tolerance took minutes and gigabytes at 10^8; past 2^63, positions ± it overflowed."""
    one_gene_scan(tmp_path)
    (tmp_path / "s.json").write_text(json.dumps({
        "called": ["donor"], "regions": [["c", 0, 2000]], "contig_lengths": {"c": 2000}, "strands": "+",
        "bigwig_dir": "bw", "bedgraph_dir": None}))
    reports = []
    for tolerance in (2000, 10**9, 10**19):
        result = run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", tmp_path / "c.gff3",
                         "--summary", tmp_path / "s.json", "--splice-tolerance", tolerance)
        assert result.returncode == 0, result.stderr
        reports.append(json.loads(result.stdout))
    near, far, farther = (report["labels"]["donor"] for report in reports)
    assert near == far == farther and near["sites"] == 4
    assert reports[2]["splice_tolerance"] == 10**19


def test_the_metaplot_is_the_same_from_bigwig_and_bedgraph(tmp_path):
    """bigWig holds float32 (0.005 is 0.00499999989), bedGraph decimal text: a mean of whole thousandths
    lying on a half (5 / 4 sites = 0.00125) must round alike from either."""
    one_gene_scan(tmp_path)
    metaplots = []
    for only in ("bigwig_dir", "bedgraph_dir"):
        summary = {"called": ["donor"], "regions": [["c", 0, 2000]], "contig_lengths": {"c": 2000}, "strands": "+",
                   "bigwig_dir": None, "bedgraph_dir": None} | {only: "bw" if only == "bigwig_dir" else "bg"}
        (tmp_path / "s.json").write_text(json.dumps(summary))
        result = run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", tmp_path / "c.gff3",
                         "--summary", tmp_path / "s.json", "--out", tmp_path / f"{only}.json")
        assert result.returncode == 0, result.stderr
        metaplots.append(json.loads((tmp_path / f"{only}.json").read_text())["metaplot"]["donor"])
    assert metaplots[0][200] == metaplots[1][200] == round(0.005 / 4, 4) == 0.0013
    assert metaplots[0] == metaplots[1]


def test_offsets_no_site_scored_are_null_in_the_report_and_gaps_in_the_plot(tmp_path):
    """Scanned c:151-350 holds one donor (200): offsets that reach outside the scan have no mean, and
    a report saying 0 there would draw a false drop. The report reads back gzipped, as named."""
    one_gene_scan(tmp_path)
    (tmp_path / "s.json").write_text(json.dumps({
        "called": ["donor"], "regions": [["c", 150, 350]], "contig_lengths": {"c": 2000}, "strands": "+",
        "bigwig_dir": "bw", "bedgraph_dir": None}))
    result = run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", tmp_path / "c.gff3",
                     "--summary", tmp_path / "s.json", "--out", tmp_path / "eval.json.gz")
    assert result.returncode == 0, result.stderr
    with gzip.open(tmp_path / "eval.json.gz", "rt") as handle:
        report = json.load(handle)
    curve = report["metaplot"]["donor"]  # offset -200..200 from base 200; bases 150..349 scored
    assert curve[:150] == [None] * 150 and curve[350:] == [None] * 51
    assert curve[200] == 0.005 and set(curve[150:200] + curve[201:350]) == {0.0}
    assert report["scope"] == "the whole scan" and report["labels"]["donor"]["sites"] == 1
    result = run_cli("plot", "metaplot", f"model={tmp_path / 'eval.json.gz'}", "--out", tmp_path / "m.svg")
    assert result.returncode == 0, result.stderr
    result = run_cli("scan-table", f"model={tmp_path / 'eval.json.gz'}", "--out", tmp_path / "t.tsv")
    assert result.returncode == 0, result.stderr
    header, row = (line.split("\t") for line in (tmp_path / "t.tsv").read_text().splitlines())
    assert dict(zip(header, row)) | {"pr_auc": "", "top_k_accuracy": ""} == {
        "scan": "model", "label": "donor", "scope": "the whole scan", "tolerance": "0", "calls": "0",
        "sites": "1", "precision": "", "recall": "0.0", "f1": "", "pr_auc": "", "top_k_accuracy": ""}
    # No site within reach of the scan: every offset null, and the plot says so rather than drawing a 0 line.
    (tmp_path / "s.json").write_text(json.dumps({
        "called": ["donor"], "regions": [["c", 1000, 2000]], "contig_lengths": {"c": 2000}, "strands": "+",
        "bigwig_dir": "bw", "bedgraph_dir": None}))
    assert run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", tmp_path / "c.gff3",
                   "--summary", tmp_path / "s.json", "--out", tmp_path / "none.json").returncode == 0
    none = json.loads((tmp_path / "none.json").read_text())
    assert set(none["metaplot"]["donor"]) == {None}
    assert none["labels"]["donor"]["undefined"]["pr_auc"] == "no annotated site with a scored base where the scan looked"
    result = run_cli("plot", "metaplot", f"none={tmp_path / 'none.json'}", "--out", tmp_path / "n.svg")
    assert result.returncode == 0 and "no donor site with a scored base" in result.stderr, result.stderr


def test_every_scan_in_a_metaplot_has_a_line_of_its_own(tmp_path, monkeypatch):
    """Matplotlib's ten colours came round again: the eleventh scan drew in the first one's colour."""
    from matplotlib.colors import to_rgba

    from dnabert2 import plots

    one_gene_scan(tmp_path)
    (tmp_path / "s.json").write_text(json.dumps({
        "called": ["donor"], "regions": [["c", 0, 2000]], "contig_lengths": {"c": 2000}, "strands": "+",
        "bigwig_dir": "bw", "bedgraph_dir": None}))
    assert run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", tmp_path / "c.gff3",
                   "--summary", tmp_path / "s.json", "--out", tmp_path / "eval.json").returncode == 0
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: drawn.append(fig))
    plots.metaplot({f"scan{i}": tmp_path / "eval.json" for i in range(25)}, tmp_path / "m.svg")
    (axes,) = drawn[0].axes
    looks = [(to_rgba(line.get_color()), line.get_linestyle(), line.get_label()) for line in axes.get_lines()[:-1]]
    assert [label for *_, label in looks] == [f"scan{i}" for i in range(25)]
    assert len({(colour, style) for colour, style, _ in looks}) == 25


def test_tables_and_metaplots_say_when_reports_counted_other_sites(tmp_path):
    """A scan scored against a cut annotation sat beside one scored against the whole, in a table and a
    metaplot, with nothing to tell their sites apart."""
    one_gene_scan(tmp_path)
    (tmp_path / "s.json").write_text(json.dumps({
        "called": ["donor"], "regions": [["c", 0, 2000]], "contig_lengths": {"c": 2000}, "strands": "+",
        "bigwig_dir": "bw", "bedgraph_dir": None}))
    lines = (tmp_path / "c.gff3").read_text().splitlines()
    annotations = {"c": tmp_path / "c.gff3", "cut": tmp_path / "cut.gff3", "copy": tmp_path / "copy.gff3.gz"}
    annotations["cut"].write_text("\n".join(lines[:-1]) + "\n")  # its last exon left out: one donor fewer
    with open(annotations["c"], "rb") as plain, gzip.open(annotations["copy"], "wb") as copy:
        copy.write(plain.read())  # the same sites from another file, gzipped
    for name, annotation in annotations.items():
        assert run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", annotation,
                       "--summary", tmp_path / "s.json", "--out", tmp_path / f"{name}.json").returncode == 0
    old = json.loads((tmp_path / "cut.json").read_text())
    del old["labels"]["donor"]["sites_sha256"]  # a report of an earlier version, which cannot be told apart
    (tmp_path / "old.json").write_text(json.dumps(old))
    for command in (["scan-table", "--out", tmp_path / "t.tsv"], ["plot", "metaplot", "--out", tmp_path / "m.svg"]):
        # Grouped by their sites; a report of an earlier version, without a digest, is passed over.
        result = run_cli(*command, f"whole={tmp_path / 'c.json'}", f"copy={tmp_path / 'copy.json'}",
                         f"old={tmp_path / 'old.json'}", f"cut={tmp_path / 'cut.json'}")
        assert result.returncode == 0, result.stderr
        assert (f"of reports of other donor sites: whole, copy ({annotations['c']} --min-intron 20); against cut "
                f"({annotations['cut']} --min-intron 20); their figures do not compare") in result.stderr
        for other in ("copy", "old"):
            result = run_cli(*command, f"whole={tmp_path / 'c.json'}", f"{other}={tmp_path / f'{other}.json'}")
            assert result.returncode == 0 and "other donor sites" not in result.stderr, result.stderr


def test_scan_eval_refuses_tracks_calls_and_annotations_that_are_not_the_scans(tmp_path):
    """What scan-eval reads must be what the scan wrote: tracks written over by another scan, damaged or
    not tracks at all, calls on a contig the scanned genome lacks, and an annotation with no site of the
    called labels each gave figures with exit 0 (or a traceback); each is now one line, and no report."""
    from dnabert2.scan.tracks import Tracks

    one_gene_scan(tmp_path)
    base = {"called": ["donor"], "regions": [["c", 0, 2000]], "contig_lengths": {"c": 2000}, "strands": "+",
            "bigwig_dir": "bw", "bedgraph_dir": None}
    tracks = Tracks()  # as one_gene_scan's, the digests kept this time, as a scan's summary keeps them
    scores = np.zeros(2000, dtype=np.int64)
    scores[200] = 5
    tracks.add_many("donor", "+", "c", np.arange(2000), np.arange(1, 2001), scores, join=True)
    digests = tracks.write(tmp_path / "bg", tmp_path / "bw", {"c": 2000})
    (tmp_path / "s.json").write_text(json.dumps(base | {"track_sha256": digests}))
    out = tmp_path / "eval.json"

    def evaluate(summary="s.json", calls="calls.bed", annotation="c.gff3"):
        return run_cli("scan-eval", "--calls", tmp_path / calls, "--annotation", tmp_path / annotation,
                       "--summary", tmp_path / summary, "--out", out)

    result = evaluate()
    assert result.returncode == 0, result.stderr
    out.unlink()
    # Another scan's tracks into the same folder (contig c scored otherwise).
    other = Tracks()
    other.add_many("donor", "+", "c", np.arange(1000), np.arange(1, 1001), np.full(1000, 7), join=True)
    other.write(None, tmp_path / "bw", {"c": 2000})
    assert_user_error(evaluate(), "donor.plus.bw: not the track the scan of", "scan again")
    # A summary without digests (written by hand) still gets one line for what is not a track of scores.
    (tmp_path / "bare.json").write_text(json.dumps(base))
    (tmp_path / "bw" / "donor.plus.bw").write_text("not a bigWig\n")
    assert_user_error(evaluate("bare.json"), "donor.plus.bw: not a bigWig file")
    coverage = pyBigWig.open(str(tmp_path / "bw" / "donor.plus.bw"), "w")  # read depths, say: values past 1
    coverage.addHeader([("c", 2000)])
    coverage.addEntries(["c"], [0], ends=[2000], values=[12.0])
    coverage.close()
    assert_user_error(evaluate("bare.json"), "holds values outside 0-1")
    (tmp_path / "bg" / "donor.plus.bedgraph").write_text("c\t0\t2000\tabc\n")
    (tmp_path / "bare-bg.json").write_text(json.dumps(base | {"bigwig_dir": None, "bedgraph_dir": "bg"}))
    assert_user_error(evaluate("bare-bg.json"), "donor.plus.bedgraph: not a bedGraph")
    # Calls on chrc, of a genome that names its contigs otherwise: not this scan's.
    (tmp_path / "bare.json").write_text(json.dumps(base | {"bigwig_dir": None}))
    (tmp_path / "chr.bed").write_text("chrc\t199\t200\tdonor\t900\t+\t1\t-1\t-1\t0\n")
    assert_user_error(evaluate("bare.json", "chr.bed"), "calls on chrc, a contig the scanned genome", "lacks")
    # An annotation of single-exon transcripts: no donor anywhere, nothing to score.
    (tmp_path / "one-exon.gff3").write_text("##gff-version 3\nc\tt\tmRNA\t101\t1000\t.\t+\t.\tID=m\n"
                                           "c\tt\texon\t101\t1000\t.\t+\t.\tParent=m\n")
    assert_user_error(evaluate("bare.json", annotation="one-exon.gff3"), "one-exon.gff3: no annotated donor sites")
    assert not out.exists()


@pytest.mark.parametrize("content, words", [
    ({"task": "splice", "labels": {"0": "neither", "1": "donor"}}, ["not a scan-eval report"]),  # a task.json
    ({"labels": {"donor": {}}, "metaplot": {"offsets": [-2, 2], "donor": [0.1, 0.2]}}, ["not a scan-eval report"]),
    ({"labels": {"donor": {}}, "metaplot": {"offsets": 5}}, ["not a scan-eval report"]),
    ({"labels": {"donor": {}}, "metaplot": {"offsets": [0, "1"], "donor": [0.1, 0.2]}}, ["not a scan-eval report"]),
    ([{"labels": {}}], ["not a scan-eval report"]),
])
def test_plot_metaplot_and_scan_table_refuse_what_is_not_a_report_alike(tmp_path, monkeypatch, content, words):
    # Under python -O too, as pipelines may run it: the checks are not asserts.
    monkeypatch.setenv("PYTHONOPTIMIZE", "1")
    (tmp_path / "r.json").write_text(json.dumps(content))
    for command in (["plot", "metaplot", f"r={tmp_path / 'r.json'}", "--out", tmp_path / "m.svg"],
                    ["scan-table", f"r={tmp_path / 'r.json'}", "--out", tmp_path / "t.tsv"]):
        assert_user_error(run_cli(*command), *words)
    assert not list(tmp_path.glob("[mt].*"))


def test_held_out_split_and_given_contigs_both_limit_the_evaluation(tmp_path):
    from types import SimpleNamespace

    from dnabert2.scan.evaluation import _evaluated_regions

    task = tmp_path / "task"
    task.mkdir()
    (task / "task.json").write_text(json.dumps({"split": "positions", "contigs": {"test": ["I"]},
                                                "regions": {"test": [["I", 5000, 9000]]}}))
    scanned = {"regions": [["I", 0, 10000], ["II", 0, 8000]]}
    given = SimpleNamespace(regions=None, contigs=["I", "I"])
    assert _evaluated_regions(scanned, given, task) == ([("I", 5000, 9000)], f"--contigs I I and the test split of {task}")
    assert _evaluated_regions(scanned, SimpleNamespace(regions=None, contigs=["I", "I"]), None) == (
        [("I", 0, 10000)], "--contigs I I")
    assert _evaluated_regions(None, SimpleNamespace(regions=None, contigs=None), None) == (None, "the whole annotation")
    # A held-out evaluation outside the test split would report nothing but nulls: refused instead.
    (tmp_path / "calls.bed").write_text("II\t10\t11\tdonor\t900\t+\t1\t-1\t-1\t0\n")
    result = run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", GENOMES / "ce1pct.gff3.gz",
                     "--contigs", "II", "--held-out", task, "--out", tmp_path / "eval.json")
    assert_user_error(result, "nothing to evaluate", "--contigs II", f"the test split of {task}")
    assert not (tmp_path / "eval.json").exists()


def test_a_held_out_task_of_other_sites_is_said(tmp_path):
    """A TSS task's test split given for splice calls limits the evaluation as asked, with a warning."""
    (tmp_path / "calls.bed").write_text("II\t10\t11\tdonor\t900\t+\t1\t-1\t-1\t0\n")
    for kind, warned in (("promoter", True), ("splice", False)):
        task = tmp_path / kind
        task.mkdir()
        (task / "task.json").write_text(json.dumps({"task": kind, "split": "contigs", "contigs": {"test": ["II"]}}))
        result = run_cli("scan-eval", "--calls", tmp_path / "calls.bed", "--annotation", GENOMES / "ce1pct.gff3.gz",
                         "--held-out", task, "--out", tmp_path / f"{kind}.json")
        assert result.returncode == 0, result.stderr
        assert ("is a promoter task (promoter); the calls evaluated are donor" in result.stderr) == warned, result.stderr
        assert json.loads((tmp_path / f"{kind}.json").read_text())["scope"] == f"the test split of {task}"


def test_reports_of_one_name_are_refused_not_dropped(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps({"labels": {}}))
    (tmp_path / "a" / "other.json").write_text(json.dumps({"labels": {}}))
    result = run_cli("scan-table", tmp_path / "a" / "eval.json", tmp_path / "a" / "other.json")
    assert_user_error(result, "two inputs named 'a'", "NAME=PATH")
    result = run_cli("scan-table", f"x={tmp_path / 'a' / 'eval.json'}", tmp_path / "b" / "eval.json")
    assert result.returncode == 0, result.stderr
    assert_user_error(run_cli("scan-table", f"x={tmp_path / 'absent.json'}"), "absent.json: no such file")
    for item in ("x=", f"={tmp_path / 'a' / 'eval.json'}"):
        assert_user_error(run_cli("scan-table", item), "NAME=PATH needs both a name and a path")
    result = run_cli("scan-table", f"x={tmp_path / 'a' / 'eval.json'}", f"y={tmp_path / 'a' / '..' / 'a' / 'eval.json'}")
    assert_user_error(result, "x and y are the same file")
    # A link to a folder names its report by the link, as given, not by the folder it points to.
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "eval.json").write_text(json.dumps({"labels": {"donor": {"calls": 1}}}))
    (tmp_path / "link").symlink_to(tmp_path / "c")
    result = run_cli("scan-table", tmp_path / "link" / "eval.json", tmp_path / "b" / "eval.json")
    assert result.returncode == 0, result.stderr
    assert "| link | donor |" in result.stdout and "| c |" not in result.stdout
    assert "b/eval.json: a report of no labels" in result.stderr  # no rows of it, said rather than silent


def test_scan_table_names_reports_by_their_folder_and_writes_what_the_name_says(tmp_path, monkeypatch):
    metrics = {"calls": 3, "sites": 4, "precision": 0.5, "recall": None, "f1": None}
    folder = tmp_path / "k=v"  # a folder whose name holds "=", given as a path that exists
    folder.mkdir()
    (folder / "eval.json").write_text(json.dumps({"labels": {"donor": metrics}}))
    monkeypatch.chdir(folder)
    result = run_cli("scan-table", "eval.json", "--out", tmp_path / "t.tsv.gz")  # a bare name: its folder's
    assert result.returncode == 0, result.stderr
    with gzip.open(tmp_path / "t.tsv.gz", "rt") as handle:
        rows = handle.read().splitlines()
    assert rows[1].split("\t")[:7] == ["k=v", "donor", "", "", "3", "4", "0.5"]  # a report without scope
    (folder / "bad.json").write_text(json.dumps({"labels": {"donor": None}}))
    assert_user_error(run_cli("scan-table", folder / "bad.json"), "bad.json: not a scan-eval report")


def test_predict_with_a_per_base_model_finds_the_site_in_each_sequence(cnn, ce1pct, tmp_path):
    """400 bp around each annotated donor of held-out chromosome IV, on its strand: the trained CNN's
    best donor base is the annotated one far more often than chance (1 in 400), and the TSV holds
    each site label's best probability and its offset, as `scan` would score those bases."""
    donors = [s for s in read_annotation(ANNOTATION).splice_sites() if s.contig == "IV" and s.kind == "donor"]
    lines, offsets = [], []
    for i, site in enumerate(donors):
        start = site.position - 200
        lines.append(f"IV\t{start}\t{start + 400}\td{i}\t0\t{site.strand}\n")
        offsets.append(200 if site.strand == "+" else 199)  # the region reads reverse-complemented on '-'
    (tmp_path / "donors.bed").write_text("".join(lines))
    out = tmp_path / "donors.tsv"
    result = run_cli("predict", "--model", cnn, "--bed", tmp_path / "donors.bed", "--genome", ce1pct, "--out", out)
    assert result.returncode == 0, result.stderr
    rows = rows_of_tsv(out)
    assert list(rows[0]) == ["id", "p_donor", "at_donor", "p_acceptor", "at_acceptor", "label"]
    assert [row["id"] for row in rows] == [f"d{i}" for i in range(len(donors))]
    found = sum(int(row["at_donor"]) == at for row, at in zip(rows, offsets))
    assert found > 0.3 * len(donors), (found, len(donors))
    for row in rows:  # the best site label where its probability reaches 0.5
        best = max(("donor", "acceptor"), key=lambda label: float(row[f"p_{label}"]))
        assert row["label"] == (best if float(row[f"p_{best}"]) >= 0.5 else "neither"), row


def rows_of_tsv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_a_dense_scan_scores_every_base_beside_n_runs_and_none_of_them(cnn, tmp_path):
    """An assembly gap inside a core, two IUPAC codes, and a core of N only: every A, C, G and T is
    scored on both strands, the rest is not, and the core of N only is not read at all."""
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        sequence = genome.fetch("I", 0, 6 * CORE)
    gap, iupac, empty = (2500, 2800), (2800, 2802), (4 * CORE, 5 * CORE)
    gapped = (sequence[:gap[0]] + "N" * (gap[1] - gap[0]) + "RY" + sequence[iupac[1]:empty[0]] + "N" * CORE
              + sequence[empty[1]:])
    (tmp_path / "g.fa").write_text(f">I\n{gapped}\n")
    result = run_cli("scan", "--model", cnn, "--fasta", tmp_path / "g.fa", "--out", tmp_path / "calls.bed",
                     "--summary", tmp_path / "s.json", "--bedgraph", tmp_path / "bg", "--workers", 0)
    assert result.returncode == 0, result.stderr
    expected = set(range(len(gapped))) - set(range(gap[0], iupac[1])) - set(range(*empty))
    tracks = sorted((tmp_path / "bg").glob("*.bedgraph"))
    assert len(tracks) == 4  # donor and acceptor, each strand
    for track in tracks:
        scored = [range(int(start), int(end)) for _, start, end, _ in
                  (line.split("\t") for line in track.read_text().splitlines()[1:])]
        assert sorted(base for bases in scored for base in bases) == sorted(expected), track.name
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["windows_skipped_for_n"] == 2 and summary["max_n"] is None


def test_a_base_both_donor_and_acceptor_is_left_unlabelled_and_said_so(tmp_path):
    """One transcript's intron ends (AG) on the base where another's begins (GT): a base gets one
    label, and keeping either would teach the other as background there (the acceptor was kept)."""
    rng = np.random.default_rng(0)
    records, lines = [], []
    for contig in ("c1", "c2", "c3"):
        bases = list(rng.choice(list("ACGT"), 1500))
        for position, base in ((100, "G"), (101, "T"), (199, "A"), (200, "G"), (201, "T"), (398, "A"), (399, "G")):
            bases[position] = base  # 0-based: a's intron 201-400 and b's 101-201 (1-based), share base 201
        records.append(f">{contig}\n{''.join(bases)}\n")
        for transcript, exons in (("a", ((101, 200), (401, 500))), ("b", ((51, 100), (202, 300)))):
            lines += [f'{contig}\tt\texon\t{start}\t{end}\t.\t+\t.\tgene_id "g{contig}"; transcript_id "{transcript}{contig}";\n'
                      for start, end in exons]
    (tmp_path / "g.fa").write_text("".join(records))
    (tmp_path / "a.gtf").write_text("".join(lines))
    result = run_cli("tasks", "splice", "--dense", "--genome", tmp_path / "g.fa", "--annotation", tmp_path / "a.gtf",
                     "--out", tmp_path / "task", "--core", 300, "--flank", 10, "--empty-rate", 1,
                     "--test-contigs", "c3", "--dev-contigs", "c2")
    assert result.returncode == 0, result.stderr
    assert "3 base(s) are annotated as two kinds of site" in result.stderr and "c1:201(+)" in result.stderr
    task = json.loads((tmp_path / "task" / "task.json").read_text())
    for split in ("train", "dev", "test"):
        assert task["counts"][split] | {"windows": 0} == {"windows": 0, "donor": 1, "acceptor": 1, "unlabelled": 1}
        (row,) = [r for r in rows_of(tmp_path / "task" / f"{split}.csv") if r["strand"] == "+" and r["start"] == "0"]
        assert (row["sites"], row["unlabelled"]) == ("100:1", "200")  # the acceptor at 399 is in the next core


def test_unlabelled_bases_are_skipped_by_the_loss_and_older_task_folders_read_without_them(dense_task, tmp_path):
    """A site only a transcript left out gives is neither a site nor background: its base's target is
    the one cross-entropy ignores, as the flanks'. A folder written before the unlabelled column reads
    as one without unlabelled bases."""
    from dnabert2.bases.job import DenseJob

    job = DenseJob(dense_task, None)
    i, window = next((i, w) for i, w in enumerate(job.task.splits["train"]) if w.unlabelled)
    labels = next(job.batches("train", np.array([i]), 1, "cpu"))["labels"][0]
    for offset in window.unlabelled:
        assert labels[FLANK + offset] == -100
    assert (labels[FLANK:FLANK + CORE] == -100).sum() == len(window.unlabelled)
    assert all(labels[FLANK + offset] == label for offset, label in window.sites.items())
    older = tmp_path / "older"
    older.mkdir()
    (older / "task.json").write_text((dense_task / "task.json").read_text())
    for split in ("train", "dev", "test"):
        with open(dense_task / f"{split}.csv", newline="") as handle, open(older / f"{split}.csv", "w") as out:
            csv.writer(out, lineterminator="\n").writerows(row[:5] for row in csv.reader(handle))
    read = read_dense_task(older)
    assert [w.sites for w in read.splits["train"]] == [w.sites for w in job.task.splits["train"]]
    assert not any(w.unlabelled for split in read.splits.values() for w in split)
