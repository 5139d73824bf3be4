"""`variants` on real C. elegans splice sites with the CNN trained on them: disrupting an annotated
GT or AG loses the site far more than a nearby SNV does; SNVs, indels and multi-allelic records are
scored, every record kept in order; REF mismatches flagged and counted; contig names with ':' work;
the output is bgzip VCF with a tabix index that bcftools reads; bad input gets one line."""

import csv
import gzip
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pysam
import pytest

from conftest import CORE, GENOMES, assert_user_error, run_cli, scan_classifier
from dnabert2.sequences import Fasta, read_annotation

ANNOTATION = GENOMES / "ce1pct.gff3.gz"
OTHER = {"A": "C", "C": "G", "G": "T", "T": "A"}
HEADER = "##fileformat=VCFv4.2\n{contigs}#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def write_vcf(path, records, contigs):
    """records: (contig, 0-based position, id, REF, ALT)."""
    lines = "".join(f"##contig=<ID={name},length={length}>\n" for name, length in contigs.items())
    body = "".join(f"{c}\t{p + 1}\t{i}\t{r}\t{a}\t.\t.\t.\n" for c, p, i, r, a in records)
    path.write_text(HEADER.format(contigs=lines) + body)
    return path


@pytest.fixture(scope="module")
def variants(ce1pct, tmp_path_factory):
    """SNVs on the G of each annotated donor GT and acceptor AG of held-out chromosome IV, SNVs 10 to
    40 bp from the same sites, and the awkward cases: indels, a multi-allelic record with a symbolic
    allele, a REF that disagrees with the genome, a contig the genome lacks."""
    rng = random.Random(0)
    sites = [s for s in read_annotation(ANNOTATION).splice_sites() if s.contig == "IV"]
    records = []
    with Fasta(ce1pct) as genome:
        def snv(position, name):
            ref = genome.fetch("IV", position, position + 1)
            return "IV", position, name, ref, OTHER[ref]

        for i, site in enumerate(sites):
            records.append(snv(site.position, f"{site.kind}{i}"))
            records.append(snv(site.position + rng.choice([-1, 1]) * rng.randint(10, 40), f"near{i}"))
        p = sites[0].position + 60
        records.append(("IV", p, "deletion", genome.fetch("IV", p, p + 5), genome.fetch("IV", p, p + 1)))
        p = sites[1].position + 60
        records.append(("IV", p, "insertion", genome.fetch("IV", p, p + 1), genome.fetch("IV", p, p + 1) + "GTAAGT"))
        p = sites[2].position + 70
        ref = genome.fetch("IV", p, p + 1)
        records.append(("IV", p, "multi", ref, ",".join([*(b for b in "ACGT" if b != ref), "*"])))
        records.append(("IV", 1000, "mismatch", OTHER[genome.fetch("IV", 1000, 1001)], "A"))
        records.append(("chrUn", 5, "nowhere", "A", "C"))
        length = genome.lengths["IV"]
    records.sort(key=lambda r: (r[0] != "IV", r[1]))
    path = write_vcf(tmp_path_factory.mktemp("vcf") / "in.vcf", records, {"IV": length, "chrUn": 100})
    return path, records, sites


@pytest.fixture(scope="module")
def scored(cnn, ce1pct, variants, tmp_path_factory):
    out = tmp_path_factory.mktemp("scored") / "out.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", variants[0], "--fasta", ce1pct, "--out", out,
                     "--tsv", out.with_suffix(".tsv"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    return out, result.stdout, result.stderr


def info(record) -> dict:
    """ALT → its fields, from the DNABERT2 INFO value."""
    header = record.header.info["DNABERT2"].description.split("Format: ")[1].split("|")
    return {value.split("|")[0]: dict(zip(header, value.split("|"))) for value in record.info["DNABERT2"]}


def test_disrupting_a_splice_site_loses_it_and_a_nearby_snv_hardly_does(scored, variants):
    _, records, sites = variants
    with pysam.VariantFile(str(scored[0])) as vcf:
        out = list(vcf)
    assert [(r.contig, r.pos, r.id) for r in out] == [(c, p + 1, i) for c, p, i, _, _ in records]  # all, in order
    by_id = {r.id: r for r in out}
    loss = {"donor": "DS_DL", "acceptor": "DS_AL"}
    site_losses, near_losses = [], []
    for i, site in enumerate(sites):
        fields = info(by_id[f"{site.kind}{i}"])[OTHER[by_id[f"{site.kind}{i}"].ref]]
        site_losses.append(float(fields[loss[site.kind]]))
        near = by_id[f"near{i}"]
        near_losses.append(float(info(near)[near.alts[0]][loss[site.kind]]))
        if float(fields[loss[site.kind]]) > 0.3:
            assert fields["DP_" + loss[site.kind][3:]] == "0"  # the loss is at the site itself
    assert np.median(site_losses) > 0.3 and np.median(site_losses) > 5 * np.median(near_losses), \
        (np.median(site_losses), np.median(near_losses))


def test_every_kind_of_record_is_kept_and_said_what_became_of_it(scored):
    out, stdout, stderr = scored
    with pysam.VariantFile(str(out)) as vcf:
        assert vcf.header.info["DNABERT2"].number == "A"
        by_id = {r.id: r for r in vcf}
    assert by_id["mismatch"].info["DNABERT2_UNSCORED"] == "ref_mismatch" and "DNABERT2" not in by_id["mismatch"].info
    assert by_id["nowhere"].info["DNABERT2_UNSCORED"] == "unknown_contig"
    assert "1 contig(s) not in" in stderr and "left unscored (unknown_contig): chrUn" in stderr
    for name in ("deletion", "insertion"):
        (fields,) = info(by_id[name]).values()
        assert all(0 <= float(fields[key]) <= 1 for key in ("DS_AG", "DS_AL", "DS_DG", "DS_DL"))
        assert all(-60 <= int(fields[key]) <= 60 for key in ("DP_AG", "DP_AL", "DP_DG", "DP_DL"))
    multi = info(by_id["multi"])
    assert list(multi) == list(by_id["multi"].alts) and set(multi["*"].values()) == {"*", "."}
    assert "1 ref mismatch" in stdout and "1 unknown contig" in stdout and "1 alleles unscorable" in stdout
    with open(out.with_suffix(".tsv"), newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == sum(len(r.alts) for r in by_id.values())
    with pysam.TabixFile(str(out)) as indexed:
        assert len(list(indexed.fetch("IV", 0, 10_000_000))) == len(by_id) - 1


def test_one_change_written_two_ways_scores_the_same(cnn, ce1pct, variants, tmp_path):
    """REF and ALT are lined up after the bases they share at either end: a deletion beside a longer one
    in a multi-allelic record (GGCT>GCT,G) is GG>G's, and an insertion written before its base (C>TC)
    is the one written after the base before (A>AT). Lined up from the left only, they gave false
    losses of a nearby splice site of 0.9."""
    site = next(s for s in variants[2] if s.kind == "acceptor")
    with Fasta(ce1pct) as genome:
        p = site.position - 3
        bases = genome.fetch("IV", p, p + 4)
    one = [("IV", p, "short", bases[:2], bases[0]),
           ("IV", p, "multi", bases, ",".join([bases[0] + bases[2:], bases[0]]))]
    two = [("IV", p, "after", bases[0], bases[0] + "T"), ("IV", p + 1, "before", bases[1], "T" + bases[1])]
    scored = {}
    for name, records in (("one", one), ("two", two)):
        out = tmp_path / f"{name}.vcf.gz"
        result = run_cli("variants", "--model", cnn, "--vcf", write_vcf(tmp_path / f"{name}.vcf", records,
                                                                         {"IV": 174938}),
                         "--fasta", ce1pct, "--out", out, "--device", "cpu")
        assert result.returncode == 0, result.stderr
        with pysam.VariantFile(str(out)) as vcf:
            scored |= {r.id: list(info(r).values()) for r in vcf}
    (short,), (shared, _) = scored["short"], scored["multi"]
    assert {k: v for k, v in short.items() if k != "ALLELE"} == {k: v for k, v in shared.items() if k != "ALLELE"}
    (after,), (before,) = scored["after"], scored["before"]
    for key in after:
        if key.startswith("DS_"):
            assert after[key] == before[key]
        elif key.startswith("DP_"):  # from each record's POS, one base apart
            assert int(after[key]) == int(before[key]) + 1


def test_a_wider_distance_only_adds_positions(cnn, ce1pct, variants, tmp_path):
    """Each variant is read in the same context at every --distance: looking further can find larger
    changes, never smaller ones at the bases it looked at before."""
    records = [r for r in variants[1] if r[2].startswith(("donor", "acceptor", "near"))][:40]
    vcf = write_vcf(tmp_path / "some.vcf", records, {"IV": 174938})
    found = {}
    for distance in (10, 50):
        out = tmp_path / f"d{distance}.vcf.gz"
        result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", ce1pct, "--out", out,
                         "--distance", distance, "--device", "cpu")
        assert result.returncode == 0, result.stderr
        with pysam.VariantFile(str(out)) as scored:
            found[distance] = {r.id: next(iter(info(r).values())) for r in scored}
    for name, near in found[10].items():
        wide = found[50][name]
        for key in (k for k in near if k.startswith("DS_")):
            assert float(wide[key]) >= float(near[key]), (name, key, near, wide)
            if int(wide["DP" + key[2:]]) in range(-10, 11):  # the same largest change, at the same base
                assert wide[key] == near[key] and wide["DP" + key[2:]] == near["DP" + key[2:]], (name, key)


def test_a_record_past_2_to_the_29_gets_a_csi_index(cnn, ce1pct, tmp_path):
    """A record on a contig of a wheat-sized assembly, even one the reference lacks, is written: its
    position needs a .csi, which a .tbi cannot hold."""
    vcf = write_vcf(tmp_path / "far.vcf", [("IV", 99, "a", "A", "C"), ("chrUn_big", 600_000_000, "far", "A", "C")],
                    {"IV": 174_938, "chrUn_big": 700_000_000})
    out = tmp_path / "far.out.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", ce1pct, "--out", out, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("far.out*")) == ["far.out.vcf.gz", "far.out.vcf.gz.csi"]
    with pysam.VariantFile(str(out)) as written:
        assert [r.id for r in written.fetch("chrUn_big", 599_999_000, 600_001_000)] == ["far"]
    # A deletion reaching past 2^29 by an END the header does not declare (as many SV callers write it).
    (tmp_path / "sv.vcf").write_text(HEADER.format(contigs="##contig=<ID=IV,length=174938>\n")
                                     + "IV\t3000\tsv\tC\t<DEL>\t.\t.\tEND=600000000\n")
    result = run_cli("variants", "--model", cnn, "--vcf", tmp_path / "sv.vcf", "--fasta", ce1pct, "--out",
                     tmp_path / "sv.out.vcf.gz", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("sv.out*")) == ["sv.out.vcf.gz", "sv.out.vcf.gz.csi"]
    with pysam.VariantFile(str(tmp_path / "sv.out.vcf.gz")) as written:
        assert [(r.id, r.stop) for r in written] == [("sv", 600_000_000)]
    # Asked for, a .tbi that cannot hold it is refused; a .csi is written for any VCF (the workflow's).
    result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", ce1pct, "--out", tmp_path / "t.vcf.gz",
                     "--index", "tbi", "--device", "cpu")
    assert_user_error(result, "--index tbi", "past 2^29", "--index csi")
    assert not list(tmp_path.glob("t.*"))
    near = write_vcf(tmp_path / "near.vcf", [("IV", 99, "a", "A", "C")], {"IV": 174_938})
    result = run_cli("variants", "--model", cnn, "--vcf", near, "--fasta", ce1pct, "--out", tmp_path / "c.vcf.gz",
                     "--index", "csi", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("c.*")) == ["c.vcf.gz", "c.vcf.gz.csi"]
    with pysam.VariantFile(str(tmp_path / "c.vcf.gz")) as written:
        assert [r.id for r in written.fetch("IV", 90, 110)] == ["a"]


def test_a_second_models_scores_go_beside_the_first_under_their_own_key(cnn, ce1pct, scored, tmp_path):
    out = tmp_path / "both.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", scored[0], "--fasta", ce1pct, "--out", out,
                     "--info-key", "SECOND", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    with pysam.VariantFile(str(scored[0])) as first, pysam.VariantFile(str(out)) as both:
        for before, after in zip(first, both, strict=True):
            assert {k: v for k, v in after.info.items() if not k.startswith("SECOND")} == dict(before.info.items())
            # The same model: the same scores and reasons under the second key
            assert after.info.get("SECOND") == before.info.get("DNABERT2")
            assert after.info.get("SECOND_UNSCORED") == before.info.get("DNABERT2_UNSCORED")


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")
def test_bcftools_reads_the_output_and_splits_it_by_allele(scored, tmp_path):
    out = scored[0]
    view = subprocess.run(["bcftools", "view", "-H", str(out)], capture_output=True, text=True)
    assert view.returncode == 0, view.stderr
    split = subprocess.run(["bcftools", "norm", "-m-", str(out)], capture_output=True, text=True)
    assert split.returncode == 0, split.stderr
    alleles = [line for line in split.stdout.splitlines() if line.split("\t")[2:3] == ["multi"]]
    assert len(alleles) == 4 and all(line.count("DNABERT2=") == 1 and "," not in line.split("DNABERT2=")[1]
                                     for line in alleles)


def test_contig_names_with_colons_score_as_their_sequence_does(cnn, ce1pct, variants, scored, tmp_path):
    """Assemblies name contigs like 'HLA-A*01:01:01:01' or 'chrUn:123': region strings cannot carry
    them, so the name is used as it is. The header declares it in the output, with its length."""
    name = "IV:copy"
    with Fasta(ce1pct) as genome:
        sequence = genome.fetch("IV")
    (tmp_path / "genome.fa").write_text(f">{name}\n{sequence}\n")
    records = [(name, p, i, r, a) for c, p, i, r, a in variants[1] if c == "IV" and i.startswith("donor")][:5]
    vcf = write_vcf(tmp_path / "colon.vcf", records, {})  # and no ##contig lines, as many VCFs have none
    out = tmp_path / "colon.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", tmp_path / "genome.fa", "--out", out,
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    with pysam.VariantFile(str(out)) as copy, pysam.VariantFile(str(scored[0])) as original:
        before = {r.id: r.info.get("DNABERT2") for r in original}
        assert {r.id: r.info["DNABERT2"] for r in copy} == {i: before[i] for _, _, i, _, _ in records}
        assert copy.header.contigs[name].length == len(sequence)


def test_a_variants_score_does_not_depend_on_its_neighbours(cnn, ce1pct, variants, scored, tmp_path):
    records = [r for r in variants[1] if r[2].startswith(("acceptor", "near"))][:6]
    with pysam.VariantFile(str(scored[0])) as original:
        before = {r.id: r.info.get("DNABERT2") for r in original}
    for record in records[::2]:
        vcf = write_vcf(tmp_path / "one.vcf", [record], {"IV": 174938})
        out = tmp_path / f"{record[2]}.vcf.gz"
        assert run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", ce1pct, "--out", out, "--device",
                       "cpu").returncode == 0
        with pysam.VariantFile(str(out)) as alone:
            assert next(iter(alone)).info["DNABERT2"] == before[record[2]]


@pytest.mark.parametrize("make, words", [
    (lambda d, cnn, window: ["--model", window, "--out", d / "o.vcf.gz"], ["per-base model"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "unsorted.vcf"],
     ["not sorted by position", "bcftools sort"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "apart.vcf"],
     ["records of IV are not together"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "annotated.vcf.gz"],
     ["already has an INFO/DNABERT2 field"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "undeclared.vcf"],
     ["already has an INFO/DNABERT2 field"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf"], [".vcf.gz"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.tsv.gz"], [".vcf.gz (or .vcf.bgz)"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "notvcf.txt"], ["notvcf.txt"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "plain.vcf.gz"],
     ["plain.vcf.gz", "gzip", "bgzip"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "ucsc.vcf"],
     ["none of its contigs (chrIV)", "reference", "one of them names contigs with 'chr' and the other without"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "assembly.vcf"],
     ["its header gives IV 1,000 bp", "174,938 bp", "the reference the VCF was called against"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "badpos.vcf"],
     ["badpos.vcf: cannot read it as VCF/BCF after the record at IV:101: a malformed line"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "missing.vcf"],
     ["missing.vcf: no such file"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--info-key", "my score"], ["--info-key"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--info-key", "END"], ["--info-key", "not END"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "annotated.vcf.gz", "--info-key",
                             "DNABERT2_UNSCORED"], ["already has an INFO/DNABERT2_UNSCORED field"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "undeclared.vcf", "--info-key",
                             "DNABERT2_UNSCORED"], ["has an INFO/DNABERT2 field", "INFO/DNABERT2_UNSCORED would read"]),
    # An ID in Latin-1 passes through to the VCF, but the table is UTF-8 text.
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "latin1.vcf", "--tsv",
                             d / "o.tsv"], ["latin1.vcf: the ID of the record at IV:101 is not UTF-8 text", "--tsv"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "latin1_alt.vcf"],
     ["latin1_alt.vcf: the ALT of the record at IV:101 is not UTF-8 text"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--tsv", d / "o.csv"],
     ["o.csv: --tsv writes a tab-separated table"]),
    (lambda d, cnn, window: ["--model", cnn, "--out", d / "o.vcf.gz", "--vcf", d / "latin1_ref.vcf"],
     ["latin1_ref.vcf: the REF of the record at IV:101 is not UTF-8 text"]),
])
def test_bad_input_gets_one_line_and_no_output(cnn, ce1pct, variants, scored, tmp_path, make, words):
    window = scan_classifier(tmp_path / "window", window=300)
    (tmp_path / "notvcf.txt").write_text("this is not a VCF\n")
    write_vcf(tmp_path / "unsorted.vcf", [("IV", 500, "b", "A", "C"), ("IV", 100, "a", "A", "C")], {})
    write_vcf(tmp_path / "apart.vcf", [("IV", 100, "a", "A", "C"), ("V", 100, "b", "A", "C"),
                                       ("IV", 500, "c", "A", "C")], {})
    shutil.copy(scored[0], tmp_path / "annotated.vcf.gz")
    (tmp_path / "plain.vcf.gz").write_bytes(gzip.compress(variants[0].read_bytes()))
    write_vcf(tmp_path / "ucsc.vcf", [("chrIV", 100, "a", "A", "C"), ("chrIV", 500, "b", "A", "C")], {})
    (tmp_path / "undeclared.vcf").write_text(HEADER.format(contigs="") + "IV\t100\ta\tA\tC,G\t.\t.\tDNABERT2=x,y\n")
    write_vcf(tmp_path / "assembly.vcf", [("IV", 100, "a", "A", "C")], {"IV": 1000})  # another assembly's IV
    (tmp_path / "badpos.vcf").write_text(HEADER.format(contigs="") + "IV\t101\ta\tA\tC\t.\t.\t.\n"
                                         "IV\tabc\tb\tA\tC\t.\t.\t.\n")
    (tmp_path / "latin1.vcf").write_bytes(HEADER.format(contigs="").encode() + b"IV\t101\tcaf\xe9\tA\tC\t.\t.\t.\n")
    (tmp_path / "latin1_alt.vcf").write_bytes(HEADER.format(contigs="").encode() + b"IV\t101\ta\tA\t<caf\xe9>\t.\t.\t.\n")
    (tmp_path / "latin1_ref.vcf").write_bytes(HEADER.format(contigs="").encode() + b"IV\t101\ta\tA\xe9\tC\t.\t.\t.\n")
    options = make(tmp_path, cnn, window)
    vcf = [] if "--vcf" in options else ["--vcf", variants[0]]
    result = run_cli("variants", *options, *vcf, "--fasta", ce1pct, "--device", "cpu")
    assert_user_error(result, *words)
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))


def test_mutagenesis_finds_the_donor_dinucleotide_and_draws_it(cnn, ce1pct, variants, tmp_path):
    site = next(s for s in variants[2] if s.kind == "donor" and s.strand == "+")
    region = f"IV:{site.position - 14}-{site.position + 16}"  # 31 bp, 1-based; the donor G is base 16
    out, plot = tmp_path / "ism.tsv", tmp_path / "ism.svg"
    result = run_cli("mutagenesis", "--model", cnn, "--fasta", ce1pct, "--region", region, "--label", "1",
                     "--at", site.position + 1, "--out", out, "--plot", plot, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert f"donor at IV:{site.position + 1}(+)" in result.stdout
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 3 * 31 and {r["ref"] for r in rows if int(r["pos"]) == site.position + 1} == {"G"}
    # Each row says what was scored: the table of another label, strand or base concatenates with it.
    assert {(r["label"], r["strand"], r["scored"]) for r in rows} == {("donor", "+", str(site.position + 1))}
    importance = {}
    for row in rows:
        importance[int(row["pos"])] = importance.get(int(row["pos"]), 0) - float(row["delta"]) / 3
    top_two = sorted(importance, key=importance.get)[-2:]
    assert sorted(top_two) == [site.position + 1, site.position + 2], importance  # the G and the T of GT
    assert plot.read_text().lstrip().startswith("<?xml") and "<svg" in plot.read_text()


@pytest.mark.parametrize("options, words", [
    (["--region", "IV:500-400"], ["IV:500-400"]),
    (["--region", "IV:,-10"], ["--region 'IV:,-10' is not contig:start-end"]),
    (["--region", "IV:174000-175500"], ["--region IV:174000-175500 runs past the end of IV (174,938 bp)"]),
    (["--region", "IV:1000-1030", "--at", 2000], ["--at 2000"]),
    (["--region", "IV:1000-1030", "--label", "exon"], ["--label 'exon'", "donor"]),
    (["--region", "IV:1000-1030", "--label", "3"], ["--label '3'", "labels: neither, donor, acceptor"]),
])
def test_mutagenesis_bad_input(cnn, ce1pct, tmp_path, options, words):
    result = run_cli("mutagenesis", "--model", cnn, "--fasta", ce1pct, *options, "--out", tmp_path / "o.tsv",
                     "--device", "cpu")
    assert_user_error(result, *words)
    assert not list(tmp_path.glob("o.*"))


def test_mutagenesis_changes_each_a_c_g_and_t_but_no_n_or_other_iupac_code(cnn, ce1pct, tmp_path):
    with Fasta(ce1pct) as genome:
        sequence = genome.fetch("IV", 0, 3000)
    genome = tmp_path / "gap.fa"
    genome.write_text(f">IV\n{sequence[:1009]}NNR{sequence[1012:]}\n")  # IV:1010-1012 (1-based)
    out, plot = tmp_path / "ism.tsv", tmp_path / "ism.svg"
    result = run_cli("mutagenesis", "--model", cnn, "--fasta", genome, "--region", "IV:1000-1030", "--out", out,
                     "--plot", plot, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 3 * 28 and {r["ref"] for r in rows} <= set("ACGT")
    assert not {int(r["pos"]) for r in rows} & {1010, 1011, 1012} and "<svg" in plot.read_text()
    target = int(result.stdout.split(" at IV:")[1].split("(")[0])  # the best-scoring base: never an N
    assert 1000 <= target <= 1030 and target not in (1010, 1011, 1012)
    on_n = run_cli("mutagenesis", "--model", cnn, "--fasta", genome, "--region", "IV:1000-1030", "--at", 1011,
                   "--out", out)
    assert_user_error(on_n, "--at 1011 is N", "give an A, C, G or T")
    gap = run_cli("mutagenesis", "--model", cnn, "--fasta", genome, "--region", "IV:1010-1012", "--out", out)
    assert_user_error(gap, "IV:1010-1012 holds no A, C, G or T to substitute")


def test_mutagenesis_refuses_at_for_a_window_classifier_before_loading_it(ce1pct, tmp_path):
    window = scan_classifier(tmp_path / "window", window=300)
    result = run_cli("mutagenesis", "--model", window, "--fasta", ce1pct, "--region", "IV:1000-1030", "--at", 1005,
                     "--out", tmp_path / "o.tsv")
    assert_user_error(result, "--at is for per-base models")
    assert len(result.stderr.splitlines()) == 1, result.stderr  # not after the warnings loading it gives


def test_symbolic_and_gvcf_records_are_kept_unscored_not_called_mismatches(cnn, ce1pct, tmp_path):
    """A <DEL> or a gVCF <NON_REF> block spans END, not its one REF base: its REF still matches."""
    with Fasta(ce1pct) as genome:
        base = genome.fetch("IV", 99, 100)
    path = tmp_path / "symbolic.vcf"
    path.write_text("##fileformat=VCFv4.2\n##INFO=<ID=END,Number=1,Type=Integer,Description=\"End\">\n"
                    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                    f"IV\t100\tblock\t{base}\t<NON_REF>\t.\t.\tEND=900\n")
    result = run_cli("variants", "--model", cnn, "--vcf", path, "--fasta", ce1pct, "--out", tmp_path / "o.vcf.gz",
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "1 alleles unscorable" in result.stdout and "mismatch" not in result.stdout
    with pysam.VariantFile(str(tmp_path / "o.vcf.gz")) as vcf:
        (record,) = vcf
    assert "DNABERT2_UNSCORED" not in record.info and record.info["DNABERT2"] == ("<NON_REF>|.|.|.|.|.|.|.|.",)


def test_telomere_records_and_alts_equal_to_ref_are_kept_unscored(cnn, ce1pct, tmp_path):
    """POS 0 (a telomere, VCF 4.3) lies outside the contig; an ALT equal to REF changes nothing."""
    with Fasta(ce1pct) as genome:
        base = genome.fetch("IV", 99, 100)
    records = [("IV", -1, "telomere", "N", "A"), ("IV", 99, "same", base, f"{base},{OTHER[base]}")]
    vcf = write_vcf(tmp_path / "edge.vcf", records, {"IV": 174938})
    out = tmp_path / "o.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", ce1pct, "--out", out, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    with pysam.VariantFile(str(out)) as scored:
        telomere, same = scored
    assert telomere.info["DNABERT2_UNSCORED"] == "outside_contig"
    unchanged, changed = same.info["DNABERT2"]
    assert unchanged == f"{base}|" + "|".join("." * 8) and "." not in changed.split("|")[1:]


def test_records_whose_ref_cannot_be_scored_say_why(cnn, ce1pct, tmp_path):
    """A REF missing or of IUPAC codes is no mismatch; one longer than the model's core (a structural
    variant's) would need windows longer than the model's, and its positions would lie far beyond
    --distance."""
    with Fasta(ce1pct) as genome:
        long_ref, fits = genome.fetch("IV", 5000, 5001 + CORE), genome.fetch("IV", 7000, 7000 + CORE)
        base = genome.fetch("IV", 9000, 9001)
    records = [("IV", 99, "missing", ".", "A"), ("IV", 199, "iupac", "R", "A"),
               ("IV", 5000, "long", long_ref, long_ref[0]), ("IV", 7000, "fits", fits, fits[0]),
               ("IV", 9000, "inserted", base, f"{base + 'A' * CORE},{base}A")]
    out = tmp_path / "o.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", write_vcf(tmp_path / "in.vcf", records, {}),
                     "--fasta", ce1pct, "--out", out, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "2 alleles scored, 2 unscorable ref, 1 ref too long, 1 alleles unscorable" in result.stdout
    with pysam.VariantFile(str(out)) as vcf:
        records = {r.id: r for r in vcf}
    assert {name: r.info.get("DNABERT2_UNSCORED") for name, r in records.items()} == {
        "missing": "unscorable_ref", "iupac": "unscorable_ref", "long": "ref_too_long", "fits": None, "inserted": None}
    too_long, short = records["inserted"].info["DNABERT2"]
    assert set(too_long.split("|")[1:]) == {"."} and "." not in short.split("|")[1:]


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")
def test_tags_the_header_does_not_declare_are_kept_and_declared(cnn, ce1pct, tmp_path):
    """Hand-made VCFs and older callers use INFO, FILTER and FORMAT tags their header lacks; htslib
    reads them (as bcftools does) and the output declares them. The table has a row for every record,
    each with every column."""
    with Fasta(ce1pct) as genome:
        first, second = genome.fetch("IV", 99, 100), genome.fetch("IV", 199, 200)
    vcf = tmp_path / "undeclared.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
                   f"IV\t100\ta\t{first}\t{OTHER[first]}\t.\tLowQual\tDP=7\tGT:DP\t0/1:12\n"
                   f"IV\t200\tb\t{second}\t.\t.\tPASS\tSOMATIC\tGT:DP\t0/0:30\n"
                   f"IV\t300\tc\tN\t<DEL>\t.\tPASS\tEND=310\tGT:DP\t0/1:9\n")
    out, table = tmp_path / "o.vcf.gz", tmp_path / "o.tsv"
    result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", ce1pct, "--out", out, "--tsv", table,
                     "--device", "cpu")
    assert result.returncode == 0, result.stderr
    view = subprocess.run(["bcftools", "view", "-H", str(out)], capture_output=True, text=True)
    assert view.returncode == 0 and "[W::" not in view.stderr, view.stderr
    a, b, c = (line.split("\t") for line in view.stdout.splitlines())
    assert a[6] == "LowQual" and "DP=7" in a[7] and "DNABERT2=" in a[7] and a[8:] == ["GT:DP", "0/1:12"]
    # A record without ALT was neither flagged nor counted, as the help says of every record not scored.
    assert b[4] == "." and b[7] == "SOMATIC;DNABERT2_UNSCORED=no_alt" and b[9] == "0/0:30"
    assert "1 no alt" in result.stdout
    assert c[7].startswith("END=310;")  # END is an integer, as VCF declares it, not htslib's guess of a string
    rows = [line.split("\t") for line in table.read_text().splitlines()]
    # REF N (as SV callers write for a symbolic ALT) is no base to compare or score.
    assert {len(r) for r in rows} == {len(rows[0])} and [r[5] for r in rows[1:]] == ["scored", "no_alt",
                                                                                    "unscorable_ref"]


def test_an_end_declared_otherwise_is_refused_and_a_quote_in_the_models_name_is_no_traceback(cnn, ce1pct, tmp_path):
    """pysam writes the END of a symbolic allele as an integer, which a header declaring it a string
    cannot hold; a '"' in the model's folder name would end the INFO description early."""
    with Fasta(ce1pct) as genome:
        first = genome.fetch("IV", 99, 100)
    text = ("##fileformat=VCFv4.2\n##INFO=<ID=END,Number=1,Type=String,Description=\"End\">\n"
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
            f"IV\t100\ta\t{first}\t{OTHER[first]}\t.\tPASS\t.\nIV\t300\tc\tN\t<DEL>\t.\tPASS\tEND=310\n")
    (tmp_path / "string_end.vcf").write_text(text)
    result = run_cli("variants", "--model", cnn, "--vcf", tmp_path / "string_end.vcf", "--fasta", ce1pct,
                     "--out", tmp_path / "o.vcf.gz", "--device", "cpu")
    assert_user_error(result, "string_end.vcf: its header declares INFO/END as Number=1,Type=String; VCF's END is "
                              "Number=1,Type=Integer")
    assert not list(tmp_path.glob("o.vcf.gz*"))
    quoted = shutil.copytree(cnn, tmp_path / 'cnn "v2"')
    (tmp_path / "in.vcf").write_text(text.replace("Type=String", "Type=Integer"))
    result = run_cli("variants", "--model", quoted, "--vcf", tmp_path / "in.vcf", "--fasta", ce1pct,
                     "--out", tmp_path / "o.vcf.gz", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    with pysam.VariantFile(str(tmp_path / "o.vcf.gz")) as vcf:
        assert "cnn 'v2'" in vcf.header.info["DNABERT2"].description
        assert [(r.info.get("DNABERT2") is not None, r.info.get("DNABERT2_UNSCORED")) for r in vcf] == [
            (True, None), (False, "unscorable_ref")]


def test_a_vcf_on_a_pipe_is_refused_in_one_line(cnn, ce1pct, variants, tmp_path):
    """The VCF is read twice (a check, then the scoring): a pipe cannot be."""
    result = subprocess.run([sys.executable, "-m", "dnabert2", "variants", "--model", str(cnn), "--vcf", "/dev/stdin",
                             "--fasta", str(ce1pct), "--out", str(tmp_path / "o.vcf.gz"), "--device", "cpu"],
                            input=variants[0].read_text(), capture_output=True, text=True)
    assert_user_error(result, "/dev/stdin", "not a file", "twice")
    assert not list(tmp_path.iterdir())
    # '-' (read as a file of that name: no such file) and a folder (said to be a pipe) are told as they are.
    for vcf, what in (("-", "-: standard input"), (tmp_path, f"{tmp_path}: a folder")):
        result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", ce1pct, "--out", tmp_path / "o.vcf.gz")
        assert_user_error(result, f"{what}; variants reads the VCF twice")
        assert not list(tmp_path.iterdir())


def test_an_output_named_as_an_index_is_refused(cnn, ce1pct, variants, tmp_path):
    """A table at the output's index would be replaced by it; at the VCF's or the FASTA's, it would
    break the index htslib finds there."""
    for name in ("g.fa.gz", "g.fa.gz.fai", "g.fa.gz.gzi"):
        shutil.copy(f"{ce1pct}{name[7:]}", tmp_path / name)
    vcf = Path(pysam.tabix_index(str(shutil.copy(variants[0], tmp_path / "v.vcf")), preset="vcf"))
    before = {path: path.read_bytes() for path in tmp_path.iterdir()}
    for tsv in ("o.vcf.gz.tbi", "o.vcf.gz.csi", "v.vcf.gz.tbi", "g.fa.gz.fai"):
        result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", tmp_path / "g.fa.gz",
                         "--out", tmp_path / "o.vcf.gz", "--tsv", tmp_path / tsv, "--device", "cpu")
        assert_user_error(result, f"{tsv}: the name of", "index")
        assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_a_variant_near_a_contigs_ends_is_read_as_a_scan_reads_them():
    """Its core lies on the contig, beside the model's flank of N: laid on the grid from 50 bp before
    the variant, it started 1,850 bp before the contig, and a transformer read 1,950 N; on a 137 bp
    contig it read 1,963 N past the end."""
    from types import SimpleNamespace

    from dnabert2.variants import Variant, VariantScorer

    def scorer(distance):
        made = VariantScorer.__new__(VariantScorer)
        made.scanner, made.distance = SimpleNamespace(core=2000), distance
        made.fasta = SimpleNamespace(lengths={"I": 10000, "MtDNA": 137})
        return made

    for position in (0, 30, 49, 50, 2500, 9950, 9999):
        variant = Variant.of(0, 0, "I", position, "A", "C")
        start, end = scorer(50).core_of(variant)
        assert max(0, position - 50) >= start >= 0 and min(position + 51, 10000) <= end <= 10000, (position, start, end)
        assert end - start == 2000
        # Which core does not depend on --distance (up to a quarter core), so neither does the context.
        assert scorer(400).core_of(variant) == (start, end)
    assert scorer(50).core_of(Variant.of(0, 0, "I", 10, "A" * 1990, "C")) == (0, 2050)
    assert scorer(50).core_of(Variant.of(0, 0, "MtDNA", 100, "A", "C")) == (0, 137)


def test_positions_stay_on_the_contig(cnn, ce1pct, tmp_path):
    """Past a contig's ends the windows hold N only: no gain or loss is placed there."""
    with Fasta(ce1pct) as genome:
        length = genome.lengths["IV"]
        records = [("IV", p, f"at{p}", genome.fetch("IV", p, p + 1), OTHER[genome.fetch("IV", p, p + 1)])
                   for p in (0, 2, length - 3, length - 1)]
    out = tmp_path / "o.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", write_vcf(tmp_path / "ends.vcf", records, {"IV": length}),
                     "--fasta", ce1pct, "--out", out, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    with pysam.VariantFile(str(out)) as scored:
        for record in scored:
            (fields,) = info(record).values()
            placed = [record.start + int(v) for k, v in fields.items() if k.startswith("DP_")]
            assert all(0 <= p < length for p in placed), (record.id, fields)


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")
def test_symbolic_alleles_without_end_give_a_vcf_bcftools_reads(cnn, ce1pct, tmp_path):
    """pysam writes INFO/END on records with symbolic alleles; the output header declares it."""
    with Fasta(ce1pct) as genome:
        records = [("IV", 99, "del", genome.fetch("IV", 99, 100), "<DEL>"),
                   ("IV", 199, "multi", genome.fetch("IV", 199, 200), "<INS>,A,C")]
    vcf = write_vcf(tmp_path / "symbolic.vcf", records, {"IV": 174938})
    out = tmp_path / "o.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", vcf, "--fasta", ce1pct, "--out", out, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    split = subprocess.run(["bcftools", "norm", "-m-", str(out)], capture_output=True, text=True)
    assert split.returncode == 0, split.stderr
    body = [line.split("\t") for line in split.stdout.splitlines() if not line.startswith("#")]
    assert [(r[2], r[4]) for r in body] == [("del", "<DEL>"), ("multi", "<INS>"), ("multi", "A"), ("multi", "C")]
    binary = subprocess.run(["bcftools", "view", "-Ob", "-o", str(tmp_path / "o.bcf"), str(out)], capture_output=True,
                            text=True)
    assert binary.returncode == 0, binary.stderr


def test_mutagenesis_refuses_what_it_cannot_do_well(cnn, ce1pct, tmp_path):
    window = scan_classifier(tmp_path / "window", window=300)
    for options, words in [(["--model", cnn, "--region", "IV:1-3000"], ["3000 bp", "at most 2000"]),
                           (["--model", cnn, "--region", "IV:1000-1030", "--plot", tmp_path / "o.png"], [".svg"]),
                           (["--model", window, "--region", "IV:1000-1299", "--at", 1100], ["--at is for per-base"])]:
        result = run_cli("mutagenesis", "--fasta", ce1pct, *options, "--out", tmp_path / "o.tsv", "--device", "cpu")
        assert_user_error(result, *words)
        assert not list(tmp_path.glob("o.*"))
    # --out and --plot swapped: the table would be written as a figure's name.
    result = run_cli("mutagenesis", "--fasta", ce1pct, "--model", cnn, "--region", "IV:1000-1030", "--out",
                     tmp_path / "o.svg", "--plot", tmp_path / "o.tsv", "--device", "cpu")
    assert_user_error(result, "o.svg: mutagenesis writes a tab-separated table")
    assert not list(tmp_path.glob("o.*"))
    # A region of another length than the classifier's windows is scored, with the warning a scan gives.
    result = run_cli("mutagenesis", "--fasta", ce1pct, "--model", window, "--region", "IV:1000-1099", "--out",
                     tmp_path / "o.tsv", "--device", "cpu")
    assert result.returncode == 0 and "fine-tuned on 300 bp windows; scanning 100 bp windows" in result.stderr
    with open(tmp_path / "o.tsv", newline="") as handle:
        assert {(r["label"], r["strand"], r["scored"]) for r in csv.DictReader(handle, delimiter="\t")} == \
            {("donor", "+", "1000-1099")}


def test_regions_name_contigs_that_hold_colons():
    from dnabert2.mutagenesis import parse_region

    assert parse_region("HLA-A*01:01:01:01:1,001-2,000") == ("HLA-A*01:01:01:01", 1000, 2000)


def test_n_bases_are_neither_scored_nor_changed_and_breakend_alleles_keep_the_fields_apart(cnn, ce1pct, tmp_path):
    """An N of the reference has no score to gain or lose, as in a scan: an SNV on the one real base
    amid N places every gain and loss on itself. An N in REF or ALT is no base to score. A breakend's
    ALT names its mate's contig, '|' and ';' and all: escaped, the INFO value keeps its 9 fields. A
    VCF most of whose REFs disagree with the reference is warned of."""
    with Fasta(ce1pct) as genome:
        piece = genome.fetch("IV", 0, 5000), genome.fetch("IV", 5000, 10000)
    fasta = tmp_path / "gap.fa"
    fasta.write_text(f">c\n{piece[0]}{'N' * 200}A{'N' * 200}{piece[1]}\n")
    records = [("c", 100, "alt_n", piece[0][100], "N"), ("c", 200, "bnd", piece[0][200], f"{piece[0][200]}]x|y;z:5]"),
               ("c", 5100, "ref_n", "N", "A"), ("c", 5200, "amid", "A", "G")]
    out = tmp_path / "o.vcf.gz"
    result = run_cli("variants", "--model", cnn, "--vcf", write_vcf(tmp_path / "in.vcf", records, {"c": 10401}),
                     "--fasta", fasta, "--out", out, "--device", "cpu", "--distance", 50)
    assert result.returncode == 0, result.stderr
    assert "another assembly" not in result.stderr
    with pysam.VariantFile(str(out)) as vcf:
        by_id = {r.id: r for r in vcf}
    amid = by_id["amid"].info["DNABERT2"][0].split("|")
    assert amid[0] == "G" and amid[5:] == ["0"] * 4  # DP_AG DP_AL DP_DG DP_DL
    assert by_id["ref_n"].info["DNABERT2_UNSCORED"] == "unscorable_ref"
    assert by_id["alt_n"].info["DNABERT2"][0].split("|")[1:] == ["."] * 8
    breakend = by_id["bnd"].info["DNABERT2"][0].split("|")
    assert len(breakend) == 9 and breakend[0] == f"{piece[0][200]}]x%7Cy%3Bz:5]"
    records = [("c", p, f"m{p}", OTHER[piece[0][p]], "A" if piece[0][p] != "A" else "C") for p in (300, 400, 500)]
    result = run_cli("variants", "--model", cnn, "--vcf", write_vcf(tmp_path / "other.vcf", records, {"c": 10401}),
                     "--fasta", fasta, "--out", tmp_path / "other.vcf.gz", "--device", "cpu", "-q")
    assert result.returncode == 0 and "the REF of 3 of 3 records disagrees" in result.stderr, result.stderr
