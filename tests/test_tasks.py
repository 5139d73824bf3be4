"""GUE-style tasks built from a genome and its annotation (C. elegans ce1pct + WormBase GFF3)."""

import csv
import gzip
import json
import re
from collections import Counter

import pysam
import pytest

from conftest import DATA, assert_user_error, run_cli
from dnabert2.sequences import Fasta, read_annotation, reverse_complement

ANNOTATION = DATA / "genomes" / "ce1pct.gff3.gz"


@pytest.fixture
def genome(ce1pct):
    return ce1pct


def read_split(folder, split):
    with open(folder / f"{split}.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["sequence", "label"]
    return [(sequence, int(label)) for sequence, label in rows[1:]]


def build(genome, tmp_path, *args):
    out = tmp_path / "task"
    result = run_cli("tasks", *args, "--genome", genome, "--annotation", ANNOTATION, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "task.json").read_text())


def test_splice_task(genome, tmp_path):
    out, task = build(genome, tmp_path, "splice")
    splits = {split: read_split(out, split) for split in ("train", "dev", "test")}
    assert task["labels"] == {"0": "neither", "1": "donor", "2": "acceptor"}
    for split, rows in splits.items():
        counts = Counter(label for _, label in rows)
        assert set(counts) == {0, 1, 2} and len(set(counts.values())) == 1, (split, counts)  # balanced
        assert all(len(sequence) == 400 and set(sequence) <= set("ACGT") for sequence, _ in rows)
    train = splits["train"]
    donors = [s for s, label in train if label == 1]
    acceptors = [s for s, label in train if label == 2]
    assert sum(s[200:202] == "GT" for s in donors) / len(donors) > 0.95  # the intron starts at base 200
    assert sum(s[198:200] == "AG" for s in acceptors) / len(acceptors) > 0.95  # and ends at base 199
    assert all(s[200:202] == "GT" or s[198:200] == "AG" for s, label in train if label == 0)
    # Split by contig, and no sequence in two places.
    contigs = task["contigs"]
    assert not set(contigs["test"]) & set(contigs["train"]) and not set(contigs["dev"]) & set(contigs["train"])
    everything = [s for rows in splits.values() for s, _ in rows]
    assert len(everything) == len(set(everything))
    # No negative sits on a junction that RNA-seq shows (WormBase's intron lines of no transcript).
    negatives = {s for rows in splits.values() for s, label in rows if label == 0}
    assert not negatives & set(rna_seq_junction_windows(genome))


def rna_seq_junction_windows(genome) -> list[str]:
    """The splice task's windows centred on the ends of the annotation's RNASeq_splice introns: the
    donor (the intron's first base) at index 200, the acceptor (its last) at 199, on its strand."""
    complement = str.maketrans("ACGT", "TGCA")
    windows = []
    with gzip.open(ANNOTATION, "rt") as handle, pysam.FastaFile(str(genome)) as fasta:
        for line in handle:
            fields = line.split("\t")
            if len(fields) != 9 or fields[1] != "RNASeq_splice" or fields[2] != "intron":
                continue
            contig, first, last, strand = fields[0], int(fields[3]) - 1, int(fields[4]) - 1, fields[6]
            length = fasta.get_reference_length(contig)
            for site, at in ((first, 200), (last, 199)) if strand == "+" else ((last, 200), (first, 199)):
                start = site - at if strand == "+" else site - 399 + at
                if 0 <= start and start + 400 <= length:
                    bases = fasta.fetch(contig, start, start + 400).upper()
                    windows.append(bases if strand == "+" else bases.translate(complement)[::-1])
    assert len(windows) > 10_000
    return windows


@pytest.mark.parametrize("dense", [[], ["--dense", "--core", 2000, "--flank", 200]])
def test_the_contigs_a_run_chose_given_with_its_seed_give_the_same_task(genome, tmp_path, dense):
    """task.json names the contigs an automatic split chose; given back with the seed they gave another
    task (the split's draws were made only when choosing, and shifted every later draw)."""
    chosen, task = build(genome, tmp_path / "chosen", "splice", *dense)
    given, _ = build(genome, tmp_path / "given", "splice", *dense, "--test-contigs", *task["contigs"]["test"],
                     "--dev-contigs", *task["contigs"]["dev"])
    for split in ("train", "dev", "test"):
        assert (chosen / f"{split}.csv").read_bytes() == (given / f"{split}.csv").read_bytes(), split


def test_a_donor_window_is_the_annotated_sequence(genome, tmp_path):
    out, task = build(genome, tmp_path, "splice", "--test-contigs", "IV", "--dev-contigs", "V")
    assert task["contigs"]["test"] == ["IV"] and task["contigs"]["dev"] == ["V"]
    test = {s for s, label in read_split(out, "test") if label == 1}
    donors = [s for s in read_annotation(ANNOTATION).splice_sites() if s.contig == "IV" and s.kind == "donor"]
    with Fasta(genome) as fasta:
        expected = set()
        for site in donors:
            if site.strand == "+":
                expected.add(fasta.fetch("IV", site.position - 200, site.position + 200))
            else:
                expected.add(reverse_complement(fasta.fetch("IV", site.position - 199, site.position + 201)))
    assert test and test <= expected


@pytest.mark.parametrize("kind, length", [("promoter", 300), ("core-promoter", 70)])
def test_promoter_tasks(genome, tmp_path, kind, length):
    out, task = build(genome, tmp_path, kind)
    rows = read_split(out, "train")
    assert {len(s) for s, _ in rows} == {length} and Counter(l for _, l in rows)[0] == Counter(l for _, l in rows)[1]
    with Fasta(genome) as fasta:
        tss = [s for s in read_annotation(ANNOTATION).tss() if s.contig in task["contigs"]["train"]]
        site = next(s for s in tss if s.strand == "+" and s.position > 300)
        upstream = 249 if kind == "promoter" else 34
        assert fasta.fetch(site.contig, site.position - upstream, site.position - upstream + length) in {
            s for s, label in rows if label == 1} | {s for s, label in read_split(out, "dev") + read_split(out, "test")}


def test_shuffled_negatives_keep_the_composition(genome, tmp_path):
    out, _ = build(genome, tmp_path, "promoter", "--negatives", "shuffled")
    rows = read_split(out, "train")
    positives = {"".join(sorted(s)) for s, label in rows if label == 1}
    negatives = ["".join(sorted(s)) for s, label in rows if label == 0]
    assert len(negatives) == sum(1 for _, label in rows if label == 1)
    # Each negative is a positive with 12 of its 20 pieces moved: the same bases in another order.
    assert sum(n in positives for n in negatives) > 0.9 * len(negatives)


def test_bad_input(genome, tmp_path):
    other = tmp_path / "other.fa"
    other.write_text(">chrA\n" + "ACGT" * 500 + "\n")
    assert_user_error(run_cli("tasks", "splice", "--genome", other, "--annotation", ANNOTATION, "--out", tmp_path / "t"),
                      "none of its 7 contig(s) is in")
    assert_user_error(run_cli("tasks", "splice", "--genome", genome, "--annotation", ANNOTATION, "--out",
                              tmp_path / "t", "--test-contigs", "chrZ"), "chrZ")
    assert_user_error(run_cli("tasks", "splice", "--genome", genome, "--annotation", ANNOTATION, "--out",
                              tmp_path / "t", "--negatives", "shuffled"), "negatives")
    # MtDNA's two tRNA starts lie on 137 bp, shorter than a promoter window: they count for no split.
    assert_user_error(run_cli("tasks", "promoter", "--genome", genome, "--annotation", ANNOTATION, "--out",
                              tmp_path / "t", "--test-contigs", "MtDNA"), "no annotated site that gives a window",
                      "MtDNA")
    assert_user_error(run_cli("tasks", "promoter", "--dense", "--genome", genome, "--annotation", ANNOTATION, "--out",
                              tmp_path / "t", "--test-contigs", "MtDNA"), "no annotated site that gives a window")
    short, notes = tmp_path / "short.fa", tmp_path / "short.gff3"
    short.write_text(">c\n" + "ACGT" * 25 + "\n")
    notes.write_text("##gff-version 3\nc\tx\tgene\t10\t50\t.\t+\t.\tID=g\nc\tx\tmRNA\t10\t50\t.\t+\t.\tID=t;Parent=g\n"
                     "c\tx\texon\t10\t50\t.\t+\t.\tParent=t\n")
    assert_user_error(run_cli("tasks", "promoter", "--genome", short, "--annotation", notes, "--out", tmp_path / "t"),
                      "none of the 1 annotated sites has a whole 300 bp window")
    assert not (tmp_path / "t").exists()


def test_an_annotation_of_other_coordinates_is_refused_by_its_splice_motifs(genome, tmp_path):
    """The same contig names 3 kb off: only ~4% of donors on GT, against ~98% of the example's own; and
    the minus strand's alone, which the two strands together (~55%) would hide."""
    with Fasta(genome) as fasta:
        lengths = fasta.lengths

    def shifted(strands):
        path = tmp_path / f"shifted{len(strands)}.gff3"
        with gzip.open(ANNOTATION, "rt") as notes, open(path, "w") as out:
            for line in notes:
                fields = line.rstrip("\n").split("\t")
                if len(fields) == 9 and fields[6] in strands and int(fields[4]) + 3000 <= lengths[fields[0]]:
                    fields[3:5] = (str(int(fields[3]) + 3000), str(int(fields[4]) + 3000))
                    out.write("\t".join(fields) + "\n")
                elif len(fields) == 9 and fields[6] not in strands:
                    out.write(line)
        return path

    for dense in ([], ["--dense"]):
        result = run_cli("tasks", "splice", *dense, "--genome", genome, "--annotation", shifted("+-"), "--out",
                         tmp_path / "t")
        assert_user_error(result, "donor sites on the + strand lie on GT", "the annotation of this assembly")
    result = run_cli("tasks", "splice", "--genome", genome, "--annotation", shifted("-"), "--out", tmp_path / "t")
    assert_user_error(result, "donor sites on the - strand lie on GT")
    assert not (tmp_path / "t").exists()


def test_registry_kinds_are_consistent():
    from dnabert2.tasks.registry import KINDS, SITE_LABELS, TOLERANCES

    for kind in KINDS.values():
        assert len(set(kind.labels)) == len(kind.labels) and kind.labels[0] == kind.background
        # Every label of a kind sees windows of one length: the classifier takes one window.
        assert {label.geometry.length for label in kind.sites} == {kind.window_bp}
        assert kind.negatives and all(label.tolerance in TOLERANCES for label in kind.sites)
    for kind in KINDS.values():
        for label in kind.sites:  # a label name means one kind of site wherever it is used
            assert (SITE_LABELS[label.name].site, SITE_LABELS[label.name].tolerance) == (label.site, label.tolerance)


def test_tts_task_windows_sit_on_the_transcripts_last_base(genome, tmp_path):
    out, task = build(genome, tmp_path, "tts", "--test-contigs", "IV", "--dev-contigs", "V")
    assert task["labels"] == {"0": "non-tts", "1": "tts"} and task["window_bp"] == 300
    rows = read_split(out, "test")
    positives = {s for s, label in rows if label == 1}
    ends = [t for t in read_annotation(ANNOTATION).transcripts if t.contig == "IV"]
    with Fasta(genome) as fasta:
        expected = {fasta.fetch("IV", t.end - 1 - 249, t.end + 50) for t in ends if t.strand == "+"}
        expected |= {reverse_complement(fasta.fetch("IV", t.start - 50, t.start + 250)) for t in ends if t.strand == "-"}
    assert positives and positives <= expected
    assert Counter(label for _, label in rows)[0] == len(positives)


def test_tts_scanned_on_the_bundled_example_and_scored_against_transcript_ends(tmp_path):
    """The tts kind end to end on the bundled example: a task, a model fine-tuned on it, a scan, and
    scan-eval matching the calls to annotated TTSs. A tiny model trained for one epoch: mechanics."""
    import torch

    from conftest import ROOT, TOKENIZER
    from dnabert2 import load_tokenizer
    from dnabert2.model import build_model, preset, save_model

    example = ROOT / "example"
    out, _ = build(example / "ce1pct.fa.gz", tmp_path, "tts", "--test-contigs", "IV", "--dev-contigs", "V")
    torch.manual_seed(0)
    base = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "base", load_tokenizer(TOKENIZER))
    model = tmp_path / "tts-model"
    result = run_cli("finetune", "--model", base, "--data", out, "--out", model, "--full", "--epochs", 1,
                     "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    calls, summary = tmp_path / "tts.bed", tmp_path / "tts.json"
    result = run_cli("scan", "--model", model, "--fasta", example / "ce1pct.fa.gz", "--contigs", "IV", "--stride", 100,
                     "--threshold", 0.5, "--out", calls, "--summary", summary, "--workers", 0, "-q")
    assert result.returncode == 0, result.stderr
    scanned = json.loads(summary.read_text())
    assert scanned["called"] == ["tts"] and scanned["window_bp"] == 300
    for line in calls.read_text().splitlines():
        contig, start, end, name, _, strand, *_, peak = line.split("\t")
        # The peak is the best window's TTS: 249 bp into a + window, 50 bp into a − one (read from its end).
        window = int(start) + int(peak) - (249 if strand == "+" else 50)
        assert name == "tts" and contig == "IV" and (window % 100 == 0 or window == 174_938 - 300)  # IV's last
    result = run_cli("scan-eval", "--calls", calls, "--annotation", example / "ce1pct.gff3.gz", "--summary", summary,
                     "--tts-tolerance", 50)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    sites = [s for s in read_annotation(example / "ce1pct.gff3.gz").tts() if s.contig == "IV"]
    assert list(report["labels"]) == ["tts"] and report["tts_tolerance"] == 50
    assert report["labels"]["tts"]["sites"] == len(sites) > 30
    assert report["labels"]["tts"]["calls"] == len(calls.read_text().splitlines())


def test_a_task_folder_of_an_earlier_run_is_refused_then_replaced_with_force(genome, tmp_path):
    out, _ = build(genome, tmp_path, "core-promoter")
    (out / "stale.csv").write_text("sequence,label\n")
    args = ["tasks", "core-promoter", "--genome", genome, "--annotation", ANNOTATION, "--out", out]
    assert_user_error(run_cli(*args), "already holds", "--force")
    assert run_cli(*args, "--force", "--seed", 1).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev.csv", "task.json", "test.csv", "train.csv"]
    assert json.loads((out / "task.json").read_text())["seed"] == 1


ECOLI, ECOLI_GFF = DATA / "genomes" / "ecoli_k12_mg1655.fna.gz", DATA / "genomes" / "ecoli_k12_mg1655.gff.gz"


def test_a_one_contig_genome_is_split_by_position(tmp_path):
    """E. coli is one contig: train, dev and test become stretches of it, a window apart, said in the log
    and in task.json."""
    out = tmp_path / "ecoli"
    result = run_cli("tasks", "promoter", "--genome", ECOLI, "--annotation", ECOLI_GFF, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "splitting each contig by position" in result.stderr
    task = json.loads((out / "task.json").read_text())
    assert task["split"] == "positions"
    (_, train_start, train_end), = task["regions"]["train"]
    (_, dev_start, dev_end), = task["regions"]["dev"]
    (_, test_start, test_end), = task["regions"]["test"]
    assert train_start == 0 and test_end == 4_641_652
    assert dev_start - train_end >= 300 and test_start - dev_end >= 300  # no window reaches into two splits
    # About a tenth of the TSSs each in dev and test, and the windows are from their own stretches.
    tss = [s for s in read_annotation(ECOLI_GFF).tss()]
    in_test = sum(test_start + 249 <= s.position < test_end - 50 for s in tss)
    assert 0.05 < in_test / len(tss) < 0.15
    with Fasta(ECOLI) as fasta:
        test_windows = {fasta.fetch(s.contig, s.position - 249, s.position + 51) for s in tss
                        if s.strand == "+" and test_start + 249 <= s.position < test_end - 50}
    test = read_split(out, "test")
    assert {s for s, label in test if label == 1 and s in test_windows} and task["counts"]["test"]["promoter"] > 300
    assert not {s for s, _ in read_split(out, "train")} & {s for s, _ in test}


@pytest.mark.parametrize("seed", range(8))
def test_a_chromosome_beside_its_plasmids_is_split_by_position_not_sent_whole_to_test(seed):
    """A bacterium with two small plasmids: by contig, half the seeds put the chromosome (99% of the
    sites) in test or dev and left train 14 sites; the worm's six chromosomes still split by contig."""
    import numpy as np

    from dnabert2.tasks.split import CannotSplit, split_contigs

    with pytest.raises(CannotSplit, match="cannot split 3 contig"):
        split_contigs({"chromosome": 4400, "p1": 14, "p2": 24}, None, None, np.random.default_rng(seed))
    worm = {"I": 166, "II": 225, "III": 132, "IV": 173, "V": 157, "X": 147}
    assignment = split_contigs(worm, None, None, np.random.default_rng(seed))
    for split in ("test", "dev"):
        assert 0.1 <= sum(n for c, n in worm.items() if assignment[c] == split) / sum(worm.values()) <= 0.3


def test_contigs_named_for_a_split_they_cannot_carry(tmp_path):
    args = ["tasks", "promoter", "--genome", ECOLI, "--annotation", ECOLI_GFF, "--out", tmp_path / "t"]
    assert_user_error(run_cli(*args, "--test-contigs", "NC_000913.3"), "cannot split 1 contig",
                      "leave out --test-contigs and --dev-contigs")
    assert_user_error(run_cli(*args, "--test-contigs", "NC_000913.3", "--dev-contigs", "NC_000913.3"),
                      "NC_000913.3 is named for both test and dev")
    assert not (tmp_path / "t").exists()


def test_phage_and_plasmid_genomes_from_their_genbank_files(tmp_path):
    """A Y. pestis plasmid and phiX174: sequence and annotation in one GenBank file, one contig each.
    Core-promoter windows (70 bp) fit in the plasmid's stretches of 10 kb; 300 bp promoter windows do not."""
    genome = DATA / "genomes" / "Ypestis_pPCP1_NC_005816.gb.gz"
    out = tmp_path / "ypestis"
    result = run_cli("tasks", "core-promoter", "--genome", genome, "--annotation", genome, "--negatives",
                     "shuffled", "--out", out)
    assert result.returncode == 0, result.stderr
    task = json.loads((out / "task.json").read_text())
    assert task["split"] == "positions" and all(sum(c.values()) >= 2 for c in task["counts"].values())
    # One promoter and one negative in dev and in test: written, and said to say little.
    for split in ("dev", "test"):
        counts = task["counts"][split]
        assert max(counts.values()) < 10
        said = ", ".join(f"{name} {n}" for name, n in counts.items())
        assert f"the {split} split holds few examples ({said}): its metrics say little" in result.stderr
    assert_user_error(run_cli("tasks", "promoter", "--genome", genome, "--annotation", genome, "--negatives",
                              "shuffled", "--out", tmp_path / "long"), "too short for these windows")
    # Genomic negatives must lie 1 kb from every TSS: none of the plasmid's stretches has such a window.
    assert_user_error(run_cli("tasks", "promoter", "--genome", genome, "--annotation", genome, "--out",
                              tmp_path / "long"), "the train split ends up without non-promoter examples",
                      "must lie 1000 bp from every annotated site", "give --negatives shuffled")
    result = run_cli("tasks", "promoter", "--dense", "--core", "500", "--flank", "50", "--genome", genome,
                     "--annotation", genome, "--out", tmp_path / "dense")
    assert_user_error(result, "holds no annotated site in a 500 bp core")
    assert "--test-contigs" not in result.stderr  # split by position: naming contigs cannot help
    # phiX174's two mRNAs (no /gene) start at 358 and hold the CDS from 390 on: those CDS are no
    # transcripts of their own. The CDS outside them are; those across the origin (genes A, A* and B)
    # are left out, and their starts set aside: no negative is drawn there.
    phix = DATA / "genomes" / "phiX174_NC_001422.gbk.gz"
    assert [s.position for s in read_annotation(phix).tss()] == [50, 132, 357]
    assert [s.position for s in read_annotation(phix).unlabelled({"tss"})] == [0, 3980, 4496, 5074]
    assert_user_error(run_cli("tasks", "core-promoter", "--genome", phix, "--annotation", phix, "--negatives",
                              "shuffled", "--out", tmp_path / "phix"), "too short for these windows")


def test_a_promoter_task_of_some_biotypes_draws_no_negative_near_the_others_tss(genome, tmp_path):
    """With --biotype mRNA the TSSs of ncRNAs, piRNAs, … are no positives, and no genomic negative
    either: every negative lies 1 kb from every annotated TSS, whatever its transcript's biotype."""
    out, task = build(genome, tmp_path, "promoter", "--biotype", "mRNA")
    coding = read_annotation(ANNOTATION, biotypes=["mRNA"])
    others = coding.unlabelled({"tss"})
    assert len(others) > 50
    with Fasta(genome) as fasta:
        contigs = {name: fasta.fetch(name, 0, length) for name, length in fasta.lengths.items()}
    negatives = [s for split in ("train", "dev", "test") for s, label in read_split(out, split) if label == 0]
    positives = sum(label == 1 for split in ("train", "dev", "test") for _, label in read_split(out, split))
    assert positives <= len(coding.tss()) < len(read_annotation(ANNOTATION).tss())
    every_tss = coding.tss() + others

    def away(name, start, end):
        return all(not start - 1000 <= s.position < end + 1000 for s in every_tss if s.contig == name)

    for sequence in negatives:  # the window drawn, or a copy of it elsewhere (repeats), lies away
        places = [(name, m.start(), m.end()) for name, text in contigs.items()
                  for s in (sequence, reverse_complement(sequence)) for m in re.finditer(s, text)]
        assert any(away(*place) for place in places)


def test_sites_without_a_whole_window_are_counted_not_dropped_silently(genome, tmp_path):
    """Three of the example's TSSs lie within a window of a contig's start (the 137 bp MtDNA holds
    two mitochondrial tRNAs, cut from a longer transcript: no TSS)."""
    result = run_cli("tasks", "promoter", "--genome", genome, "--annotation", ANNOTATION, "--out", tmp_path / "t")
    assert result.returncode == 0, result.stderr
    assert "3 of 300 annotated sites give no example: their 300 bp windows run past a contig's end" in result.stderr
