"""Reading genomes, annotation and alignments; windows and reverse complement."""

import gzip
import logging
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pysam
import pytest
from Bio import SeqIO

from conftest import GENOMES, assert_user_error, run_cli
from dnabert2.errors import UserError
from dnabert2.sequences.fasta import READ_WHOLE_KEPT
from dnabert2.sequences.annotation import Annotation, Intron
from dnabert2.sequences import (
    Fasta, aligned_reads, check_reference, genome_windows, junctions, open_alignments, read_annotation,
    read_bed_intervals, read_introns, read_records, reverse_complement, windows, write_indexed_fasta,
)

LAMBDA = GENOMES / "lambda_phage_bowtie2_example.fa.gz"
PHIX = GENOMES / "phiX174_NC_001422.gbk.gz"
CE = GENOMES / "ce1pct.fa.gz"
CE_GFF = GENOMES / "ce1pct.gff3.gz"


def lambda_sequence() -> str:
    with gzip.open(LAMBDA, "rt") as handle:
        return str(next(SeqIO.parse(handle, "fasta")).seq)


@pytest.fixture
def lambda_forms(tmp_path):
    """The lambda genome as plain, gzip and bgzip FASTA."""
    plain = tmp_path / "lambda.fa"
    with gzip.open(LAMBDA, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    gz = tmp_path / "lambda.fa.gz"
    shutil.copy(LAMBDA, gz)
    bgz = tmp_path / "lambda.bgz.fa.gz"
    pysam.tabix_compress(str(plain), str(bgz))
    return {"plain": plain, "gzip": gz, "bgzip": bgz}


@pytest.mark.parametrize("form", ["plain", "gzip", "bgzip"])
def test_fasta_random_access_in_every_compression(lambda_forms, form):
    expected = lambda_sequence().upper()
    with Fasta(lambda_forms[form]) as fasta:
        (name,) = fasta.lengths
        assert fasta.lengths[name] == len(expected) == 48502
        assert fasta.fetch(name, 1000, 1060) == expected[1000:1060]
        assert fasta.fetch(name) == expected


def test_fasta_index_is_built_elsewhere_when_the_folder_is_read_only(lambda_forms, monkeypatch):
    bgz = lambda_forms["bgzip"]
    # chmod cannot make a folder read-only for root (as CI runs), so the check itself answers no.
    monkeypatch.setattr("dnabert2.sequences.fasta.os.access", lambda path, mode: False)
    with Fasta(bgz) as fasta:
        assert fasta.fetch(next(iter(fasta.lengths)), 0, 10) == lambda_sequence()[:10].upper()
    assert not bgz.with_name(bgz.name + ".fai").exists() and not bgz.with_name(bgz.name + ".gzi").exists()


@pytest.mark.parametrize("name", ["genome.fa", "genome.fa.gz"])
def test_an_index_older_than_its_fasta_is_built_again(tmp_path, name):
    """A FASTA rewritten beside its old .fai: the old index would read other contigs and bases."""
    import os

    plain = tmp_path / "plain.fa"
    path = tmp_path / name
    for number, text in enumerate([">c1\nACGTACGTAC\nACGT\n>c2\nGGGG\n", ">x\nTTTTTTTT\nCC\n>c1\nAACC\n"]):
        plain.write_text(text)
        if name.endswith(".gz"):
            pysam.tabix_compress(str(plain), str(path), force=True)
        else:
            path.write_text(text)
        os.utime(path, (1000 + number * 100,) * 2)  # the rewrite is later than the first index
        with Fasta(path) as fasta:
            lengths, first = fasta.lengths, fasta.fetch(next(iter(fasta.lengths)))
        for index in tmp_path.glob(f"{name}.*"):
            os.utime(index, (1050 + number * 100,) * 2)
    assert lengths == {"x": 10, "c1": 4} and first == "TTTTTTTTCC"
    assert not list(tmp_path.glob(".*"))  # indexed under temporary names, renamed: none left behind


@pytest.mark.parametrize("name", ["genome.fa", "genome.fa.gz"])
def test_an_index_newer_than_a_fasta_edited_since_is_rebuilt_not_read_through(tmp_path, caplog, name):
    """A FASTA edited or replaced with its time kept (cp -p, rsync -t) beside the index of the file
    before: a line more in its first contig shifts the others, and they would be read a line off,
    silently. A bgzip FASTA is read through its .gzi to tell."""
    path = tmp_path / name

    def write(text):
        (tmp_path / "plain.fa").write_text(text)
        if name.endswith(".gz"):
            pysam.tabix_compress(str(tmp_path / "plain.fa"), str(path), force=True)
        else:
            path.write_text(text)
        os.utime(path, (1000, 1000))

    second = "ACGTTGCA" * 10
    write(">c1\n" + "A" * 60 + "\n>c2\n" + second + "\n")
    Fasta(path).close()
    write(">c1\n" + "A" * 60 + "\n" + "C" * 60 + "\n>c2\n" + second + "\n")
    with Fasta(path) as fasta:
        assert fasta.lengths == {"c1": 120, "c2": 80} and fasta.fetch("c2") == second
    assert "its index describes another file" in caplog.text
    caplog.clear()
    for tail in ("\n\n", "\x00" * 10, "\n>"):  # blank lines, NUL padding, a header without bases: no edit
        write((tmp_path / "plain.fa").read_text() + tail)
        with Fasta(path) as fasta:
            assert fasta.fetch("c2") == second
        assert "index" not in caplog.text, repr(tail)


def test_an_index_that_does_not_describe_its_bgzip_fasta_is_rebuilt_or_one_clear_error(tmp_path, caplog):
    """A .fai newer than its FASTA but claiming a longer contig (edited, or copied from another file)
    is rebuilt; one whose last record ends where the file does, but in lines of another length, is
    caught where it reads a line end as a base."""
    plain, name = tmp_path / "plain.fa", "genome.fa.gz"
    plain.write_text(">c1\n" + "ACGT" * 25 + "\n")
    path = tmp_path / name
    pysam.tabix_compress(str(plain), str(path))
    Fasta(path).close()
    fai = tmp_path / f"{name}.fai"
    first = fai.read_text()
    fai.write_text(first.replace("\t100\t", "\t200\t", 1))
    with Fasta(path) as fasta:
        assert fasta.lengths == {"c1": 100} and fasta.fetch("c1", 50, 100) == ("ACGT" * 25)[50:]
    assert "its index describes another file" in caplog.text
    # The same length in lines of 50, not 100: the index would read a line end as a base.
    fai.write_text(first.replace("\t100\t101", "\t50\t51", 1))
    with Fasta(path) as fasta, pytest.raises(UserError, match="is not 60 bases"):
        fasta.fetch("c1", 40, 100)


def test_an_index_that_reads_past_the_end_of_its_fasta_is_one_clear_error_from_a_command(tmp_path):
    """htslib then fails with no reason of its own: the error number left by an earlier call (a
    terminal check) came out as "Inappropriate ioctl for device". The index's last record is right,
    so the file's end agrees with it."""
    plain, path = tmp_path / "one_line.fa", tmp_path / "one_line.fa.gz"
    plain.write_text(">c1\n" + "ACGT" * 750 + "\n>c2\nACGT\n")
    pysam.tabix_compress(str(plain), str(path))
    Fasta(path).close()
    os.utime(path, (1000, 1000))
    # c1 indexed in lines of 60
    (tmp_path / "one_line.fa.gz.fai").write_text("c1\t3000\t4\t60\t61\nc2\t4\t3009\t4\t5\n")
    result = run_cli("windows", "--genome", path, "--contigs", "c1", "--out", tmp_path / "w.bed")
    assert_user_error(result, "cannot read c1:1-3000 through its index; if the FASTA was replaced, remove its .fai")


def test_a_bad_character_is_placed_in_its_contig_not_in_the_stretch_read(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">c1\n" + "ACGT" * 25 + "X" + "ACGT" * 25 + "\n")
    with Fasta(path) as fasta, pytest.raises(UserError, match="'c1' has a non-nucleotide character 'X' at position 101$"):
        fasta.fetch("c1", 90, 110)


def test_fasta_with_ragged_lines_is_read_whole(tmp_path):
    path = tmp_path / "ragged.fa"
    path.write_text(">a\nACGTACGT\nAC\nACGTAC\n>b\nGG\n")
    with Fasta(path) as fasta:
        assert fasta.lengths == {"a": 16, "b": 2}
        assert fasta.fetch("a", 6, 12) == "GTACAC"


def test_soft_masked_bases_come_back_upper_case(tmp_path):
    path = tmp_path / "masked.fa"
    path.write_text(">c\nACGTacgtnnNN\n")
    with Fasta(path) as fasta:
        assert fasta.fetch("c") == "ACGTACGTNNNN"


def test_unknown_contig_and_region_outside_contig_are_errors(lambda_forms):
    with Fasta(lambda_forms["plain"]) as fasta:
        with pytest.raises(UserError, match="unknown contig 'chrZ'"):
            fasta.fetch("chrZ")
        name = next(iter(fasta.lengths))
        with pytest.raises(UserError, match="outside the contig"):
            fasta.fetch(name, 48000, 49000)


def test_genbank_is_read_and_converted(tmp_path):
    records = list(read_records(PHIX))
    assert [(name, len(seq)) for name, seq in records] == [("NC_001422.1", 5386)]
    out = tmp_path / "phix.fa.gz"
    assert write_indexed_fasta(PHIX, out) == {"NC_001422.1": 5386}
    with pysam.FastaFile(str(out)) as fasta:
        assert fasta.fetch("NC_001422.1") == records[0][1]


def test_a_genbank_release_file_is_read_past_its_header(tmp_path):
    """NCBI's release files (gbvrl1.seq) open with a header before the first LOCUS line; Biopython
    reads past it, and so must the sniffing of genomes and annotations."""
    release = tmp_path / "gbphg1.seq"
    release.write_text("GBPHG1.SEQ          Genetic Sequence Data Bank\n                NCBI-GenBank Flat File "
                       "Release 258.0\n\n    1 loci,     5386 bases, from     1 reported sequences\n\n\n"
                       + gzip.decompress(PHIX.read_bytes()).decode())
    assert [(name, len(seq)) for name, seq in read_records(release)] == [("NC_001422.1", 5386)]
    assert read_annotation(release).tss() == read_annotation(PHIX).tss() != []


def test_genbank_operon_mrna_owns_the_cds_inside_it_and_is_named_by_its_span():
    """phiX174's two mRNAs name no gene: each is a transcription unit holding the CDS inside it (genes D
    to H), named as bedtools getfasta names a region (0-based, strand in brackets); the CDS outside any
    mRNA, named by their protein ids, are genes of their own."""
    genes = [(g.id, g.start, g.end, g.strand) for g in read_annotation(PHIX).genes()]
    assert genes == [("NP_040706.1", 50, 221, "+"), ("NP_040707.1", 132, 393, "+"),
                     ("NC_001422.1:357-991(+)", 357, 991, "+"), ("NC_001422.1:357-3975(+)", 357, 3975, "+")]


def test_bgzip_conversion_writes_indices_and_keeps_the_sequence(lambda_forms, tmp_path):
    out = tmp_path / "out" / "genome.fa.gz"
    lengths = write_indexed_fasta(lambda_forms["gzip"], out)
    assert list(lengths.values()) == [48502]
    assert (tmp_path / "out" / "genome.fa.gz.fai").exists() and (tmp_path / "out" / "genome.fa.gz.gzi").exists()
    with pysam.FastaFile(str(out)) as fasta:
        assert fasta.fetch(fasta.references[0]) == lambda_sequence()


@pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools is not installed")
def test_an_output_not_named_gz_is_plain_fasta_that_bedtools_reads(lambda_forms, tmp_path):
    """Tools that go by the name (bedtools getfasta reads no bgzip) get what the name says."""
    out = tmp_path / "genome.fa"
    write_indexed_fasta(lambda_forms["gzip"], out)
    assert out.read_bytes().startswith(b">") and not Path(f"{out}.gzi").exists()
    name = Path(f"{out}.fai").read_text().split()[0]
    bed = tmp_path / "r.bed"
    bed.write_text(f"{name}\t100\t130\n")
    got = subprocess.run(["bedtools", "getfasta", "-fi", out, "-bed", bed], capture_output=True, text=True, check=True)
    assert got.stdout.split("\n")[1] == lambda_sequence()[100:130]


def test_ragged_fasta_lines_are_rewrapped(tmp_path):
    path = tmp_path / "ragged.fa"
    path.write_text(">a\nACGTACGT\nAC\nACGTAC\n>b\nGG\n")
    out = tmp_path / "ragged.fa.gz"
    assert write_indexed_fasta(path, out) == {"a": 16, "b": 2}
    with pysam.FastaFile(str(out)) as fasta:
        assert fasta.fetch("a") == "ACGTACGTACACGTAC"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b">only_a_header\n", "no sequence"),
        (b">x\nACGTNNRY\n>y\nACGT-ACGT\n", "'y' has a non-nucleotide character '-' at position 5"),
        (b">x\nACGTNNRY\n>y\nACGTA\nCGTX\n", "'y' has a non-nucleotide character 'X' at position 9"),
        (b">x\nACGT\n>gap\n>y\nACGT\n", "record 'gap' has no sequence"),  # faidx would drop it unsaid
        (b">x\nACGT\n>last\n", "record 'last' has no sequence"),
        (b"ID   not fasta\n", "not a FASTA"),
        (b">a\nACGT\n>a\nGGGG\n", "'a' appears more than once"),
        (b">\nACGT\n", "empty name"),
    ],
)
def test_bad_fasta_is_refused_without_output(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    out = tmp_path / "out.fa.gz"
    with pytest.raises(UserError, match=message):
        write_indexed_fasta(path, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa"]


def test_a_record_is_checked_along_its_whole_length_across_read_chunks(tmp_path):
    path = tmp_path / "long.fa"
    path.write_bytes(b">a\n" + b"ACGT\n" * 300_000 + b"ACGTQ\n")  # past the first 1 MiB chunk
    with pytest.raises(UserError, match="'a' has a non-nucleotide character 'Q' at position 1200005"):
        write_indexed_fasta(path, tmp_path / "out.fa.gz")


def test_an_output_that_cannot_be_created_is_one_error_naming_it(tmp_path):
    probe = Path("/sys") / "dnabert2-probe"
    try:
        probe.touch()
    except OSError:
        pass
    else:
        probe.unlink()
        pytest.skip("/sys is writable here")
    with pytest.raises(UserError, match=r"^/sys/out.fa.gz: cannot write in /sys \("):  # found before any is read
        write_indexed_fasta(LAMBDA, "/sys/out.fa.gz")


def test_a_plain_gzip_genome_is_read_once_per_process_while_unchanged(tmp_path, caplog):
    path = tmp_path / "g.fa.gz"
    path.write_bytes(gzip.compress(b">a\nacgtACGT\n"))
    (tmp_path / "link.fa.gz").symlink_to(path)
    with caplog.at_level(logging.INFO, logger="dnabert2.sequences.fasta"):
        for name in (path, path, tmp_path / "link.fa.gz"):  # under whichever name
            with Fasta(name) as fasta:
                assert fasta.fetch("a") == "ACGTACGT"
    assert caplog.text.count("reading it into memory") == 1
    path.write_bytes(gzip.compress(b">a\nTTTTTTTT\n"))  # edited in place, same size
    os.utime(path, ns=(1, 1))
    with Fasta(path) as fasta:
        assert fasta.fetch("a") == "TTTTTTTT"
    replaced = tmp_path / "new.fa.gz"
    replaced.write_bytes(gzip.compress(b">a\nCCCCCCCC\n"))
    os.utime(replaced, ns=(1, 1))  # replaced by a file of the same size and mtime
    replaced.replace(path)
    with Fasta(path) as fasta:
        assert fasta.fetch("a") == "CCCCCCCC"
    # Genomes opened in turn (a sampler's), and one held open while more than READ_WHOLE_KEPT others are read.
    others = []
    for i in range(READ_WHOLE_KEPT + 1):
        others.append(tmp_path / f"{i}.fa.gz")
        others[-1].write_bytes(gzip.compress(f">c{i}\nACGT\n".encode()))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dnabert2.sequences.fasta"), Fasta(path) as held_open:
        for _ in range(2):
            for other in others[:3]:
                Fasta(other).close()
        for other in others:
            Fasta(other).close()
        Fasta(path).close()
        assert held_open.fetch("a") == "CCCCCCCC"
    assert caplog.text.count("reading it into memory") == len(others)


def test_truncated_gzip_is_refused(tmp_path):
    data = LAMBDA.read_bytes()
    path = tmp_path / "truncated.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        list(read_records(path))
    with pytest.raises(UserError, match="truncated or corrupt"):
        write_indexed_fasta(path, tmp_path / "out.fa.gz")
    assert not (tmp_path / "out.fa.gz").exists()


def test_bgzip_cut_between_blocks_is_refused_by_every_reader(tmp_path):
    """Cut at a block boundary, a bgzip file decompresses cleanly, only shorter: its missing end-of-file
    block is what tells."""
    import struct

    whole = tmp_path / "whole.fa.gz"
    write_indexed_fasta(GENOMES / "ce1pct.fa.gz", whole)
    data = whole.read_bytes()
    starts, offset = [], 0
    while offset < len(data):
        starts.append(offset)
        offset += struct.unpack("<H", data[offset + 16:offset + 18])[0] + 1
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(data[:starts[len(starts) // 2]])
    with pytest.raises(UserError, match="cut.fa.gz: truncated bgzip file"):
        Fasta(cut)
    with pytest.raises(UserError, match="cut.fa.gz: truncated bgzip file"):
        list(read_records(cut))
    result = run_cli("download", cut, "--out", tmp_path / "out.fa.gz")
    assert_user_error(result, "truncated bgzip file")
    assert not (tmp_path / "out.fa.gz").exists()
    with Fasta(whole) as fasta:  # whole, it reads as ever
        assert len(fasta.lengths) == 7


def test_reverse_complement_is_iupac_aware():
    assert reverse_complement("ACGTRYKMSWBDHVN") == "NBDHVWSKMRYACGT"
    assert reverse_complement("acgtn") == "nacgt"
    assert reverse_complement("AAcg") == "cgTT"


def test_windows_tile_both_strands_and_cover_the_end():
    seq = "AAAACCCCGGGGTT"  # 14 bp
    got = list(windows(seq, "c", 6, 4))
    assert [(w.start, w.end, w.strand) for w in got] == [
        (0, 6, "+"), (0, 6, "-"), (4, 10, "+"), (4, 10, "-"), (8, 14, "+"), (8, 14, "-"),
    ]
    for w in got:
        forward = seq[w.start : w.end]
        assert w.sequence == (forward if w.strand == "+" else reverse_complement(forward))


def test_windows_split_at_or_skip_n_runs():
    seq = "ACGTACGT" + "N" * 5 + "TTTTGGGG"
    split = list(windows(seq, "c", 4, 4, strands="+"))
    assert [(w.start, w.end) for w in split] == [(0, 4), (4, 8), (13, 17), (17, 21)]
    assert all("N" not in w.sequence for w in split)
    skip = list(windows(seq, "c", 4, 4, strands="+", on_n="skip"))
    # the grid stays at 4 bp; the last window sits flush with the end
    assert [(w.start, w.end) for w in skip] == [(0, 4), (4, 8), (16, 20), (17, 21)]
    keep = list(windows(seq, "c", 4, 4, strands="+", on_n="keep"))
    assert len(keep) == 6
    # Another IUPAC code is as unknown as N (scan, tasks and pretrain count it so).
    ambiguous = seq.replace("NNNNN", "NRYKM")
    for on_n in ("split", "skip"):
        assert [(w.start, w.end) for w in windows(ambiguous, "c", 4, 4, strands="+", on_n=on_n)] == \
            [(w.start, w.end) for w in (split if on_n == "split" else skip)]


def test_genome_windows_over_regions_keep_genome_coordinates(lambda_forms):
    with Fasta(lambda_forms["bgzip"]) as fasta:
        name = next(iter(fasta.lengths))
        got = list(genome_windows(fasta, 100, 100, regions=[(name, 1000, 1300)], strands="+"))
        assert [(w.start, w.end) for w in got] == [(1000, 1100), (1100, 1200), (1200, 1300)]
        assert got[1].sequence == lambda_sequence()[1100:1200].upper()
        # Overlapping regions in any order: merged, in genome order, no window twice; or whole contigs.
        got = genome_windows(fasta, 100, 100, regions=[(name, 1000, 1300), (name, 1100, 1250), (name, 0, 200)],
                             strands="+")
        assert [(w.start, w.end) for w in got] == [(0, 100), (100, 200), (1000, 1100), (1100, 1200), (1200, 1300)]
        whole = list(genome_windows(fasta, 10_000, 10_000, contigs=[name], strands="+"))
        assert whole[0].start == 0 and whole[-1].end == fasta.lengths[name]


def test_gff3_gives_tss_and_splice_sites_with_canonical_dinucleotides():
    annotation = read_annotation(CE_GFF)
    assert len(annotation.transcripts) == 424 - 7  # less those the cut-out left incomplete
    with Fasta(CE) as genome:
        annotation.keep_genome_contigs(genome.lengths)
        motifs = Counter()
        for site in annotation.splice_sites():
            if site.strand == "+":
                pair = genome.fetch(site.contig, site.position, site.position + 2) if site.kind == "donor" \
                    else genome.fetch(site.contig, site.position - 1, site.position + 1)
            else:
                pair = reverse_complement(genome.fetch(site.contig, site.position - 1, site.position + 1)) \
                    if site.kind == "donor" else reverse_complement(genome.fetch(site.contig, site.position, site.position + 2))
            motifs[(site.kind, pair)] += 1
    donors = sum(n for (kind, _), n in motifs.items() if kind == "donor")
    acceptors = sum(n for (kind, _), n in motifs.items() if kind == "acceptor")
    assert motifs[("donor", "GT")] / donors > 0.97
    assert motifs[("acceptor", "AG")] / acceptors > 0.97
    # every transcript's TSS is its 5' end on its own strand
    for t in annotation.transcripts:
        assert t.tss == (t.start if t.strand == "+" else t.end - 1)


def test_gtf_gives_introns_per_transcript(data):
    annotation = read_annotation(data / "bam/sirv_ont/SIRV_C_150601a.gtf.gz")
    first = annotation.transcripts[0]
    assert (first.id, first.gene, first.strand) == ("SIRV101", "SIRV1", "-")
    assert first.exons[0] == (1000, 1484) and first.introns[0] == (1484, 6337)
    assert len(annotation.introns()) == 114


def test_a_transcript_missing_a_piece_is_left_out_not_given_an_intron_no_annotation_holds(tmp_path, caplog):
    """t1's middle exon names no transcript_id (GTF) or no strand (GFF3); t9 is one id under two GTF
    genes 2 kb apart. Kept as read, each would gain an intron, or lose its end; t2 is whole."""
    t2 = 'c\tt\texon\t2001\t2100\t.\t-\t.\tgene_id "g2"; transcript_id "t2";\n' \
         'c\tt\texon\t2501\t2600\t.\t-\t.\tgene_id "g2"; transcript_id "t2";\n'
    cases = {
        "missing.gtf": 'c\tt\texon\t101\t200\t.\t+\t.\tgene_id "g1"; transcript_id "t1";\n'
                       'c\tt\texon\t301\t400\t.\t+\t.\tgene_id "g1";\n'
                       'c\tt\texon\t901\t1000\t.\t+\t.\tgene_id "g1"; transcript_id "t1";\n' + t2,
        "unstranded.gff3": "##gff-version 3\nc\tt\tmRNA\t101\t1000\t.\t+\t.\tID=t1\n"
                           "c\tt\texon\t101\t200\t.\t+\t.\tParent=t1\nc\tt\texon\t901\t1000\t.\t.\t.\tParent=t1\n"
                           "c\tt\tmRNA\t2001\t2600\t.\t-\t.\tID=t2\nc\tt\texon\t2001\t2100\t.\t-\t.\tParent=t2\n"
                           "c\tt\texon\t2501\t2600\t.\t-\t.\tParent=t2\n",
        "two_genes.gtf": 'c\tt\texon\t101\t200\t.\t+\t.\tgene_id "g1"; transcript_id "t9";\n'
                         'c\tt\texon\t2701\t2800\t.\t+\t.\tgene_id "g3"; transcript_id "t9";\n' + t2,
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        caplog.clear()
        annotation = read_annotation(tmp_path / name)
        assert [t.id for t in annotation.transcripts] == ["t2"], name
        assert "left out: t" in caplog.text, name
    # A GTF without gene_id (MAKER, liftovers), or with it on some lines only, names no second gene.
    (tmp_path / "genes.gtf").write_text('c\tt\texon\t101\t200\t.\t+\t.\ttranscript_id "t1";\n'
                                        'c\tt\texon\t901\t1000\t.\t+\t.\ttranscript_id "t1"; gene_id "g1";\n'
                                        'c\tt\texon\t2001\t2100\t.\t+\t.\ttranscript_id "t3";\n'
                                        'c\tt\texon\t2301\t2400\t.\t+\t.\ttranscript_id "t3";\n')
    kept = read_annotation(tmp_path / "genes.gtf").transcripts
    assert [(t.id, t.gene, len(t.introns)) for t in kept] == [("t1", "g1", 1), ("t3", "t3", 1)]


def test_a_gtf_gene_whose_lines_name_no_transcript_is_set_aside_with_a_warning(tmp_path, caplog):
    """g2's exons name no transcript_id (or an empty one): it was dropped without a word, and its real
    sites became negatives for tasks and false calls for scan-eval. Which exons make which transcript
    is unknown (two of them are one exon's alternative ends): every exon's ends are set aside."""
    (tmp_path / "a.gtf").write_text(
        'c\tt\texon\t101\t200\t.\t+\t.\tgene_id "g1"; transcript_id "t1";\n'
        'c\tt\texon\t401\t1000\t.\t+\t.\tgene_id "g1"; transcript_id "t1";\n'
        'c\tt\texon\t1101\t1200\t.\t-\t.\tgene_id "g2";\n'
        'c\tt\texon\t1101\t1250\t.\t-\t.\tgene_id "g2";\n'
        'c\tt\texon\t1301\t1400\t.\t-\t.\tgene_id "g2"; transcript_id "";\n')
    annotation = read_annotation(tmp_path / "a.gtf")
    assert [t.id for t in annotation.transcripts] == ["t1"]
    assert "1 GTF gene(s) whose exon, CDS, UTR and codon lines name no transcript_id, left out: g2" in caplog.text
    aside = {(s.kind, s.position) for s in annotation.unlabelled({"donor", "acceptor", "tss", "tts"})}
    assert aside == {("tss", 1399), ("tss", 1249), ("tss", 1199), ("donor", 1299), ("acceptor", 1250),
                     ("acceptor", 1200), ("tts", 1300), ("tts", 1100)}
    assert {s.strand for s in annotation.unlabelled({"donor", "acceptor", "tss", "tts"})} == {"-"}


def test_mirnas_and_circular_rnas_give_splice_sites_but_no_tss_or_tts(tmp_path):
    """A mature miRNA is cut from its primary transcript and a circular RNA's ends are a back-splice:
    their ends are no TSS or TTS. The WormBase GFF3 types and Ensembl's GTF biotype."""
    (tmp_path / "a.gff3").write_text(
        "##gff-version 3\nc\tt\tmiRNA\t101\t122\t.\t+\t.\tID=m\nc\tt\texon\t101\t122\t.\t+\t.\tParent=m\n"
        "c\tt\tcircular_ncRNA\t501\t900\t.\t-\t.\tID=r\nc\tt\texon\t501\t600\t.\t-\t.\tParent=r\n"
        "c\tt\texon\t801\t900\t.\t-\t.\tParent=r\nc\tt\tmRNA\t2001\t2900\t.\t+\t.\tID=t\n"
        "c\tt\texon\t2001\t2900\t.\t+\t.\tParent=t\n")
    (tmp_path / "a.gtf").write_text(
        'c\tt\texon\t101\t180\t.\t+\t.\tgene_id "g"; transcript_id "m"; transcript_biotype "miRNA";\n'
        'c\tt\texon\t2001\t2900\t.\t+\t.\tgene_id "h"; transcript_id "t"; transcript_biotype "protein_coding";\n')
    (tmp_path / "gencode.gff3").write_text(
        "##gff-version 3\nc\tt\ttranscript\t101\t180\t.\t+\t.\tID=m;transcript_type=miRNA\n"
        "c\tt\texon\t101\t180\t.\t+\t.\tParent=m\nc\tt\ttranscript\t2001\t2900\t.\t+\t.\tID=t\n"
        "c\tt\texon\t2001\t2900\t.\t+\t.\tParent=t\n")
    gff3, gtf = read_annotation(tmp_path / "a.gff3"), read_annotation(tmp_path / "a.gtf")
    assert [s.position for s in read_annotation(tmp_path / "gencode.gff3").tss()] == [2000]
    assert [s.position for s in gff3.tss()] == [s.position for s in gtf.tss()] == [2000]
    assert [s.position for s in gff3.tts()] == [s.position for s in gtf.tts()] == [2899]
    assert {s.kind for s in gff3.splice_sites()} == {"donor", "acceptor"}  # the circular RNA's intron


def test_biotypes_of_each_annotation_source_and_an_equals_sign_inside_a_gtf_value(tmp_path):
    """A transcript's biotypes as Ensembl's and GENCODE's GTF, Ensembl's, NCBI's and WormBase's GFF3
    name them: its own biotype attribute where it has one (a protein-coding gene's retained intron or
    NMD transcript, t3, is no protein_coding one), else its GFF3 type and its gene's; NCBI's GTF names
    the GFF3 type as transcript_biotype. A GTF whose first value holds '=' (a gene_id "a=b") is still GTF."""
    gtf = 'c\tt\texon\t{}\t{}\t.\t+\t.\tgene_id "{}"; transcript_id "{}"; gene_biotype "{}"; transcript_{} "{}";\n'
    files = {
        "ensembl.gtf": gtf.format(101, 200, "a=b", "t1", "protein_coding", "biotype", "protein_coding")
                       + gtf.format(301, 400, "g2", "t2", "lncRNA", "type", "lncRNA")
                       + gtf.format(501, 600, "a=b", "t3", "protein_coding", "biotype", "retained_intron"),
        "ensembl.gff3": "##gff-version 3\nc\tt\tgene\t101\t600\t.\t+\t.\tID=g1;biotype=protein_coding\n"
                        "c\tt\tmRNA\t101\t200\t.\t+\t.\tID=t1;Parent=g1;biotype=protein_coding\n"
                        "c\tt\texon\t101\t200\t.\t+\t.\tParent=t1\n"
                        "c\tt\tmRNA\t501\t600\t.\t+\t.\tID=t3;Parent=g1;biotype=nonsense_mediated_decay\n"
                        "c\tt\texon\t501\t600\t.\t+\t.\tParent=t3\n"
                        "c\tt\tncRNA_gene\t301\t400\t.\t+\t.\tID=g2;biotype=lncRNA\n"
                        "c\tt\tlnc_RNA\t301\t400\t.\t+\t.\tID=t2;Parent=g2\nc\tt\texon\t301\t400\t.\t+\t.\tParent=t2\n",
        "ncbi.gtf": "".join(
            f'c\tBestRefSeq\t{kind}\t{start}\t{end}\t.\t+\t{frame}\tgene_id "{gene}"; transcript_id "{rna}"; {more}\n'
            for kind, start, end, frame, gene, rna, more in (
                ("gene", 101, 600, ".", "A", "", 'gbkey "Gene"; gene "A"; gene_biotype "protein_coding";'),
                ("transcript", 101, 200, ".", "A", "NM_1.1", 'gbkey "mRNA"; transcript_biotype "mRNA";'),
                ("exon", 101, 200, ".", "A", "NM_1.1", 'transcript_biotype "mRNA"; exon_number "1";'),
                ("CDS", 131, 190, "0", "A", "NM_1.1", 'gbkey "CDS"; protein_id "NP_1.1"; exon_number "1";'),
                ("gene", 301, 400, ".", "B", "", 'gbkey "Gene"; gene "B"; gene_biotype "lncRNA";'),
                ("transcript", 301, 400, ".", "B", "NR_2.1", 'gbkey "ncRNA"; transcript_biotype "lnc_RNA";'),
                ("exon", 301, 400, ".", "B", "NR_2.1", 'transcript_biotype "lnc_RNA"; exon_number "1";'),
                ("transcript", 501, 600, ".", "A", "XR_3.1", 'gbkey "misc_RNA"; transcript_biotype "transcript";'),
                ("exon", 501, 600, ".", "A", "XR_3.1", 'transcript_biotype "transcript"; exon_number "1";'))),
        "ncbi.gff3": "##gff-version 3\nc\tt\tgene\t101\t400\t.\t+\t.\tID=gene-a;gene_biotype=protein_coding\n"
                     "c\tt\tCDS\t101\t200\t.\t+\t0\tID=cds-a;Parent=gene-a\n"
                     "c\tt\tgene\t301\t400\t.\t+\t.\tID=gene-b;gene_biotype=tRNA\n"
                     "c\tt\ttRNA\t301\t400\t.\t+\t.\tID=rna-b;Parent=gene-b\nc\tt\texon\t301\t400\t.\t+\t.\tParent=rna-b\n",
    }
    expected = {
        "ensembl.gtf": {"t1": {"protein_coding"}, "t2": {"lncRNA"}, "t3": {"retained_intron"}},
        "ensembl.gff3": {"t1": {"mRNA", "protein_coding"}, "t2": {"lnc_RNA", "lncRNA"},
                         "t3": {"mRNA", "nonsense_mediated_decay"}},
        "ncbi.gtf": {"NM_1.1": {"mRNA", "protein_coding"}, "NR_2.1": {"lnc_RNA", "lncRNA"}, "XR_3.1": {"transcript"}},
        "ncbi.gff3": {"gene-a": {"protein_coding"}, "rna-b": {"tRNA"}},
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        annotation = read_annotation(tmp_path / name)
        assert {t.id: set(t.biotypes) for t in annotation.transcripts} == expected[name], name
        kept = read_annotation(tmp_path / name, biotypes=["protein_coding"])
        assert [t.id for t in kept.transcripts] == [next(iter(expected[name]))], name
        assert [s.position for s in kept.unlabelled({"tss"})] == [300, 500][:len(expected[name]) - 1], name
    assert read_annotation(tmp_path / "ensembl.gtf").transcripts[0].gene == "a=b"
    with pytest.raises(UserError, match="no transcript of biotype snoRNA; the biotypes of its transcripts are lncRNA, lnc_RNA, "
                                        "mRNA, nonsense_mediated_decay, protein_coding"):
        read_annotation(tmp_path / "ensembl.gff3", biotypes=["snoRNA"])
    # The transcripts of the biotype asked for lie on a contig the genome lacks: refused, not an empty answer.
    with pytest.raises(UserError, match="none of its 1 contig"):
        read_annotation(tmp_path / "ensembl.gtf", biotypes=["protein_coding"]).keep_genome_contigs({"d": 1000})
    # Those left out lie on the genome's: said so, not that the annotation names none of its contigs.
    (tmp_path / "two.gtf").write_text("".join(
        f'{contig}\tx\texon\t101\t200\t.\t+\t.\tgene_id "{t}"; transcript_id "{t}"; transcript_biotype "{biotype}";\n'
        for contig, t, biotype in (("chrA", "t1", "protein_coding"), ("chrB", "t2", "lncRNA"))))
    with pytest.raises(UserError, match=r"no transcript kept is on a contig of the genome \(they are on chrA\); those "
                                        r"left out \(by --biotype or --tag, or as warned\) are on chrB"):
        read_annotation(tmp_path / "two.gtf", biotypes=["protein_coding"]).keep_genome_contigs({"chrB": 1000})


def test_old_ensembl_gtf_gives_each_transcript_the_biotype_of_its_source_column(tmp_path):
    """Ensembl's GTF before it named transcript_biotype (GRCh37's release 75 included), and iGenomes'
    built from it, write a transcript's biotype in column 2, with its gene's (from release 68) in
    attributes: a protein-coding gene's retained intron
    is no protein_coding transcript, a miRNA's ends are no TSS or TTS. Column 2 of other GTFs
    (AUGUSTUS, HAVANA) is no biotype."""
    line = '1\t{}\texon\t{}\t{}\t.\t+\t.\tgene_id "{}"; transcript_id "{}"; exon_number "1";{}\n'
    igenomes = (line.format("protein_coding", 101, 200, "G1", "T1", "")
                + line.format("protein_coding", 131, 190, "G1", "T1", "").replace("\texon\t", "\tCDS\t")
                + line.format("retained_intron", 151, 260, "G1", "T2", "")
                + line.format("miRNA", 501, 522, "G3", "T3", ""))
    (tmp_path / "igenomes.gtf").write_text(igenomes)
    (tmp_path / "ensembl74.gtf").write_text(igenomes.replace('"1";', '"1"; gene_biotype "protein_coding";'))
    (tmp_path / "augustus.gtf").write_text(re.sub("(?m)^1\t[a-zA-Z_]+", "1\tAUGUSTUS", igenomes))
    for name in ("igenomes.gtf", "ensembl74.gtf"):
        annotation = read_annotation(tmp_path / name)
        assert {t.id: set(t.biotypes) for t in annotation.transcripts} == {
            "T1": {"protein_coding"}, "T2": {"retained_intron"}, "T3": {"miRNA"}}, name
        assert [s.position for s in annotation.tss()] == [100, 150], name
        assert [t.id for t in read_annotation(tmp_path / name, biotypes=["protein_coding"]).transcripts] == ["T1"]
    with pytest.raises(UserError, match="no transcript of biotype protein_coding; its transcripts have no biotype"):
        read_annotation(tmp_path / "augustus.gtf", biotypes=["protein_coding"])
    # A pipeline writing protein_coding in column 2 of every line: a transcript without a CDS is none.
    (tmp_path / "every.gtf").write_text(re.sub("(?m)^1\t[a-zA-Z_]+", "1\tprotein_coding", igenomes))
    assert {t.id: set(t.biotypes) for t in read_annotation(tmp_path / "every.gtf").transcripts} == {
        "T1": {"protein_coding"}, "T2": set(), "T3": set()}


def test_tags_as_gencode_ensembl_and_refseq_write_them_select_transcripts(tmp_path, caplog):
    """GENCODE's and Ensembl's GTF repeat the tag key (on transcript and exon lines), their GFF3 lists
    tags comma-separated, RefSeq writes 'MANE Select'; a locus_tag is no tag. --tag keeps the
    transcripts with one of the tags asked for, and with --biotype those passing both; the others'
    sites are unlabelled."""
    gtf_line = ('chr1\tHAVANA\t{}\t{}\t{}\t.\t+\t.\tgene_id "ENSG{}"; transcript_id "ENST{}"; gene_type "{}"; '
                'transcript_type "{}"; level 2; {}exon_number 1;\n')
    gtf = "".join(gtf_line.format(kind, start, start + 99, gene, n, biotype, biotype,
                                  "".join(f'tag "{t}"; ' for t in tags))
                  for n, gene, biotype, start, tags in (
                      (1, 1, "protein_coding", 101, ["RNA_Seq_supported_partial", "basic", "Ensembl_canonical",
                                                     "MANE_Select", "CCDS"]),
                      (2, 1, "protein_coding", 301, ["basic"]),
                      (3, 2, "lncRNA", 501, ["basic", "Ensembl_canonical"]))
                  for kind in ("transcript", "exon"))
    gff3 = "##gff-version 3\n" + "".join(
        f"chr1\tHAVANA\ttranscript\t{start}\t{start + 99}\t.\t+\t.\tID=ENST{n};Parent=ENSG{gene};"
        f"transcript_type={biotype};{'tag=' + ','.join(tags) + ';' if tags else ''}level=2\n"
        f"chr1\tHAVANA\texon\t{start}\t{start + 99}\t.\t+\t.\tID=exon:ENST{n}:1;Parent=ENST{n};tag=basic\n"
        for n, gene, biotype, start, tags in ((1, 1, "protein_coding", 101, ["basic", "Ensembl_canonical", "MANE_Select"]),
                                              (2, 1, "protein_coding", 301, []),
                                              (3, 2, "lncRNA", 501, ["basic", "Ensembl_canonical"])))
    refseq = ("##gff-version 3\nNC_1\tBestRefSeq\tgene\t101\t400\t.\t+\t.\tID=gene-A;gene_biotype=protein_coding\n"
              "NC_1\tBestRefSeq\tmRNA\t101\t200\t.\t+\t.\tID=rna-NM_1;Parent=gene-A;tag=MANE Select;locus_tag=b1\n"
              "NC_1\tBestRefSeq\texon\t101\t200\t.\t+\t.\tID=exon-NM_1-1;Parent=rna-NM_1\n"
              "NC_1\tGnomon\tmRNA\t301\t400\t.\t+\t.\tID=rna-XM_1;Parent=gene-A;locus_tag=b2\n"
              "NC_1\tGnomon\texon\t301\t400\t.\t+\t.\tID=exon-XM_1-1;Parent=rna-XM_1\n")
    for name, text in {"gencode.gtf": gtf, "gencode.gff3": gff3, "refseq.gff3": refseq}.items():
        (tmp_path / name).write_text(text)
    tags = {t.id: set(t.tags) for t in read_annotation(tmp_path / "gencode.gtf").transcripts}
    assert tags == {"ENST1": {"RNA_Seq_supported_partial", "basic", "Ensembl_canonical", "MANE_Select", "CCDS"},
                    "ENST2": {"basic"}, "ENST3": {"basic", "Ensembl_canonical"}}
    assert {t.id: set(t.tags) for t in read_annotation(tmp_path / "refseq.gff3").transcripts} == {
        "rna-NM_1": {"MANE Select"}, "rna-XM_1": set()}
    for name in ("gencode.gtf", "gencode.gff3"):
        mane = read_annotation(tmp_path / name, tags=["MANE_Select"])
        assert [t.id for t in mane.transcripts] == ["ENST1"], name
        assert [s.position for s in mane.unlabelled({"tss"})] == [300, 500], name
        canonical = read_annotation(tmp_path / name, tags=["Ensembl_canonical"])
        assert [t.id for t in canonical.transcripts] == ["ENST1", "ENST3"], name
        coding = read_annotation(tmp_path / name, biotypes=["protein_coding"], tags=["Ensembl_canonical"])
        assert [t.id for t in coding.transcripts] == ["ENST1"] and len(coding.left_out) == 2, name
    assert [t.id for t in read_annotation(tmp_path / "refseq.gff3", tags=["MANE Select"]).transcripts] == ["rna-NM_1"]
    # GENCODE's GFF3 repeats a transcript's tags on its exons: ENST2's are there only.
    assert len(read_annotation(tmp_path / "gencode.gff3", tags=["basic"]).transcripts) == 3
    with pytest.raises(UserError, match="no transcript of biotype lncRNA tagged CCDS; the tags of its transcripts of "
                                        "biotype lncRNA are Ensembl_canonical, basic$"):
        read_annotation(tmp_path / "gencode.gtf", biotypes=["lncRNA"], tags=["CCDS"])
    read_annotation(tmp_path / "gencode.gff3", tags=["MANE_Select", "MANE_Plus_Clinical"])
    assert "no transcript tagged MANE_Plus_Clinical; the tags of its transcripts are Ensembl_canonical, " \
           "MANE_Select, basic" in caplog.text
    with pytest.raises(UserError, match="no transcript tagged MANE_Select; the tags of its transcripts are MANE Select$"):
        read_annotation(tmp_path / "refseq.gff3", tags=["MANE_Select"])
    with pytest.raises(UserError, match="no transcript tagged basic; its transcripts have no tag$"):
        read_annotation(GENOMES / "ecoli_k12_mg1655.gff.gz", tags=["basic"])


@pytest.mark.parametrize("form", ["gtf", "gff3"])
def test_an_end_tagged_not_found_is_no_site_and_no_negative(tmp_path, form):
    """GENCODE and Ensembl tag a transcript whose model stops short of its 5' or 3' end mRNA_start_NF or
    mRNA_end_NF (Ensembl's SAMD11-011 is tagged cds_end_NF and mRNA_end_NF): that end is no TSS or TTS,
    and set aside, since the real one lies near, past it. Its introns are real."""
    def line(kind, start, end, transcript, tags):
        if form == "gtf":
            attributes = f'gene_id "G1"; transcript_id "{transcript}"; ' + "".join(f'tag "{t}"; ' for t in tags)
        else:
            ids = f"ID={transcript};Parent=G1" if kind == "transcript" else f"Parent={transcript}"
            attributes = ids + (f";tag={','.join(tags)}" if tags else "")
        return f"chr1\tHAVANA\t{kind}\t{start}\t{end}\t.\t+\t.\t{attributes}\n"

    rows = []
    for transcript, exons, tags in (("T1", [(1001, 1200), (2001, 2300)], ["basic"]),
                                    ("T2", [(1501, 1700), (2001, 2200)], ["mRNA_start_NF", "cds_start_NF"]),
                                    ("T3", [(1101, 1200), (2501, 2600)], ["cds_end_NF", "mRNA_end_NF"])):
        rows += [line("transcript", exons[0][0], exons[-1][1], transcript, tags)]
        rows += [line("exon", a, b, transcript, tags) for a, b in exons]
    path = tmp_path / f"ends.{form}"
    path.write_text(("chr1\tHAVANA\tgene\t1001\t2600\t.\t+\t.\tID=G1\n" if form == "gff3" else "") + "".join(rows))
    annotation = read_annotation(path)
    assert [s.position for s in annotation.tss()] == [1000, 1100]
    assert [s.position for s in annotation.tts()] == [2199, 2299]
    assert [s.position for s in annotation.unlabelled({"tss", "tts"})] == [1500, 2599]
    assert {s.position for s in annotation.splice_sites()} == {1200, 1700, 1999, 2499}


def test_a_semicolon_inside_a_quoted_gtf_value_and_single_quoted_values(tmp_path):
    """A ';' inside a double-quoted GTF value (RefSeq's notes and products) belongs to it: it ends no
    attribute, so no key after it is lost or made up. Single-quoted values lose their quotes."""
    (tmp_path / "a.gtf").write_text(
        'c\tt\texon\t101\t200\t.\t+\t.\tgene_id "g1"; transcript_id "t1"; note "x; transcript_id t9"; '
        'product "a;b"; tag "basic"; tag "MANE Select";\n'
        "c\tt\texon\t301\t400\t.\t-\t.\tgene_id 'g=2'; transcript_id 't;2'; tag 'basic';\n")
    annotation = read_annotation(tmp_path / "a.gtf")
    assert [(t.id, t.gene, set(t.tags)) for t in annotation.transcripts] == [
        ("t1", "g1", {"basic", "MANE Select"}), ("t;2", "g=2", {"basic"})]


def test_utrs_outside_coding_exons_and_a_gtf_stop_codon_outside_the_cds_are_the_transcripts(tmp_path):
    """Old WormBase GFF3 wrote coding exons only, the UTRs on lines of their own (one with an intron in
    it); GTF's CDS ends before the stop codon, written on a line of its own: a transcript known by its
    CDS ends where the stop codon does."""
    (tmp_path / "ws.gff3").write_text(
        "##gff-version 3\nI\tcurated\tmRNA\t101\t2000\t.\t-\t.\tID=Transcript:B1\n"
        "I\tcurated\tfive_prime_UTR\t1901\t2000\t.\t-\t.\tParent=Transcript:B1\n"
        "I\tcurated\tfive_prime_UTR\t1701\t1800\t.\t-\t.\tParent=Transcript:B1\n"
        "I\tcurated\texon\t1001\t1700\t.\t-\t.\tParent=Transcript:B1\n"
        "I\tcurated\tCDS\t1001\t1700\t.\t-\t0\tParent=Transcript:B1\n"
        "I\tcurated\tthree_prime_UTR\t101\t1000\t.\t-\t.\tParent=Transcript:B1\n")
    (transcript,) = read_annotation(tmp_path / "ws.gff3").transcripts
    assert (transcript.tss, transcript.tts, transcript.introns) == (1999, 100, [(1800, 1900)])
    line = 'c\tt\t{}\t{}\t{}\t.\t{}\t0\tgene_id "g{}"; transcript_id "t{}";\n'
    (tmp_path / "cds.gtf").write_text(line.format("CDS", 501, 997, "+", 1, 1) + line.format("stop_codon", 998, 1000, "+", 1, 1)
                                      + line.format("start_codon", 501, 503, "+", 1, 1)
                                      + line.format("CDS", 2004, 2500, "-", 2, 2)
                                      + line.format("stop_codon", 2001, 2003, "-", 2, 2)
                                      + line.format("exon", 3001, 4000, "+", 3, 3) + line.format("CDS", 3101, 3597, "+", 3, 3)
                                      + line.format("stop_codon", 3598, 3600, "+", 3, 3))
    assert [(t.id, t.tss, t.tts, t.coding) for t in read_annotation(tmp_path / "cds.gtf").transcripts] == [
        ("t1", 500, 999, True), ("t2", 2499, 2000, True), ("t3", 3000, 3999, False)]


def test_augustus_gtf_utr_lines_and_a_gene_cut_by_the_contigs_start(tmp_path):
    """AUGUSTUS's GTF (as its tests expect it) writes UTRs as 5'-UTR and 3'-UTR, and its intron lines;
    a gene cut by the contig's start has an intron from base 1 and no stop codon: its first base is
    no TTS, and it is left out as incomplete."""
    line = 'chrI\tAUGUSTUS\t{}\t{}\t{}\t{}\t-\t.\ttranscript_id "{}"; gene_id "{}";\n'
    (tmp_path / "augustus.gtf").write_text(
        "chrI\tAUGUSTUS\tgene\t1\t10595\t0.13\t-\t.\tg1\nchrI\tAUGUSTUS\ttranscript\t1\t10595\t0.13\t-\t.\tg1.t1\n"
        + "".join(line.format(kind, start, end, ".", "g1.t1", "g1") for kind, start, end in (
            ("CDS", 127, 217), ("CDS", 1067, 10481), ("intron", 1, 126), ("intron", 218, 1066),
            ("start_codon", 10479, 10481), ("5'-UTR", 10482, 10595), ("tss", 10595, 10595)))
        + "chrI\tAUGUSTUS\tgene\t46117\t50255\t0.14\t-\t.\tg4\n"
        + "".join(line.format(kind, start, end, ".", "g4.t1", "g4") for kind, start, end in (
            ("tts", 46117, 46117), ("3'-UTR", 46117, 46144), ("3'-UTR", 46522, 46852), ("3'-UTR", 49001, 49141),
            ("stop_codon", 49142, 49144), ("CDS", 49142, 50179), ("start_codon", 50177, 50179),
            ("5'-UTR", 50180, 50255), ("tss", 50255, 50255))))
    annotation = read_annotation(tmp_path / "augustus.gtf")
    (g4,) = annotation.transcripts
    assert (g4.id, g4.tss, g4.tts, g4.introns, g4.coding) == ("g4.t1", 50254, 46116, [(46144, 46521), (46852, 49000)],
                                                             False)
    assert [t.id for t in annotation.left_out] == ["g1.t1"]
    assert [(s.position, s.strand) for s in annotation.unlabelled({"tss", "tts"})] == [(126, "-"), (10594, "-")]


def test_a_transcript_defined_on_another_strand_than_its_pieces_is_left_out(tmp_path, caplog):
    """An mRNA on the other strand from its exons says one of them is wrong; an old NCBI writer gave
    genes on both strands one ID. (One ID on several lines of one strand is one discontinuous feature,
    as GFF3 says.)"""
    (tmp_path / "a.gff3").write_text(
        "##gff-version 3\nc\tRefSeq\tgene\t1001\t2000\t.\t+\t.\tID=c:speB;locus_tag=b1\n"
        "c\tRefSeq\tCDS\t1001\t2000\t.\t+\t0\tParent=c:speB\n"
        "c\tRefSeq\tgene\t900001\t901000\t.\t-\t.\tID=c:speB;locus_tag=b2\n"
        "c\tx\tgene\t5001\t6000\t.\t+\t.\tID=g2\nc\tx\tmRNA\t5001\t6000\t.\t-\t.\tID=t2;Parent=g2\n"
        "c\tx\texon\t5001\t6000\t.\t+\t.\tParent=t2\n"
        "c\tx\tgene\t7001\t8000\t.\t+\t.\tID=g3\nc\tx\tmRNA\t7001\t8000\t.\t+\t.\tID=t3;Parent=g3\n"
        "c\tx\texon\t7001\t7200\t.\t+\t.\tParent=t3\nc\tx\texon\t7801\t8000\t.\t+\t.\tParent=t3\n")
    annotation = read_annotation(tmp_path / "a.gff3")
    assert [t.id for t in annotation.transcripts] == ["t3"] and annotation.introns() == [Intron("c", 7200, 7800, "+")]
    assert "2 transcript id(s) name exons at several places" in caplog.text and "c:speB, t2" in caplog.text


def test_genes_marked_partial_give_no_ends(tmp_path):
    """GeneMarkS-2 and Prodigal mark a gene cut by a contig's end partial=01, 10 or 11, NCBI partial=true
    with a start_range or end_range, glimmer a bare "Lack 3'-end", Bakta pseudo=True: its first or
    last base is the contig's, no TSS or TTS. Liftoff marks a gene lifted over in part (or at a low
    identity) partial_mapping=True (low_identity=True): its transcripts may miss exons."""
    (tmp_path / "a.gff3").write_text(
        "##gff-version 3\nk1\tGeneMark.hmm2\tgene\t3\t365\t.\t+\t.\tID=gene_1\n"
        "k1\tGeneMark.hmm2\tCDS\t3\t365\t11.8\t+\t0\tID=1; Parent=gene_1; partial=11; gc=33\n"
        "k1\tProdigal\tCDS\t501\t800\t.\t-\t0\tID=k1_2;partial=10\n"
        "k1\tProdigal\tCDS\t1001\t1300\t.\t+\t0\tID=k1_3;partial=00\n"
        "k1\tRefSeq\tgene\t2001\t2300\t.\t+\t.\tID=gene-x;partial=true;start_range=.,2001\n"
        "k1\tRefSeq\tCDS\t2001\t2300\t.\t+\t0\tID=cds-x;Parent=gene-x;partial=true;start_range=.,2001\n"
        "k1\tglimmer\tgene\t3003\t3062\t.\t-\t.\tID=GL6;Name=GL6;Lack 3'-end;\n"
        "k1\tglimmer\tmRNA\t3003\t3062\t.\t-\t.\tID=GL6;Name=GL6;Parent=GL6;Lack 3'-end;\n"
        "k1\tglimmer\tCDS\t3003\t3062\t2.84\t-\t0\tParent=GL6;Lack 3'-end;\n"
        "k1\tglimmer\tgene\t3124\t3983\t.\t-\t.\tID=GL7;Name=GL7;Complete;\n"
        "k1\tglimmer\tmRNA\t3124\t3983\t.\t-\t.\tID=GL7;Name=GL7;Parent=GL7;Complete;\n"
        "k1\tglimmer\tCDS\t3124\t3983\t8.36\t-\t0\tParent=GL7;Complete;\n"
        "k1\tPyrodigal\tCDS\t4003\t4452\t.\t+\t0\tID=ABC_00005;locus_tag=ABC_00005;pseudo=True\n"
        + "".join(f"k1\tLiftoff\tgene\t{a}\t{a + 399}\t.\t+\t.\tID=g{a};coverage={c};sequence_ID={i};{flag}\n"
                  f"k1\tLiftoff\tmRNA\t{a}\t{a + 399}\t.\t+\t.\tID=t{a};Parent=g{a};extra_copy_number=0\n"
                  f"k1\tLiftoff\texon\t{a}\t{a + 399}\t.\t+\t.\tParent=t{a};extra_copy_number=0\n"
                  for a, c, i, flag in ((5001, 1.0, 0.99, ""), (6001, 0.41, 0.95, "partial_mapping=True"),
                                        (7001, 0.9, 0.42, "low_identity=True"))))
    annotation = read_annotation(tmp_path / "a.gff3")
    assert [t.id for t in annotation.transcripts] == ["k1_3", "GL7", "t5001"]
    assert [(s.position, s.strand) for s in annotation.unlabelled({"tss"})] == [
        (2, "+"), (799, "-"), (2000, "+"), (3061, "-"), (4002, "+"), (6000, "+"), (7000, "+")]


def test_lines_that_say_little_of_a_transcript_do_not_leave_it_out(tmp_path):
    """A complete mRNA of a gene NCBI marks partial (another of its mRNAs is), transcript lines on no
    strand, a repeat_region with its ends swapped, a GTF stop codon beyond the exons of a transcript
    that has them, or one on no strand or of no transcript: none of these leave a transcript out, nor
    stop the reading."""
    (tmp_path / "a.gff3").write_text(
        "##gff-version 3\nc\tRefSeq\tgene\t1\t5000\t.\t+\t.\tID=gene-X;partial=true;start_range=.,1\n"
        "c\tRefSeq\tmRNA\t1\t3000\t.\t+\t.\tID=rna-X1;Parent=gene-X;partial=true;start_range=.,1\n"
        "c\tRefSeq\texon\t1\t3000\t.\t+\t.\tParent=rna-X1\n"
        "c\tRefSeq\tmRNA\t1801\t5000\t.\t+\t.\tID=rna-X2;Parent=gene-X\n"
        "c\tRefSeq\texon\t1801\t5000\t.\t+\t.\tParent=rna-X2\n"
        "c\tx\tgene\t6001\t7000\t.\t.\t.\tID=g2\nc\tx\tmRNA\t6001\t7000\t.\t.\t.\tID=t2;Parent=g2\n"
        "c\tx\texon\t6001\t7000\t.\t+\t.\tParent=t2\nc\tx\trepeat_region\t500\t400\t.\t+\t.\tID=rep1\n")
    annotation = read_annotation(tmp_path / "a.gff3")
    assert [t.id for t in annotation.transcripts] == ["rna-X2", "t2"]
    assert [t.id for t in annotation.left_out] == ["rna-X1"]
    line = 'c\tt\t{}\t{}\t{}\t.\t+\t0\tgene_id "g1"; transcript_id "t1";\n'
    (tmp_path / "a.gtf").write_text(line.format("exon", 101, 400) + line.format("CDS", 201, 400)
                                    + line.format("stop_codon", 401, 403)
                                    + line.format("start_codon", 201, 203).replace("\t+\t", "\t.\t")
                                    + 'c\tt\tstop_codon\t401\t403\t.\t+\t0\tgene_id "g1";\n')
    assert [(t.id, t.exons) for t in read_annotation(tmp_path / "a.gtf").transcripts] == [("t1", ((100, 400),))]
    # A transcript known by its CDS alone may miss its stop codon there: left out.
    cds = 'c\tt\t{}\t{}\t{}\t.\t{}\t0\tgene_id "g{}";{}\n'
    (tmp_path / "b.gtf").write_text(
        cds.format("CDS", 201, 400, "+", 1, ' transcript_id "t1";')
        + cds.format("stop_codon", 401, 403, ".", 1, ' transcript_id "t1";')
        + cds.format("CDS", 1201, 1400, "+", 2, ' transcript_id "t2";') + cds.format("stop_codon", 1401, 1403, "+", 2, "")
        + cds.format("CDS", 2201, 2400, "+", 3, ' transcript_id "t3";')
        + cds.format("stop_codon", 2401, 2403, "+", 3, ' transcript_id "t3";'))
    cds_only = read_annotation(tmp_path / "b.gtf")
    assert [(t.id, t.exons) for t in cds_only.transcripts] == [("t3", ((2200, 2403),))]
    assert [t.id for t in cds_only.left_out] == ["t1", "t2"]

    (tmp_path / "utr.gff3").write_text("##gff-version 3\nc\tt\tfive_prime_UTR\t1\t50\t.\t+\t.\tParent=t1\n")
    with pytest.raises(UserError, match=r"no exon or CDS features with a parent\)$"):
        read_annotation(tmp_path / "utr.gff3")


def test_a_protein_coding_genes_transcript_without_a_cds_is_not_protein_coding(tmp_path):
    """WormBase's nc_primary_transcript and RefSeq's XR transcripts of protein-coding genes have no CDS:
    their gene's protein_coding is not theirs."""
    (tmp_path / "a.gff3").write_text(
        "##gff-version 3\nI\tWormBase\tgene\t101\t900\t.\t+\t.\tID=Gene:A;biotype=protein_coding\n"
        "I\tWormBase\tmRNA\t101\t900\t.\t+\t.\tID=Transcript:A.1;Parent=Gene:A\n"
        "I\tWormBase\texon\t101\t900\t.\t+\t.\tParent=Transcript:A.1\n"
        "I\tWormBase\tCDS\t201\t800\t.\t+\t0\tParent=Transcript:A.1\n"
        "I\tWormBase\tnc_primary_transcript\t101\t700\t.\t+\t.\tID=Transcript:A.2;Parent=Gene:A\n"
        "I\tWormBase\texon\t101\t700\t.\t+\t.\tParent=Transcript:A.2\n")
    annotation = read_annotation(tmp_path / "a.gff3")
    assert {t.id: set(t.biotypes) for t in annotation.transcripts} == {
        "Transcript:A.1": {"mRNA", "protein_coding"}, "Transcript:A.2": {"nc_primary_transcript"}}
    assert [t.id for t in read_annotation(tmp_path / "a.gff3", biotypes=["protein_coding"]).transcripts] == [
        "Transcript:A.1"]


def test_gff2_a_fasta_without_its_marker_spaced_parents_and_a_trailing_tab(tmp_path):
    (tmp_path / "a.gff").write_text('I\tcurated\texon\t101\t200\t.\t+\t.\tTranscript "B0019.1" ; Note "x"\n')
    with pytest.raises(UserError, match=r"no exon or CDS line with a transcript_id \(GFF2 is not read\)"):
        read_annotation(tmp_path / "a.gff")
    (tmp_path / "b.gff3").write_text("##gff-version 3\nc\tt\tmRNA\t101\t200\t.\t+\t.\tID=t1\n>c\nACGT\n")
    with pytest.raises(UserError, match="line 3 has 1 tab-separated fields, not 9 .*a FASTA section without its "
                                        "##FASTA line"):
        read_annotation(tmp_path / "b.gff3")
    (tmp_path / "c.gff3").write_text("##gff-version 3\nc\tt\tmRNA\t101\t900\t.\t+\t.\tID=t1\n"
                                     "c\tt\tmRNA\t101\t900\t.\t+\t.\tID=t2\n"
                                     "c\tt\texon\t101\t300\t.\t+\t.\tParent=t1, t2\n"
                                     "c\tt\texon\t701\t900\t.\t+\t.\tParent=t1, t2\n")
    assert [t.exons for t in read_annotation(tmp_path / "c.gff3").transcripts] == [((100, 300), (700, 900))] * 2
    # A tab after the last column (TSEBRA's GTF, MITOS's GFF3 write one) is no tenth column.
    (tmp_path / "d.gtf").write_text('c\tt\texon\t101\t300\t.\t+\t.\tgene_id "g"; transcript_id "t";\t\n'
                                    'c\tt\texon\t701\t900\t.\t+\t.\tgene_id "g"; transcript_id "t";\t\n')
    assert [t.exons for t in read_annotation(tmp_path / "d.gtf").transcripts] == [((100, 300), (700, 900))]


def test_an_escaped_comma_belongs_to_its_parent_id_and_a_plain_one_parts_two(tmp_path):
    (tmp_path / "a.gff3").write_text(
        "##gff-version 3\nc\tt\tmRNA\t101\t900\t.\t+\t.\tID=t%2C1\nc\tt\tmRNA\t101\t900\t.\t+\t.\tID=t2\n"
        "c\tt\texon\t101\t300\t.\t+\t.\tParent=t%2C1,t2\nc\tt\texon\t701\t900\t.\t+\t.\tParent=t%2C1,t2\n")
    annotation = read_annotation(tmp_path / "a.gff3")
    assert sorted(t.id for t in annotation.transcripts) == ["t,1", "t2"]
    assert {t.exons for t in annotation.transcripts} == {((100, 300), (700, 900))}


def test_gffread_transcripts_name_their_gene_by_gene_id(tmp_path):
    (tmp_path / "gffread.gff3").write_text(
        "##gff-version 3\nc\tt\tmRNA\t101\t900\t.\t+\t.\tID=t1;geneID=g1\nc\tt\texon\t101\t300\t.\t+\t.\tParent=t1\n"
        "c\tt\texon\t701\t900\t.\t+\t.\tParent=t1\nc\tt\tmRNA\t101\t900\t.\t+\t.\tID=t2;geneID=g1\n"
        "c\tt\texon\t101\t900\t.\t+\t.\tParent=t2\n")
    annotation = read_annotation(tmp_path / "gffread.gff3")
    assert {t.gene for t in annotation.transcripts} == {"g1"} and [g.id for g in annotation.genes()] == ["g1"]


def test_annotation_contigs_must_be_in_the_genome(data):
    annotation = read_annotation(CE_GFF)
    with Fasta(LAMBDA) as other:
        with pytest.raises(UserError, match="none of its 7 contig\\(s\\) is in the genome: I, II, III, IV, MtDNA, ... "
                                            "\\(it has gi\\|9626243\\|ref\\|NC_001416.1\\|\\)$"):
            annotation.keep_genome_contigs(other.lengths)
    # The commonest mismatch: UCSC's "chrI" against Ensembl's "I".
    with pytest.raises(UserError, match="one of them names contigs with 'chr' and the other without"):
        annotation.keep_genome_contigs({f"chr{name}": 10**6 for name in annotation.contigs})
    # RefSeq's accession with its version (phiX's GenBank record NC_001422.1) against one without.
    with pytest.raises(UserError, match="one of them gives accessions with their version \\(as NC_001422.1\\)"):
        read_annotation(PHIX).keep_genome_contigs({"NC_001422": 5386})
    with pytest.raises(UserError) as other_version:  # another version is another sequence: no hint
        read_annotation(PHIX).keep_genome_contigs({"NC_001422.2": 5386})
    assert "version" not in str(other_version.value)


def test_a_genome_of_some_contigs_takes_their_transcripts_and_says_which_it_lacks(tmp_path):
    with Fasta(CE) as genome:
        (tmp_path / "two.fa").write_text("".join(f">{c}\n{genome.fetch(c)}\n" for c in ("III", "I")))
        whole = run_cli("sites", "--kind", "tss", "--annotation", CE_GFF, "--genome", CE, "--out", tmp_path / "all.bed")
    part = run_cli("sites", "--kind", "tss", "--annotation", CE_GFF, "--genome", tmp_path / "two.fa",
                   "--out", tmp_path / "two.bed")
    assert whole.returncode == 0 and part.returncode == 0, whole.stderr + part.stderr
    assert "5 contig(s) not in" in part.stderr and "II, IV, MtDNA, V, X" in part.stderr
    kept = [line for line in (tmp_path / "all.bed").read_text().splitlines() if line.split("\t")[0] in ("I", "III")]
    assert sorted((tmp_path / "two.bed").read_text().splitlines()) == sorted(kept) and kept  # in two.fa's order


@pytest.mark.parametrize("command", [["sites", "--kind", "tss"], ["sites", "--kind", "genes"], ["tasks", "promoter"]])
def test_min_intron_where_no_splice_site_is_read_is_refused(tmp_path, command):
    """It changed nothing there: sites took it unsaid, as tasks did not."""
    for given in (50, 20):  # 20 is sites' default, told apart from none
        if given == 20 and command[0] == "tasks":
            continue
        result = run_cli(*command, "--annotation", CE_GFF, "--genome", CE, "--min-intron", given, "--out", tmp_path / "o")
        assert_user_error(result, "--min-intron decides which gaps between exons are introns", "has no splice sites")
        assert not (tmp_path / "o").exists()


def test_bam_reads_and_junctions_agree_with_the_annotation(data):
    sirv = data / "bam/sirv_ont"
    reference = Fasta(sirv / "SIRV_150601a.fasta.gz")
    with open_alignments(sirv / "pcs109_5k_spliced.bam") as bam:
        assert check_reference(bam, reference.lengths, reference.path) == list(bam.references)
        reads = list(aligned_reads(bam, "SIRV5"))
        assert reads and all(r.reference_name == "SIRV5" and not r.is_secondary for r in reads)
        found = junctions(bam, reference)
    annotated = {(i.contig, i.start, i.end, i.strand) for i in read_annotation(sirv / "SIRV_C_150601a.gtf.gz").introns()}
    support = sum(j.reads for j in found)
    matching = sum(j.reads for j in found if (j.contig, j.start, j.end, j.strand) in annotated)
    assert support > 4538  # at least one junction per spliced read
    assert matching / support > 0.85


def test_duplicates_qc_failures_and_secondary_copies_are_not_reads(data, tmp_path):
    """As samtools depth counts (and supplementary parts, whose bases the primary alignment holds): a
    read marked duplicate (0x400) is left out with the QC failures and secondary alignments."""
    sirv = data / "bam/sirv_ont"
    with open_alignments(sirv / "pcs109_5k_spliced.bam") as bam:
        header = bam.header
        primary = list(aligned_reads(bam, "SIRV5"))[:20]
    path = tmp_path / "flagged.bam"
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for read in primary:
            out.write(read)
            for flag in (0x400, 0x200, 0x100, 0x800):
                copy = pysam.AlignedSegment.fromstring(read.to_string(), header)
                copy.flag |= flag
                out.write(copy)
    pysam.sort("-o", str(tmp_path / "sorted.bam"), str(path))
    pysam.index(str(tmp_path / "sorted.bam"))
    with open_alignments(tmp_path / "sorted.bam") as bam:
        kept = list(aligned_reads(bam, "SIRV5"))
        introns = sum(j.reads for j in junctions(bam))
    assert sorted(r.to_string() for r in kept) == sorted(r.to_string() for r in primary)
    assert introns == sum(len(read_introns(r)) for r in primary)


def test_unindexed_bam_is_refused(data, tmp_path):
    bam = tmp_path / "ex1.bam"
    shutil.copy(data / "bam/ex1/ex1.bam", bam)
    with pytest.raises(UserError, match="no index"):
        open_alignments(bam)
    result = run_cli("junctions", "--bam", bam, "--out", tmp_path / "j.bed")
    assert_user_error(result, "samtools index")
    assert not (tmp_path / "j.bed").exists()
    # Sorted by name, it cannot be indexed as it is: the advice is to sort it first.
    pysam.sort("-n", "-o", str(tmp_path / "byname.bam"), str(bam))
    result = run_cli("junctions", "--bam", tmp_path / "byname.bam", "--out", tmp_path / "j.bed")
    assert_user_error(result, "not sorted by position (its header says SO:queryname)", "samtools sort -o")
    assert not (tmp_path / "j.bed").exists()
    # An index of no bytes, or of damaged ones, is one htslib cannot read: named, not called missing.
    for index, content in ((Path(f"{bam}.bai"), b""), (bam.with_suffix(".bai"), bytes(range(100)))):
        index.write_bytes(content)
        with pytest.raises(UserError, match=f"its index {index} cannot be read .*samtools index"):
            open_alignments(bam)
        index.unlink()


def test_bam_whose_contigs_are_not_in_the_reference_is_refused(data):
    with open_alignments(data / "bam/ex1/ex1.bam") as bam, Fasta(LAMBDA) as other:
        with pytest.raises(UserError, match="none of its contigs is in the reference"):
            check_reference(bam, other.lengths, other.path)


def test_contigs_of_a_bam_that_its_reference_lacks_are_left_out_with_a_warning(data, tmp_path, caplog):
    """A BAM aligned to a fuller assembly (decoys, alternative contigs) than the FASTA given: those
    contigs' alignments are left out, said once, as bedtools skips them; the others' junctions are
    the same. Asked for by name, such a contig is refused."""
    sirv = data / "bam/sirv_ont"
    with Fasta(sirv / "SIRV_150601a.fasta.gz") as genome:
        (tmp_path / "some.fa").write_text("".join(f">{c}\n{genome.fetch(c)}\n" for c in genome.lengths
                                                  if c not in ("SIRV3", "SIRV4")))
    bam = sirv / "pcs109_5k_spliced.bam"
    whole = run_cli("junctions", "--bam", bam, "--reference", sirv / "SIRV_150601a.fasta.gz", "--out", tmp_path / "a.bed")
    part = run_cli("junctions", "--bam", bam, "--reference", tmp_path / "some.fa", "--out", tmp_path / "p.bed")
    assert whole.returncode == 0 and part.returncode == 0, whole.stderr + part.stderr
    assert "2 contig(s) not in the reference" in part.stderr and "SIRV3, SIRV4" in part.stderr
    kept = [line for line in (tmp_path / "a.bed").read_text().splitlines() if line.split("\t")[0] not in ("SIRV3", "SIRV4")]
    assert (tmp_path / "p.bed").read_text().splitlines() == kept != []
    result = run_cli("junctions", "--bam", bam, "--reference", tmp_path / "some.fa", "--contigs", "SIRV3",
                     "--out", tmp_path / "x.bed")
    assert_user_error(result, "contig 'SIRV3' is not in the reference")
    # A scan checks the pair again for its junctions and its reads: said once all the same.
    with open_alignments(bam) as alignments, Fasta(tmp_path / "some.fa") as some, caplog.at_level("WARNING"):
        for _ in range(3):
            check_reference(alignments, some.lengths, some.path)
    assert sum("not in the reference" in r.getMessage() for r in caplog.records) == 1


def test_genes_span_their_transcripts():
    annotation = read_annotation(CE_GFF)
    genes = {g.id: g for g in annotation.genes()}
    assert "Gene:WBGene00022277" in genes
    for t in annotation.transcripts:
        gene = genes[t.gene]
        assert (gene.contig, gene.strand) == (t.contig, t.strand) and gene.start <= t.start < t.end <= gene.end
    assert len(genes) < len(annotation.transcripts)  # some genes have several isoforms


@pytest.fixture
def ex1_cram(data, tmp_path):
    """samtools' ex1 alignments as an indexed CRAM, with its plain reference beside it."""
    reference = tmp_path / "ex1.fa"
    shutil.copy(data / "bam/ex1/ex1.fa", reference)
    cram = tmp_path / "ex1.cram"
    pysam.view("-C", "-T", str(reference), "-o", str(cram), str(data / "bam/ex1/ex1.bam"), catch_stdout=False)
    pysam.index(str(cram))
    return cram, reference


def test_cram_reads_match_the_bam(data, ex1_cram):
    cram, reference = ex1_cram
    with open_alignments(data / "bam/ex1/ex1.bam") as bam, open_alignments(cram, reference) as cram_file:
        from_bam = [(r.query_name, r.reference_start, r.cigarstring, r.query_sequence) for r in aligned_reads(bam)]
        from_cram = [(r.query_name, r.reference_start, r.cigarstring, r.query_sequence) for r in aligned_reads(cram_file)]
    assert len(from_bam) > 3000 and from_cram == from_bam


def test_alignments_htslib_cannot_read_are_refused_in_words_a_user_can_act_on(data, ex1_cram, tmp_path):
    """A CRAM with a plain-gzip reference (htslib reads bgzip only), and alignments of a header without
    @SQ lines (unaligned reads): pysam's own words name its API's arguments."""
    cram, reference = ex1_cram
    gzipped = tmp_path / "ex1.fa.gz"
    gzipped.write_bytes(gzip.compress(reference.read_bytes()))
    with pytest.raises(UserError, match=r"needs its reference FASTA, plain or bgzip: .*ex1.fa.gz is plain gzip"):
        open_alignments(cram, gzipped)
    unaligned = tmp_path / "unaligned.bam"
    with pysam.AlignmentFile(str(unaligned), "wb", header={"HD": {"VN": "1.6"}}) as out:
        read = pysam.AlignedSegment(out.header)
        read.query_name, read.query_sequence, read.flag = "r1", "ACGT", 4
        out.write(read)
    with pytest.raises(UserError, match="its header has no @SQ lines: reads aligned to no reference"):
        open_alignments(unaligned)
    # A FASTA given for the BAM (swapped with --reference): htslib reads it as SAM without @SQ lines.
    for fasta in (reference, gzipped):
        with pytest.raises(UserError, match=rf"{fasta.name}: not a readable BAM/CRAM \(a FASTA file\)"):
            open_alignments(fasta)


def test_a_bam_rewritten_after_its_index_is_refused_naming_the_old_index(data, tmp_path):
    """An index points into the blocks of the file it was made from: rewritten since, reading fails,
    and the error says why where it can tell."""
    source = data / "bam/sirv_ont/pcs109_5k_spliced.bam"
    bam = tmp_path / "reads.bam"
    pysam.view("-b", "-o", str(bam), str(source), "SIRV3", "SIRV5", catch_stdout=False)
    pysam.index(str(bam))
    os.utime(tmp_path / "reads.bam.bai", (1000, 1000))
    pysam.view("-b", "-s", "0.5", "-o", str(bam), str(source), "SIRV3", "SIRV5", catch_stdout=False)
    result = run_cli("junctions", "--bam", bam, "--out", tmp_path / "j.bed")
    assert_user_error(result, "reads.bam: reading failed", "its index is older than it (index it again: samtools index)")
    assert not (tmp_path / "j.bed").exists()


@pytest.mark.parametrize("name", ["genome.fa", "genome.fa.gz"])
def test_a_nameless_record_is_refused_and_rna_is_read_as_dna(tmp_path, name):
    """faidx indexes a '>' with nothing after it (BED rows with no contig followed); a genome written
    in U (RNA) is read as DNA, as sequences given to predict are, by every command that reads it."""
    path = tmp_path / name
    text = ">\nACGTACGT\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    with pytest.raises(UserError, match="a record has an empty name"):
        Fasta(path)
    # A space after '>' ("> chrA", as some exporters write): named by its first word, as faidx and
    # Biopython name it, whether the file is plain (faidx) or gzip (read whole).
    text = "> chrA first\nACGTACGT\n>\tchrB\nACG\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    with Fasta(path) as fasta:
        assert fasta.lengths == {"chrA": 8, "chrB": 3} and fasta.fetch("chrB", 0, 3) == "ACG"
    text = ">r1\nACGUACGUNN\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    for index in tmp_path.glob(f"{name}.*"):
        index.unlink()
    with Fasta(path) as fasta:
        assert fasta.fetch("r1") == "ACGTACGTNN" and fasta.fetch("r1", 2, 5) == "GTA"
    # CRLF line ends with an empty line, where kseq would keep the CR, as plain text and as gzip (read whole).
    text = b">chrA\r\n\r\nACGT\r\nACGT\r\n>chrB\r\nAAAA\r\n"
    path.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    for index in tmp_path.glob(f"{name}.*"):
        index.unlink()
    with Fasta(path) as fasta:
        assert fasta.lengths == {"chrA": 8, "chrB": 4} and fasta.fetch("chrA") == "ACGTACGT"
    (tmp_path / "mac.fa").write_bytes(b">chrA\rACGTACGT\r>chrB\rAAAA\r")  # old Mac line ends
    with pytest.raises(UserError, match=r"record 'chrA' has no sequence; its lines end in CR alone"):
        Fasta(tmp_path / "mac.fa")
    (tmp_path / "latin1.fa").write_bytes(b">chr\xe9A\nACGT\n")  # a name in Latin-1, which is no binary file
    with pytest.raises(UserError, match=r"not a FASTA or GenBank file \(binary content, or text that is not UTF-8: "
                                        r"line 1, byte 0xe9 at column 5\)"):
        Fasta(tmp_path / "latin1.fa")
    # Past the first block the format sniffer decodes, where pysam reads it: compressed, no damage is blamed.
    later = b">chrA\n" + b"ACGT" * 20 * 300 + b"\n>chr\xe9B\nACGT\n"
    (tmp_path / "later.fa").write_bytes(later)
    (tmp_path / "later.fa.gz").write_bytes(gzip.compress(later))
    for name in ("later.fa", "later.fa.gz"):
        with pytest.raises(UserError, match=f"{name}: not a fasta file .*not UTF-8: line 3, byte 0xe9 at column 5"):
            list(read_records(tmp_path / name))


def test_duplicate_names_are_refused_when_validating(tmp_path):
    path = tmp_path / "dup.fa"
    path.write_text(">a\nACGT\n>a\nGGGG\n")
    with pytest.raises(UserError, match="appears more than once"):
        Fasta(path, validate=True)


@pytest.mark.parametrize("compressed", [False, True])
def test_duplicate_names_are_refused_when_indexing(tmp_path, compressed):
    """faidx would index the first 'a' and drop the second: every later scan would miss it."""
    text = ">a\nACGTACGT\nACGT\n>b\nTTTT\n>a\nGGGG\n"
    path = tmp_path / ("dup.fa.gz" if compressed else "dup.fa")
    if compressed:
        with pysam.BGZFile(str(path), "wb") as handle:
            handle.write(text.encode())
    else:
        path.write_text(text)
    with pytest.raises(UserError, match="'a' appears more than once"):
        Fasta(path)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no index left to trust next time


def test_a_gff3_without_exon_lines_has_its_exons_from_cds_and_utrs(tmp_path):
    """GFF3 allows a transcript written as CDS and UTR pieces alone: those are its exons, UTRs and
    all, not its CDS (whose ends are no TSS, and whose first and last introns would be lost)."""
    with gzip.open(CE_GFF, "rt") as handle:
        lines = [line for line in handle if line.startswith("#") or line.split("\t")[2] != "exon"]
    (tmp_path / "no_exons.gff3").write_text("".join(lines))
    full = {t.id: t for t in read_annotation(CE_GFF).transcripts}
    implied = read_annotation(tmp_path / "no_exons.gff3").transcripts
    assert len(implied) == 300  # those with CDS: the non-coding ones had only exon lines
    assert all(t.exons == full[t.id].exons for t in implied)
    assert sum(t.coding for t in implied) == 89  # no UTR line: their ends are the CDS ends, and said so


def test_gff_with_start_after_end_is_refused(tmp_path):
    path = tmp_path / "bad.gff3"
    path.write_text("chr1\tsrc\texon\t10\t5\t.\t+\t.\tParent=t1\n")
    with pytest.raises(UserError, match="line 1: start 10 is after end 5"):
        read_annotation(path)


def test_a_pseudogenes_ends_are_set_aside_and_its_introns_are_sites():
    """WormBase's pseudogenic transcripts (33 in the example) give no TSS or TTS, set aside (a processed
    pseudogene has no promoter; a disabled copy may have none), and their introns, the gene's they
    copy, stay sites: 237 splice sites only they give."""
    annotation = read_annotation(CE_GFF)
    pseudo = [t for t in annotation.transcripts if t.pseudogenic]
    assert len(pseudo) == 33 and {"pseudogenic_transcript", "pseudogenic_tRNA"} <= {b for t in pseudo for b in t.biotypes}
    y74 = next(t for t in pseudo if t.id == "Pseudogene:Y74C9A.9")
    assert (y74.tss, y74.tts) == (23599, 22881)
    for kind in ("tss", "tts"):
        assert not {t.site(kind) for t in pseudo} & set(annotation.sites({kind}))
        assert y74.site(kind) in annotation.unlabelled({kind})
    theirs = set(Annotation(CE_GFF, pseudo).splice_sites())
    others = set(Annotation(CE_GFF, [t for t in annotation.transcripts if not t.pseudogenic]).splice_sites())
    assert len(theirs - others) == 237 and theirs <= set(annotation.splice_sites())


def test_a_genes_cds_of_several_ids_are_proteins_only_where_they_overlap(tmp_path):
    """CDS lines of a gene with an ID each: overlapping, alternative proteins (a transcript each); apart,
    the lines of one spliced protein, as some writers give them (one transcript, with its introns);
    one line on no strand leaves the gene out whole."""
    def read(name, cds):
        (tmp_path / name).write_text("##gff-version 3\nc\tt\tgene\t101\t900\t.\t+\t.\tID=g1\n" + "".join(
            f"c\tt\tCDS\t{a}\t{b}\t.\t{strand}\t0\tID={i};Parent=g1\n" for i, a, b, strand in cds))
        return read_annotation(tmp_path / name)

    two = read("alternative.gff3", [("p1", 101, 900, "+"), ("p2", 236, 900, "+")])
    assert [(t.id, t.gene, t.exons) for t in two.transcripts] == [("p1", "g1", ((100, 900),)), ("p2", "g1", ((235, 900),))]
    spliced = read("spliced.gff3", [("c1", 101, 200, "+"), ("c2", 401, 500, "+"), ("c3", 801, 900, "+")])
    assert [(t.id, t.exons) for t in spliced.transcripts] == [("g1", ((100, 200), (400, 500), (800, 900)))]
    assert [s.position for s in spliced.tss()] == [100] and len(spliced.splice_sites()) == 4
    with pytest.raises(UserError, match="no transcripts found"):
        read("unstranded.gff3", [("p1", 101, 900, "+"), ("p2", 301, 500, "+"), ("p2", 601, 900, ".")])
    # Sorted by position (sort -k1,1 -k4,4n), "CDS" sorts before "gene": the gene line comes after its
    # CDS, and the inner protein's start was lost (8 E. coli TSSs, mrcB's among them).
    (tmp_path / "sorted.gff3").write_text("".join(sorted((tmp_path / "alternative.gff3").read_text().splitlines(True))))
    assert [(t.id, t.exons) for t in read_annotation(tmp_path / "sorted.gff3").transcripts] == [
        ("p1", ((100, 900),)), ("p2", ((235, 900),))]


def test_bacterial_cds_give_genes_and_no_introns_from_pseudogenes():
    annotation = read_annotation(GENOMES / "ecoli_k12_mg1655.gff.gz")
    genes = {g.id: g for g in annotation.genes()}
    assert (genes["gene-b0001"].start, genes["gene-b0001"].end) == (189, 255)  # thrL, from its CDS
    assert "gene-b0240" not in genes  # crl: a pseudogene, its CDS pieces marked pseudo=true
    # Set aside: its start may be a TSS, and a task draws no negative there.
    assert ("NC_000913.3", 257828, "+") in {(s.contig, s.position, s.strand) for s in annotation.unlabelled({"tss"})}
    # So are the ends of the 128 pseudogene lines no line names as Parent (yafU; 338 promoter negatives lay
    # within 1 kb of their 5' ends).
    assert {("NC_000913.3", 239083, "-"), ("NC_000913.3", 716596, "-")} <= \
        {(s.contig, s.position, s.strand) for s in annotation.unlabelled({"tss"})}
    assert ("NC_000913.3", 238745, "-") in {(s.contig, s.position, s.strand) for s in annotation.unlabelled({"tts"})}
    assert "gene-b0218" not in genes and len(annotation.left_out) == 145
    assert not annotation.introns()
    # A gene's CDS of two IDs are two proteins (as in GenBank): mrcB's PBP1Bgamma starts 135 bp into
    # PBP1Balpha; dnaX's gamma subunit ends 637 bp before tau, after a ribosomal slip.
    mrcb = [t for t in annotation.transcripts if t.gene == "gene-b0149"]
    assert [(t.id, t.start, t.end) for t in mrcb] == [("cds-NP_414691.1", 164729, 167264),
                                                      ("cds-YP_010051172.1", 164864, 167264)]
    tss, tts = ({(s.position, s.strand) for s in annotation.sites({kind})} for kind in ("tss", "tts"))
    assert {(164729, "+"), (164864, "+")} <= tss and {(494022, "+"), (493385, "+")} <= tts


def test_annotations_as_gene_finders_ucsc_and_ncbi_write_them(tmp_path, caplog):
    def read(name, lines):
        (tmp_path / name).write_text("".join("\t".join(map(str, line)) + "\n" for line in lines))
        return {(t.id, t.contig, t.strand, t.exons) for t in read_annotation(tmp_path / name).transcripts}

    # Prodigal and Prokka: each CDS alone, an ID and no Parent.
    assert read("prodigal.gff", [("##gff-version 3",),
                                 ("s1", "Prodigal", "CDS", 101, 400, ".", "+", 0, "ID=1_1;partial=00"),
                                 ("s1", "Prodigal", "CDS", 601, 900, ".", "-", 0, "ID=1_2;partial=00")]) == {
        ("1_1", "s1", "+", ((100, 400),)), ("1_2", "s1", "-", ((600, 900),))}
    with caplog.at_level("WARNING"):
        assert [s.position for s in read_annotation(tmp_path / "prodigal.gff").tss()] == [100, 899]
    assert "2 of 2 transcripts have CDS but no exons: their TSSs are their start codons" in caplog.text
    caplog.clear()
    # AUGUSTUS: bare ids on its gene and transcript lines, GTF below them.
    gtf = 'transcript_id "g1.t1"; gene_id "g1";'
    assert read("augustus.gtf", [("s1", "AUGUSTUS", "gene", 101, 900, 0.5, "+", ".", "g1"),
                                 ("s1", "AUGUSTUS", "transcript", 101, 900, 0.5, "+", ".", "g1.t1"),
                                 ("s1", "AUGUSTUS", "CDS", 101, 300, ".", "+", 0, gtf),
                                 ("s1", "AUGUSTUS", "CDS", 701, 900, ".", "+", 1, gtf)]) == {
        ("g1.t1", "s1", "+", ((100, 300), (700, 900)))}
    # UCSC-derived GTFs repeat a transcript id at each copy of a gene: two transcripts, not one with an
    # intron from one copy to the other; left out, with a warning.
    def transcript(id, start, end):
        attrs = f'gene_id "{id}"; transcript_id "{id}";'
        return [("chr1", "ucsc", "transcript", start, end, ".", "+", ".", attrs),
                ("chr1", "ucsc", "exon", start, start + 99, ".", "+", ".", attrs),
                ("chr1", "ucsc", "exon", end - 99, end, ".", "+", ".", attrs)]

    with caplog.at_level("WARNING"):
        assert read("ucsc.gtf", transcript("NR_1", 1001, 1300) + transcript("NR_1", 5001, 5300)
                    + transcript("NR_2", 8001, 8300)) == {("NR_2", "chr1", "+", ((8000, 8100), (8200, 8300)))}
    assert "1 transcript id(s) name exons at several places" in caplog.text and "NR_1" in caplog.text
    # Set aside copy by copy: their ends are unlabelled, and no intron from one to the other is.
    assert [(t.id, t.exons) for t in read_annotation(tmp_path / "ucsc.gtf").left_out] == [
        ("NR_1", ((1000, 1100), (1200, 1300))), ("NR_1", ((5000, 5100), (5200, 5300)))]
    # Exon lines alone (UCSC's Table Browser) of a gene on chrX and chrY: a copy on each, introns and all.
    exons = [line for line in transcript("NR_1", 1001, 1300) + transcript("NR_2", 8001, 8300) if line[2] == "exon"]
    assert read("par.gtf", exons + [("chrY",) + line[1:] for line in exons[:2]]) == {
        ("NR_2", "chr1", "+", ((8000, 8100), (8200, 8300)))}
    par = read_annotation(tmp_path / "par.gtf", min_intron=50)
    assert [(t.contig, t.exons) for t in par.left_out] == [("chr1", ((1000, 1100), (1200, 1300))),
                                                           ("chrY", ((1000, 1100), (1200, 1300)))]
    assert {(s.contig, s.position) for s in par.unlabelled({"donor"})} == {("chr1", 1100), ("chrY", 1100)}
    # Exon lines alone of two copies on one contig: only their exon numbers, starting again, tell them
    # from one transcript with a 3.7 kb intron.
    numbered = [line[:8] + (f'{line[8]} exon_number "{1 + i % 2}";',)
                for i, line in enumerate(transcript("NR_1", 1001, 1300) + transcript("NR_1", 5001, 5300)
                                         + transcript("NR_2", 8001, 8300)) if line[2] == "exon"]
    assert read("copies.gtf", numbered) == {("NR_2", "chr1", "+", ((8000, 8100), (8200, 8300)))}
    assert read("numbered.gtf", numbered[:2] + numbered[4:]) == {
        ("NR_1", "chr1", "+", ((1000, 1100), (1200, 1300))), ("NR_2", "chr1", "+", ((8000, 8100), (8200, 8300)))}
    # Numbered from 0, or 0 (or 1) on every exon, as some converters write: one transcript each.
    # A partial copy (two exons of three): numbers start again all the same.
    three = [("chr1", "ucsc", "exon", a, a + 99, ".", "+", ".", f'gene_id "NR_3"; transcript_id "NR_3"; exon_number "{n}";')
             for a, n in ((101, 1), (301, 2), (501, 3), (10001, 1), (10201, 2))]
    assert read("partial.gtf", three + numbered[4:]) == {("NR_2", "chr1", "+", ((8000, 8100), (8200, 8300)))}
    exons = [line for line in transcript("NR_1", 1001, 1300) + transcript("NR_2", 8001, 8300) if line[2] == "exon"]
    for numbers in ("0", "1"), ("0", "0"), ("1", "1"):
        renumbered = [line[:8] + (f'{line[8]} exon_number "{numbers[i % 2]}";',) for i, line in enumerate(exons)]
        assert read("numbered.gtf", renumbered) == {("NR_1", "chr1", "+", ((1000, 1100), (1200, 1300))),
                                                    ("NR_2", "chr1", "+", ((8000, 8100), (8200, 8300)))}
    copies = read_annotation(tmp_path / "copies.gtf", min_intron=50)
    assert [s.position for s in copies.splice_sites()] == [8100, 8199]
    assert {1100, 1199, 1300, 4999, 5100, 5199} <= {s.position for s in copies.unlabelled({"donor", "acceptor"})}
    # In GFF3 one ID on several lines is one discontinuous feature, and an exon names its transcript;
    # but mRNA lines of one ID apart are two transcripts (funannotate gives two predictors' models one
    # ID; NCBI writes a trans-spliced mRNA so, with no intron between its lines), as are those of two
    # sources; their sites are unlabelled. A line whose ends are not read (a gene's) tells nothing.
    caplog.clear()
    with caplog.at_level("WARNING"):
        read_pieces = read("pieces.gff3", [
            ("##gff-version 3",),
            ("c", "ab", "mRNA", 100, 500, ".", "+", ".", "ID=m1"), ("c", "ab", "mRNA", 400, 900, ".", "+", ".", "ID=m1"),
            ("c", "ab", "exon", 100, 200, ".", "+", ".", "Parent=m1"), ("c", "ab", "exon", 500, 900, ".", "+", ".", "Parent=m1"),
            ("c", "ab", "exon", 1000, 1100, ".", "+", ".", "ID=orphan"),
            ("c", "augustus", "mRNA", 2001, 2400, ".", "+", ".", "ID=g8.t1"),
            ("c", "augustus", "exon", 2001, 2100, ".", "+", ".", "Parent=g8.t1"),
            ("c", "augustus", "exon", 2301, 2400, ".", "+", ".", "Parent=g8.t1"),
            ("c", "glimmer", "mRNA", 3001, 3400, ".", "+", ".", "ID=g8.t1"),
            ("c", "glimmer", "exon", 3001, 3400, ".", "+", ".", "Parent=g8.t1"),
            ("c", "augustus", "mRNA", 5001, 5400, ".", "+", ".", "ID=g1.t1"),
            ("c", "augustus", "exon", 5001, 5400, ".", "+", ".", "Parent=g1.t1"),
            ("c", "glimmer", "mRNA", 5101, 5400, ".", "+", ".", "ID=g1.t1"),
            ("c", "glimmer", "exon", 5101, 5400, ".", "+", ".", "Parent=g1.t1"),
            ("c", "ab", "gene", 6001, 6400, ".", "+", ".", "ID=g9"), ("c", "ab", "gene", 7001, 7400, ".", "+", ".", "ID=g9"),
            ("c", "ab", "ncRNA", 6001, 6400, ".", "+", ".", "ID=n9;Parent=g9"),
            ("c", "ab", "exon", 6001, 6400, ".", "+", ".", "Parent=n9")])
    assert read_pieces == {("m1", "c", "+", ((99, 200), (499, 900))), ("n9", "c", "+", ((6000, 6400),))}
    assert "2 transcript id(s) name exons at several places" in caplog.text and "g8.t1, g1.t1" in caplog.text
    left = read_annotation(tmp_path / "pieces.gff3").left_out
    assert [(t.id, t.exons) for t in left] == [("g8.t1", ((2000, 2100), (2300, 2400))), ("g8.t1", ((3000, 3400),)),
                                               ("g1.t1", ((5000, 5400),))]  # copy by copy, as their lines place them
    # NCBI: a gene across the origin of a circular genome ends past the sequence's length; left out.
    ncbi = tmp_path / "circular.gff"
    ncbi.write_text("##gff-version 3\n"
                    "NC_1\tRefSeq\tregion\t1\t5000\t.\t+\t.\tID=NC_1:1..5000;Is_circular=true\n"
                    "NC_1\tRefSeq\tCDS\t4901\t5100\t.\t+\t0\tID=cds-ori;Parent=gene-ori\n"
                    "NC_1\tRefSeq\tCDS\t4951\t5000\t.\t-\t0\tID=cds-ori2;Parent=gene-ori2\n"
                    "NC_1\tRefSeq\tCDS\t1\t60\t.\t-\t0\tID=cds-ori2;Parent=gene-ori2\n"
                    "NC_1\tRefSeq\tCDS\t101\t400\t.\t+\t0\tID=cds-a;Parent=gene-a\n")
    with caplog.at_level(logging.WARNING):
        annotation = read_annotation(ncbi)
    annotation.keep_genome_contigs({"NC_1": 5000})
    assert [t.id for t in annotation.transcripts] == ["gene-a"]
    assert "2 transcript(s) across the origin of a circular sequence left out" in caplog.text  # as -q still shows
    # Their starts and ends are real: set aside, on the sequence's two sides of the origin.
    assert {(s.kind, s.position, s.strand) for s in annotation.unlabelled({"tss", "tts"})} >= {
        ("tss", 4900, "+"), ("tts", 99, "+"), ("tss", 59, "-"), ("tts", 4950, "-")}
    # Without the region line (a GTF has none), two pieces at both ends of the contig: across the
    # origin too, not one transcript with a 4.9 kb intron spanning the contig.
    caplog.clear()
    (tmp_path / "circular.gtf").write_text("".join(
        f'NC_1\tRefSeq\tCDS\t{a}\t{b}\t.\t{strand}\t0\tgene_id "{gene}"; transcript_id "{gene}";\n'
        for a, b, strand, gene in ((4951, 5000, "-", "ori2"), (1, 60, "-", "ori2"), (101, 400, "+", "a"))))
    with caplog.at_level(logging.WARNING):
        annotation = read_annotation(tmp_path / "circular.gtf")
        annotation.keep_genome_contigs({"NC_1": 5000})
    assert [t.id for t in annotation.transcripts] == ["a"] and not annotation.introns()
    assert "1 transcript(s) with exons at both ends of their contig (across the origin" in caplog.text
    assert {(s.kind, s.position, s.strand) for s in annotation.unlabelled({"tss", "tts"})} >= {
        ("tss", 59, "-"), ("tts", 4950, "-")}
    # On a longer contig the same pieces are one transcript with an intron.
    annotation = read_annotation(tmp_path / "circular.gtf")
    annotation.keep_genome_contigs({"NC_1": 6000})
    assert [(i.start, i.end) for i in annotation.introns()] == [(60, 4950)]
    # A contig whose shape the annotation states (a GFF3's region line, a GenBank record) and that is
    # not circular: a transcript at both of its ends is one (a contig cut to its gene).
    (tmp_path / "linear.gff3").write_text(
        "##gff-version 3\nNC_1\tx\tregion\t1\t5000\t.\t+\t.\tID=NC_1:1..5000\n"
        "NC_1\tx\tCDS\t4951\t5000\t.\t-\t0\tID=c1;Parent=g1\nNC_1\tx\tCDS\t1\t60\t.\t-\t0\tID=c1;Parent=g1\n")
    write_genbank(tmp_path / "linear.gb", 5000, [("CDS", [(4950, 5000, -1), (0, 60, -1)], {"locus_tag": ["g1"]})])
    (tmp_path / "ensembl.gff3").write_text((tmp_path / "linear.gff3").read_text().replace(
        "\tregion\t1\t5000\t.\t+\t.\tID=NC_1:1..5000", "\tchromosome\t1\t5000\t.\t.\t.\tID=chromosome:NC_1"))
    for name, contig in (("linear.gff3", "NC_1"), ("ensembl.gff3", "NC_1"), ("linear.gb", "c")):
        annotation = read_annotation(tmp_path / name)
        annotation.keep_genome_contigs({contig: 5000})
        assert [(i.start, i.end, i.strand) for i in annotation.introns()] == [(60, 4950, "-")], name
    # Ensembl marks its circular chromosomes (MT) as NCBI its regions.
    (tmp_path / "ensembl_mt.gff3").write_text((tmp_path / "ensembl.gff3").read_text().replace(
        "ID=chromosome:NC_1", "ID=chromosome:NC_1;Is_circular=true") + "NC_1\tx\tCDS\t1001\t1300\t.\t+\t0\tID=c2;Parent=g2\n")
    annotation = read_annotation(tmp_path / "ensembl_mt.gff3")
    annotation.keep_genome_contigs({"NC_1": 5000})
    assert [t.id for t in annotation.transcripts] == ["g2"] and not annotation.introns()


def write_genbank(path, length: int, features) -> None:
    """A linear GenBank record c of `length` bp with features (type, [(start, end, strand), ...], qualifiers)."""
    from Bio.Seq import Seq
    from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord

    def location(parts):
        located = [FeatureLocation(*part) for part in parts]
        return CompoundLocation(located) if len(located) > 1 else located[0]

    record = SeqRecord(Seq("ACGT" * (length // 4)), id="c", name="c", annotations={"molecule_type": "DNA",
                                                                                   "topology": "linear"})
    record.features = [SeqFeature(location(parts), type=kind, qualifiers=qualifiers) for kind, parts, qualifiers in features]
    SeqIO.write(record, path, "genbank")


def test_a_trans_spliced_protein_is_no_intron_and_ucsc_header_lines_are_skipped(tmp_path, caplog):
    """NCBI marks a chloroplast's rps12 exception=trans-splicing: its CDS lines of one ID, on one
    strand 9 kb apart, were joined with an intron between them. UCSC's track and browser lines start
    a GTF as bedtools reads one."""
    (tmp_path / "chloroplast.gff3").write_text(
        "##gff-version 3\n"
        "c\tRefSeq\tgene\t3001\t3100\t.\t+\t.\tID=gene-rps12;exception=trans-splicing\n"
        "c\tRefSeq\tgene\t12001\t12100\t.\t+\t.\tID=gene-rps12;exception=trans-splicing\n"
        "c\tRefSeq\tCDS\t3001\t3100\t.\t+\t0\tID=cds-rps12;Parent=gene-rps12;exception=trans-splicing%2C RNA editing\n"
        "c\tRefSeq\tCDS\t12001\t12100\t.\t+\t2\tID=cds-rps12;Parent=gene-rps12;exception=trans-splicing\n"
        "c\tRefSeq\tgene\t20001\t20300\t.\t+\t.\tID=gene-ok\n"
        "c\tRefSeq\tCDS\t20001\t20300\t.\t+\t0\tID=cds-ok;Parent=gene-ok\n")
    with caplog.at_level("WARNING"):
        annotation = read_annotation(tmp_path / "chloroplast.gff3")
    assert [t.id for t in annotation.transcripts] == ["gene-ok"] and not annotation.introns()
    assert "or trans-spliced), left out: gene-rps12" in caplog.text
    # Set aside: its start, and where its parts join, labelled neither way.
    assert {(s.kind, s.position) for s in annotation.unlabelled({"tss", "donor", "acceptor"})} == {
        ("tss", 3000), ("donor", 3100), ("acceptor", 11999)}
    # GTF repeats a key for each value; GenBank says it in a qualifier.
    (tmp_path / "ts.gtf").write_text("".join(
        f'c\tx\texon\t{a}\t{b}\t.\t+\t.\tgene_id "g"; transcript_id "t"; exception "trans-splicing"; '
        f'exception "RNA editing";\n' for a, b in ((3001, 3100), (12001, 12100))))
    write_genbank(tmp_path / "ts.gb", 21000, [
        ("CDS", [(3000, 3100, 1), (12000, 12100, 1)], {"locus_tag": ["rps12"], "exception": ["trans-splicing"]}),
        ("CDS", [(14000, 14100, 1), (16000, 16100, 1)], {"locus_tag": ["rps7"], "trans_splicing": [""]}),
        ("CDS", [(20000, 20300, 1)], {"locus_tag": ["ok"]})])
    # INSDC's flag, as GenBank's flatfiles write it (Biopython writes it with an empty value)
    (tmp_path / "ts.gb").write_text((tmp_path / "ts.gb").read_text().replace('/trans_splicing=""', "/trans_splicing"))
    assert "/trans_splicing\n" in (tmp_path / "ts.gb").read_text()
    for name in ("ts.gtf", "ts.gb"):
        with open(tmp_path / name, "a") as handle:  # a transcript kept beside it
            if name == "ts.gtf":
                handle.write('c\tx\texon\t20001\t20300\t.\t+\t.\tgene_id "ok"; transcript_id "ok";\n')
        annotation = read_annotation(tmp_path / name)
        assert [t.id for t in annotation.transcripts] == ["ok"] and not annotation.introns(), name
    attrs = 'gene_id "g"; transcript_id "t";'
    (tmp_path / "ucsc.gtf").write_text('track name=genes description="from the Table Browser"\n'
                                       "browser position chr1:1-1000\n"
                                       f"chr1\tucsc\texon\t101\t200\t.\t+\t.\t{attrs}\n"
                                       f"chr1\tucsc\texon\t501\t600\t.\t+\t.\t{attrs}\n")
    assert [(i.start, i.end) for i in read_annotation(tmp_path / "ucsc.gtf").introns()] == [(200, 500)]


def test_transcripts_a_cut_out_annotation_left_incomplete_give_no_sites(tmp_path, caplog):
    # The bundled example is a cut-out of WormBase: F56C11.1.2's exons stayed, its mRNA line and its
    # first exons did not, so its last exon's end at I:150,688 is no TSS.
    with caplog.at_level("WARNING"):
        annotation = read_annotation(GENOMES / "ce1pct.gff3.gz")
    assert "7 transcript(s) whose exons may be incomplete" in caplog.text and "F56C11.1.2" in caplog.text
    assert not [t for t in annotation.transcripts if t.id in ("Transcript:F56C11.1.2", "Transcript:T17A3.2.1")]
    assert ("I", "-", 150687) not in {(s.contig, s.strand, s.position) for s in annotation.tss()}
    caplog.clear()

    def read(lines):
        (tmp_path / "a.gff3").write_text("".join("\t".join(map(str, line)) + "\n" for line in lines))
        with caplog.at_level("WARNING"):
            return {t.id for t in read_annotation(tmp_path / "a.gff3").transcripts}

    whole = [("c", ".", "mRNA", 101, 900, ".", "+", ".", "ID=m1"), ("c", ".", "exon", 101, 300, ".", "+", ".", "Parent=m1"),
             ("c", ".", "exon", 701, 900, ".", "+", ".", "Parent=m1"), ("c", ".", "CDS", 201, 300, ".", "+", 0, "Parent=m1"),
             ("c", ".", "CDS", 701, 800, ".", "+", 2, "Parent=m1")]
    # A CDS past the exons, and exons whose transcript no line defines: both left out.
    past = [("c", ".", "mRNA", 2001, 2900, ".", "+", ".", "ID=m2"), ("c", ".", "exon", 2001, 2300, ".", "+", ".", "Parent=m2"),
            ("c", ".", "CDS", 2201, 2600, ".", "+", 0, "Parent=m2")]
    orphan = [("c", ".", "exon", 4001, 4300, ".", "-", ".", "Parent=m3")]
    assert read(whole + past + orphan) == {"m1"}
    assert "2 transcript(s) whose exons may be incomplete" in caplog.text and "m2, m3" in caplog.text
    # A GFF3 of exon lines alone, none of whose Parents a line defines, is read as it is.
    caplog.clear()
    assert read([line for line in whole + orphan if line[2] == "exon"]) == {"m1", "m3"} and not caplog.text
    # A transcript without a strand has no sites: left out, and said so; its ends and introns are real on
    # one strand or the other (StringTie's single-exon transcripts have none): unlabelled on both.
    unstranded = [("c", ".", "mRNA", 6001, 6900, ".", ".", ".", "ID=m4"), ("c", ".", "exon", 6001, 6300, ".", ".", ".", "Parent=m4"),
                  ("c", ".", "exon", 6601, 6900, ".", ".", ".", "Parent=m4")]
    assert read(whole + unstranded) == {"m1"} and "2 exon, CDS, UTR or intron line(s) with no strand + or -" in caplog.text
    unlabelled = read_annotation(tmp_path / "a.gff3").unlabelled({"tss", "tts", "donor"})
    assert {(s.kind, s.position, s.strand) for s in unlabelled} == {
        ("tss", 6000, "+"), ("donor", 6300, "+"), ("tts", 6899, "+"),
        ("tts", 6000, "-"), ("donor", 6599, "-"), ("tss", 6899, "-")}


def test_genbank_mrna_without_a_gene_owns_the_cds_inside_it_and_one_across_the_origin_none(tmp_path, caplog):
    from Bio.Seq import Seq
    from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord
    from Bio import SeqIO

    record = SeqRecord(Seq("ACGT" * 1500), id="c1", name="c1", annotations={"molecule_type": "DNA",
                                                                            "topology": "circular"})
    origin = CompoundLocation([FeatureLocation(5500, 6000, 1), FeatureLocation(0, 300, 1)])
    record.features = [SeqFeature(origin, type="mRNA"), SeqFeature(FeatureLocation(399, 900, 1), type="mRNA"),
                       *(SeqFeature(FeatureLocation(a, b, strand), type="CDS", qualifiers={"locus_tag": [tag]})
                         for a, b, strand, tag in ((499, 800, 1, "inside"), (1000, 1300, 1, "b"),
                                                   (2000, 2300, 1, "c"), (3000, 3300, -1, "d")))]
    SeqIO.write(record, tmp_path / "c1.gbk", "genbank")
    with caplog.at_level(logging.WARNING):
        annotation = read_annotation(tmp_path / "c1.gbk")
    assert "1 feature(s) joined out of order (across the origin of a circular sequence" in caplog.text
    assert [(t.start, t.end, t.strand) for t in annotation.transcripts] == [
        (399, 900, "+"), (1000, 1300, "+"), (2000, 2300, "+"), (3000, 3300, "-")]
    # Its start and end are real: no task labels them, nor draws them as negatives.
    assert [s.position for s in annotation.unlabelled({"tss"})] == [0, 5500]
    assert [s.position for s in annotation.unlabelled({"tts"})] == [299, 5999]


def test_genbank_mrna_owns_its_gene_s_cds_inside_it_not_a_namesake_s_elsewhere(tmp_path):
    """Bacteria and transposons repeat gene names (insA): the CDS of an insA copy without an mRNA is a
    transcript of its own, though another copy's mRNA names the same gene."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord

    record = SeqRecord(Seq("ACGT" * 1500), id="c1", name="c1", annotations={"molecule_type": "DNA"})
    features = [("mRNA", 100, 900, {"gene": "insA"}), ("CDS", 200, 800, {"gene": "insA"}),
                ("CDS", 3000, 3300, {"gene": "insA"}),
                # A partial model: its CDS runs past its mRNA, its own still.
                ("mRNA", 4000, 4500, {"gene": "g"}), ("CDS", 3950, 4400, {"gene": "g"}),
                # Qualifiers one of them lacks: its own, as no qualifier disagrees.
                ("mRNA", 5000, 5900, {"gene": "abc"}), ("CDS", 5100, 5800, {"gene": "abc", "locus_tag": "X1"}),
                ("mRNA", 6000, 6900, {"locus_tag": "L1"}), ("CDS", 6100, 6800, {"gene": "g1"}),
                # One locus_tag against another: two genes of one name, one inside the other's span.
                ("mRNA", 7000, 7900, {"gene": "insA", "locus_tag": "b1"}),
                ("CDS", 7100, 7800, {"gene": "insA", "locus_tag": "b2"})]
    record.features = [SeqFeature(FeatureLocation(a, b, 1), type=kind, qualifiers={k: [v] for k, v in names.items()})
                       for kind, a, b, names in features]
    SeqIO.write(record, tmp_path / "c1.gbk", "genbank")
    assert [t.start for t in read_annotation(tmp_path / "c1.gbk").transcripts] == [100, 3000, 4000, 5000, 6000,
                                                                                   7000, 7100]


def test_genbank_rna_features_are_transcripts_as_a_gff3_s_exon_parents_are(tmp_path):
    """A bacterium's tRNA, rRNA and ncRNA genes (E. coli's RefSeq GFF3 gives 207 such transcripts) are
    transcripts in its GenBank form too, --biotype choosing them by type or ncRNA_class; the ends of a
    mature tRNA, rRNA or miRNA, or of a miRNA's precursor (the hairpin), are no TSS or TTS: cut from
    longer transcripts, whose ends lie near, they are set aside."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import CompoundLocation, FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord

    record = SeqRecord(Seq("ACGT" * 1500), id="c1.1", name="c1", annotations={"molecule_type": "DNA"})
    features = [("gene", 100, 400, 1, {}), ("CDS", 100, 400, 1, {}), ("gene", 1000, 1076, -1, {}),
                ("tRNA", 1000, 1076, -1, {}), ("rRNA", 2000, 3500, 1, {}),
                ("ncRNA", 4000, 4100, 1, {"ncRNA_class": ["antisense_RNA"]}),
                ("precursor_RNA", 5000, 5300, 1, {}), ("ncRNA", 5100, 5122, 1, {"ncRNA_class": ["miRNA"]})]
    record.features = [SeqFeature(FeatureLocation(a, b, strand), type=kind, qualifiers={"locus_tag": [f"t{a}"], **more})
                       for kind, a, b, strand, more in features]
    # A pseudogene's mRNA is a transcript of biotype pseudogene, as a GFF3's pseudogenic_transcript:
    # its introns are sites, its ends set aside.
    record.features.append(SeqFeature(CompoundLocation([FeatureLocation(5500, 5600, 1), FeatureLocation(5700, 5800, 1)]),
                                      type="mRNA", qualifiers={"locus_tag": ["t5500"], "pseudo": [""]}))
    SeqIO.write(record, tmp_path / "c1.gbk", "genbank")
    annotation = read_annotation(tmp_path / "c1.gbk")
    assert [(t.start, sorted(t.biotypes)) for t in annotation.transcripts] == [
        (100, ["CDS", "protein_coding"]), (1000, ["tRNA"]), (2000, ["rRNA"]), (4000, ["antisense_RNA", "ncRNA"]),
        (5000, ["precursor_RNA"]), (5100, ["miRNA", "ncRNA"]), (5500, ["mRNA", "pseudogene"])]
    assert [s.position for s in annotation.tss()] == [100, 4000]
    assert [s.position for s in annotation.unlabelled({"tss", "tts"})] == [1000, 1075, 2000, 3499, 5000, 5100, 5121,
                                                                          5299, 5500, 5799]
    assert [s.position for s in annotation.splice_sites()] == [5600, 5699]
    assert [t.id for t in read_annotation(tmp_path / "c1.gbk", biotypes=["tRNA", "rRNA"]).transcripts] == ["t1000", "t2000"]
    assert [t.id for t in read_annotation(tmp_path / "c1.gbk", biotypes=["protein_coding"]).transcripts] == ["t100"]


def test_genbank_features_that_give_no_transcript_or_no_ends_and_records_that_are_no_genome(tmp_path, caplog):
    """Parts in another record, order() (no splice), mixed strands: no transcript, each counted. An end
    marked < or > lies past what the record holds: incomplete, its sites unlabelled. Genes of one name
    (insA) are told apart by locus_tag. A file cut short, a protein record and an empty record are
    refused where Biopython only warns or says nothing."""
    from Bio import SeqIO
    from Bio.Seq import Seq
    from Bio.SeqFeature import AfterPosition, BeforePosition, CompoundLocation, FeatureLocation, SeqFeature
    from Bio.SeqRecord import SeqRecord

    def cds(location, tag, gene="insA"):
        return SeqFeature(location, type="CDS", qualifiers={"locus_tag": [tag], "gene": [gene]})

    record = SeqRecord(Seq("ACGT" * 1500), id="c1.1", name="c1", annotations={"molecule_type": "DNA"})
    record.features = [
        cds(FeatureLocation(100, 400, 1), "b1"), cds(FeatureLocation(3000, 3300, 1), "b2"),
        cds(CompoundLocation([FeatureLocation(500, 600, 1), FeatureLocation(100, 200, 1, ref="U1.1")]), "remote"),
        cds(CompoundLocation([FeatureLocation(700, 800, 1), FeatureLocation(900, 1000, 1)], operator="order"), "o"),
        cds(CompoundLocation([FeatureLocation(1100, 1200, 1), FeatureLocation(1300, 1400, -1)]), "mixed"),
        cds(FeatureLocation(BeforePosition(0), 1500, 1), "fuzzy5"),
        cds(FeatureLocation(1600, AfterPosition(1800), -1), "fuzzy5minus"),
        SeqFeature(FeatureLocation(2000, 2500, -1), type="CDS", qualifiers={"locus_tag": ["p"], "pseudo": [""]}),
        SeqFeature(FeatureLocation(4000, 4500, 1), type="CDS", qualifiers={"pseudogene": ["unprocessed"]}),
    ]
    SeqIO.write(record, tmp_path / "c1.gbk", "genbank")
    with caplog.at_level(logging.WARNING):
        annotation = read_annotation(tmp_path / "c1.gbk")
    assert [(t.id, t.gene) for t in annotation.transcripts] == [("b1", "b1"), ("b2", "b2")]
    # What the features left out hold here is set aside, their sites unlabelled: the local part of
    # "remote", the parts of "o" and each strand's part of "mixed", the pseudogenes' ends.
    assert [(s.position, s.strand) for s in annotation.unlabelled({"tss"})] == [
        (0, "+"), (500, "+"), (700, "+"), (1100, "+"), (1399, "-"), (1799, "-"), (2499, "-"), (4000, "+")]
    assert [s.position for s in annotation.unlabelled({"donor"})] == [800]
    for said in ("1 feature(s) with parts in other records", "1 feature(s) of order() rather than join()",
                 "1 feature(s) on no single strand", "2 transcript(s) with an end marked < or >"):
        assert said in caplog.text, said
    text = (tmp_path / "c1.gbk").read_text()
    (tmp_path / "cut.gbk").write_text(text[:text.index("ORIGIN") + 200])
    (tmp_path / "protein.gbk").write_text(text.replace(" bp    DNA", " aa       ").replace("6000 bp", "6000 aa"))
    record.seq, record.features = Seq(""), []
    SeqIO.write(record, tmp_path / "empty.gbk", "genbank")
    for name, said in (("cut.gbk", "Expected sequence length 6000, found"), ("protein.gbk", "is a protein record"),
                       ("empty.gbk", "record 'c1.1' has no sequence")):
        with pytest.raises(UserError, match=said):
            list(read_records(tmp_path / name))
        with pytest.raises(UserError, match=said):
            read_annotation(tmp_path / name)


def test_cram_without_a_usable_reference_is_refused(ex1_cram, tmp_path):
    cram, reference = ex1_cram
    with pytest.raises(UserError, match="CRAM needs its reference"):
        open_alignments(cram)
    gzipped = tmp_path / "ex1.fa.gz"
    with open(reference, "rb") as src, gzip.open(gzipped, "wb") as dst:
        shutil.copyfileobj(src, dst)
    result = run_cli("junctions", "--bam", cram, "--reference", gzipped, "--out", tmp_path / "j.bed")
    assert_user_error(result, "CRAM needs its reference")
    assert not (tmp_path / "j.bed").exists()


def test_damaged_annotations_are_one_line_errors(tmp_path):
    """A gzip cut short or with a flipped byte, a GenBank location Biopython cannot read, and a byte
    that is not UTF-8."""
    genbank = GENOMES / "phiX174_NC_001422.gbk.gz"
    gff3 = GENOMES / "ce1pct.gff3.gz"
    data = genbank.read_bytes()
    (tmp_path / "cut.gbk.gz").write_bytes(data[: len(data) // 2])
    flipped = bytearray(gff3.read_bytes())
    flipped[1000] ^= 0xFF
    (tmp_path / "flipped.gff3.gz").write_bytes(bytes(flipped))
    with gzip.open(genbank, "rt") as handle:
        (tmp_path / "bad.gbk").write_text(handle.read().replace("51..221", "51..abc", 1))
    # One Latin-1 letter in a note, deep in the file: the line is named, to be mended.
    lines = gzip.decompress(gff3.read_bytes()).split(b"\n")
    lines[2999] += b";Note=caf\xe9"
    (tmp_path / "latin1.gff3.gz").write_bytes(gzip.compress(b"\n".join(lines)))
    for name, words in (("cut.gbk.gz", "truncated or corrupt"), ("flipped.gff3.gz", "truncated or corrupt"),
                        ("bad.gbk", "the location of CDS NP_040706.1 cannot be read"),
                        ("latin1.gff3.gz", "not UTF-8: line 3000, byte 0xe9 at column")):
        with pytest.raises(UserError, match=f"{name}: .*{words}"):
            read_annotation(tmp_path / name)


def test_a_record_without_bases_and_a_byte_order_mark(tmp_path):
    """faidx drops a record without bases (its contig would vanish): named as download names it. A
    byte-order mark before the first header is no part of it."""
    empty = tmp_path / "empty.fa"
    empty.write_text(">a\n>b\nACGTACGT\n")
    with pytest.raises(UserError, match="empty.fa: record 'a' has no sequence"):
        Fasta(empty)
    marked = tmp_path / "marked.fa"
    marked.write_bytes(b"\xef\xbb\xbf>c1\nACGTACGTAA\n")
    write_indexed_fasta(marked, tmp_path / "out.fa.gz")
    with Fasta(tmp_path / "out.fa.gz") as fasta:
        assert fasta.lengths == {"c1": 10}


def test_junction_strands_of_unknown_tags_and_skips_that_are_no_introns(tmp_path):
    """XS:A:? and ts:A:? say no strand (the read joins the tagged reads of its intron, not a junction
    of strand '?' or the opposite one); adjacent skips are one intron, as in CRAM; and a 0N skip, or
    one without an aligned base on a side (10M100N, 5S100N10M), is no intron."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "c1", "LN": 1000}]}
    path = tmp_path / "reads.bam"
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i, (cigar, tag, strand) in enumerate([
                ("10M100N10M", "XS", "+"), ("10M100N10M", "XS", "?"), ("10M100N10M", "ts", "?"),
                ("10M50N50N10M", "XS", "+"), ("5M0N5M", "XS", "+"), ("10M100N", "XS", "+"),
                ("5S100N10M", "XS", "+"), ("10M50N5I50N10M", "XS", "-")]):
            read = pysam.AlignedSegment(out.header)
            read.query_name, read.reference_id, read.reference_start = f"r{i}", 0, 100
            read.cigarstring, read.mapping_quality = cigar, 60
            read.query_sequence = "A" * read.infer_query_length()
            read.set_tag(tag, strand, "A")
            out.write(read)
    pysam.index(str(path))
    with pysam.AlignmentFile(str(path)) as bam:
        found = junctions(bam)
    assert [(j.contig, j.start, j.end, j.strand, j.reads) for j in found] == [
        ("c1", 110, 160, "-", 1), ("c1", 110, 210, "+", 4), ("c1", 160, 210, "-", 1)]


def test_min_reads_counts_a_junctions_reads_on_both_strands(tmp_path):
    """Two reads tag an intron +, two tag it -: four reads show it, and --min-reads 3 keeps both rows."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "c1", "LN": 1000}]}
    path = tmp_path / "reads.bam"
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i, xs in enumerate("++--"):
            read = pysam.AlignedSegment(out.header)
            read.query_name, read.reference_id, read.reference_start = f"r{i}", 0, 100
            read.cigarstring, read.mapping_quality, read.query_sequence = "10M100N10M", 60, "A" * 20
            read.set_tag("XS", xs, "A")
            out.write(read)
    pysam.index(str(path))
    result = run_cli("junctions", "--bam", path, "--min-reads", 3, "--out", tmp_path / "j.bed")
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in (tmp_path / "j.bed").read_text().splitlines()]
    assert [(r[1], r[2], r[3], r[5]) for r in rows] == [("110", "210", "reads=2", "+"), ("110", "210", "reads=2", "-")]


def test_a_fragment_whose_mates_both_cross_an_intron_supports_it_once(tmp_path):
    """As STAR's SJ.out.tab counts: pair p1's mates both cross 120-220 (one read); p2's first mate
    crosses it and its second lies before it (one); p3's mates cross it on two starts (one); p4's
    mates cross it at one start, the second of MAPQ 10 (one, whatever --min-mapq); p5's first mate
    crosses it, its second lies on c2 (one); a single read crosses it (one); a later pair, named p1
    too, crosses 320-420 only (one there). With --min-reads 7 nothing is left: six fragments, where
    nine alignments cross it."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "c1", "LN": 1000}, {"SN": "c2", "LN": 1000}]}
    path = tmp_path / "pairs.bam"
    reads = [  # name, flag, start, cigar, MAPQ, mate's contig and start
        ("p1", 99, 100, "20M100N20M", 60, 0, 105), ("p2", 97, 100, "20M100N20M", 60, 0, 102),
        ("p2", 145, 102, "15M", 60, 0, 100), ("p3", 99, 101, "19M100N20M", 60, 0, 110),
        ("p4", 99, 103, "17M100N20M", 60, 0, 103), ("p4", 147, 103, "17M100N20M", 10, 0, 103),
        ("p5", 97, 104, "16M100N20M", 60, 1, 500), ("p1", 147, 105, "15M100N25M", 60, 0, 100),
        ("s1", 0, 108, "12M100N20M", 60, -1, -1), ("p3", 147, 110, "10M100N30M", 60, 0, 101),
        ("p1", 99, 300, "20M100N20M", 60, 0, 310), ("p1", 147, 310, "10M100N30M", 60, 0, 300)]
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for name, flag, start, cigar, mapq, mate_contig, mate in sorted(reads, key=lambda r: r[2]):
            read = pysam.AlignedSegment(out.header)
            read.query_name, read.flag, read.reference_id, read.reference_start = name, flag, 0, start
            read.cigarstring, read.mapping_quality = cigar, mapq
            read.next_reference_id, read.next_reference_start = mate_contig, mate
            read.query_sequence = "A" * read.infer_query_length()
            out.write(read)
    pysam.index(str(path))
    for options in ((), ("--min-mapq", 20)):
        result = run_cli("junctions", "--bam", path, *options, "--out", tmp_path / "j.bed")
        assert result.returncode == 0, result.stderr
        rows = [line.split("\t") for line in (tmp_path / "j.bed").read_text().splitlines()]
        assert [(r[1], r[2], r[3]) for r in rows] == [("120", "220", "reads=6"), ("320", "420", "reads=1")]
    result = run_cli("junctions", "--bam", path, "--min-reads", 7, "--out", tmp_path / "j7.bed")
    assert result.returncode == 0 and (tmp_path / "j7.bed").read_text() == ""


def test_fragments_count_what_both_mates_show_once_in_any_order_and_forget_it_once_passed():
    """What reads mode counts a site's support with (a block's hits come in no particular order, blocks
    in the order of their reads' starts): pair p's mates start at 100 and 150 and both show 160 and
    170; only the first shows 120, only the second 300."""
    from dnabert2.sequences import Fragments

    fragments = Fragments()
    fragments.reach("c", 100)
    assert [fragments.first("p", 150, at, "+") for at in (120, 160, 170)] == [True] * 3
    assert [fragments.first("p", 100, at, "+") for at in (160, 170, 300)] == [False, False, True]
    assert fragments.first("p", 100, 160, "-") and fragments.first("s", None, 160, "+")  # another strand; no mate
    # The later mate's hits first, in one block: the pair still counts once.
    assert fragments.first("r", 100, 160, "+") and not fragments.first("r", 150, 160, "+")
    # Mates in two bins: what the first showed is kept while reads start at or before it.
    fragments.reach("c", 49_990)
    assert fragments.first("q", 50_005, 50_010, "+")
    fragments.reach("c", 50_000)
    assert not fragments.first("q", 49_990, 50_010, "+")
    fragments.first("u", 50_020, 50_030, "+")  # its mate never shows it
    fragments.reach("c", 50_031)
    assert not fragments.shown  # memory stays flat
    fragments.first("v", 60, 70_000, "+")
    fragments.reach("d", 0)
    assert not fragments.shown  # another contig


def test_an_alignment_past_its_contigs_end_is_refused_not_written_as_a_junction_past_it(tmp_path):
    """samtools quickcheck passes a BAM whose alignment runs past its @SQ length; its intron would be a
    BED row past the contig's end. A mapped record without a CIGAR ('*') aligns no base: passed over."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "c1", "LN": 1000}]}
    path = tmp_path / "reads.bam"
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for name, start, cigar in (("r0", 100, None), ("r1", 900, "30M50N30M")):
            read = pysam.AlignedSegment(out.header)
            read.query_name, read.reference_id, read.reference_start = name, 0, start
            read.cigarstring, read.mapping_quality, read.query_sequence = cigar, 60, "A" * 60
            out.write(read)
    pysam.index(str(path))
    with open_alignments(path) as bam:
        assert [r.query_name for r in bam.fetch("c1", 0, 500)] == ["r0"] and not list(aligned_reads(bam, "c1", 0, 500))
    result = run_cli("junctions", "--bam", path, "--out", tmp_path / "j.bed")
    assert_user_error(result, "alignment 'r1' ends at c1:1010, past the contig's 1000 bp (its @SQ LN)")
    assert not (tmp_path / "j.bed").exists()


def test_a_contig_named_twice_is_tiled_once(tmp_path):
    result = run_cli("windows", "--genome", CE, "--contigs", "I", "I", "--window", 50000, "--stride", 50000,
                     "--strands", "+", "--out", tmp_path / "w.bed")
    assert result.returncode == 0, result.stderr
    starts = [line.split("\t")[1] for line in (tmp_path / "w.bed").read_text().splitlines()]
    assert len(starts) == len(set(starts)) > 0


def test_windows_come_in_genome_order_each_once_and_index_with_tabix(tmp_path):
    """Contigs in the FASTA's order and windows by start, whatever order the contigs or regions are
    given in; overlapping regions tiled as one, so no window comes twice."""
    (tmp_path / "r.bed").write_text("V\t1000\t3000\nI\t5000\t9000\nI\t4000\t6000\nV\t0\t1500\n")
    runs = {"contigs": ["--contigs", "V", "I"], "regions": ["--regions", tmp_path / "r.bed"]}
    for name, options in runs.items():
        out = tmp_path / f"{name}.bed.gz"
        result = run_cli("windows", "--genome", CE, *options, "--window", 1000, "--stride", 500, "--out", out)
        assert result.returncode == 0, result.stderr
        with gzip.open(out, "rt") as handle:
            rows = [line.split("\t") for line in handle]
        keys = [(row[0], int(row[1]), row[5]) for row in rows]
        assert [c for c, _, _ in keys] == sorted((c for c, _, _ in keys), key=["I", "V"].index)
        assert keys == sorted(keys, key=lambda k: (["I", "V"].index(k[0]), k[1])) and len(set(keys)) == len(keys)
        pysam.tabix_index(str(out), preset="bed", force=True)  # refuses a file out of order
    with gzip.open(tmp_path / "regions.bed.gz", "rt") as handle:
        rows = [line.split("\t")[:3] for line in handle if "(+)" in line]
    assert rows[0] == ["I", "4000", "5000"] and rows[-1] == ["V", "2000", "3000"] and len(rows) == 9 + 5  # I:4000-9000, V:0-3000


def test_bed_header_lines_are_told_by_their_first_word(tmp_path):
    (tmp_path / "r.bed").write_text("browser position track1:1-10\ntrack name=r\n#c\ttrack1\t0\ntrack1\t0\t10\n")
    assert [interval[:3] for interval in read_bed_intervals(tmp_path / "r.bed")] == [("track1", 0, 10)]


@pytest.mark.parametrize("line, reason", [("I 0 500", "(contig, start, end, separated by tabs, not spaces)"),
                                          ("I\t0", "(contig, start, end)")])
def test_a_line_that_is_not_bed_is_refused_with_what_bed_needs(tmp_path, line, reason):
    (tmp_path / "r.bed").write_text(f"I\t0\t500\n{line}\n")
    with pytest.raises(UserError, match=re.escape(f"line 2 is not BED {reason}")):
        list(read_bed_intervals(tmp_path / "r.bed"))


@pytest.mark.parametrize("line", ["I\t1400\t1000", "I\t-5\t1000"])
def test_an_inverted_or_negative_bed_region_is_refused_by_its_line(tmp_path, line):
    (tmp_path / "r.bed").write_text(f"track name=r\nI\t0\t500\n{line}\n")
    result = run_cli("windows", "--genome", CE, "--regions", tmp_path / "r.bed", "--out", tmp_path / "w.bed")
    assert_user_error(result, "r.bed: line 3:", "a region needs 0 <= start < end")
    assert not (tmp_path / "w.bed").exists()


@pytest.mark.parametrize("line, words", [("chrZ\t5\t50", ["unknown contig 'chrZ' (from "]),
                                         ("I\t0\t999999999", ["region I:0-999999999 (from ", "outside the contig"])])
def test_a_region_off_the_genome_names_the_bed_it_came_from(tmp_path, line, words):
    (tmp_path / "r.bed").write_text(f"I\t0\t500\n{line}\n")
    result = run_cli("windows", "--genome", CE, "--regions", tmp_path / "r.bed", "--out", tmp_path / "w.bed")
    assert_user_error(result, *words, "r.bed)")
    assert not (tmp_path / "w.bed").exists()


def test_no_window_fitting_names_the_longest_of_what_was_asked_for(tmp_path):
    result = run_cli("windows", "--genome", CE, "--contigs", "MtDNA", "--window", 500, "--out", tmp_path / "w.bed")
    assert_user_error(result, "no 500 bp window fits the regions asked for (the longest is 137 bp)")
    assert not (tmp_path / "w.bed").exists()


def test_regions_read_as_bedtools_merge_reads_them_skip_zero_length_lines_and_column_6(tmp_path):
    """UCSC writes an insertion as start == end (dbSNP's BED), and some BEDs hold no strand in column
    6: where only the first three columns count (--regions), a zero-length line holds no base and is
    skipped, said once; a sequence per region (predict --bed) refuses it, as it would give no row."""
    (tmp_path / "r.bed").write_text("I\t0\t500\tr1\t0\t\nI\t1000\t1000\trs71206350\t0\t+\nI\t2000\t2500\tr3\t0\t?\n")
    result = run_cli("windows", "--genome", CE, "--regions", tmp_path / "r.bed", "--length", 500, "--out",
                     tmp_path / "w.bed", "--format", "bed")
    assert result.returncode == 0, result.stderr
    assert "1 zero-length interval(s) (start == end) hold no base, skipped" in result.stderr
    assert sorted({tuple(line.split("\t")[:3]) for line in (tmp_path / "w.bed").read_text().splitlines()}) == [
        ("I", "0", "500"), ("I", "2000", "2500")]  # one window each, on both strands
    (tmp_path / "s.bed").write_text("I\t0\t500\nI\t1000\t1000\n")
    with pytest.raises(UserError, match="line 2: I:1000-1000 is empty"):
        list(read_bed_intervals(tmp_path / "s.bed"))
    # Regions of none (a header alone, or zero-length lines alone) would tile nothing.
    (tmp_path / "none.bed").write_text("track name=r\nI\t1000\t1000\n")
    result = run_cli("windows", "--genome", CE, "--regions", tmp_path / "none.bed", "--out", tmp_path / "n.bed")
    assert_user_error(result, "none.bed: no regions")


def test_windows_min_length_emits_a_shorter_stretch_and_is_refused_at_a_window_or_more(tmp_path):
    """A 300 bp region in 400 bp windows: one 300 bp window with --min-length 200, none without; a
    --min-length of a window or more could emit nothing more (it did nothing, unsaid)."""
    (tmp_path / "r.bed").write_text("I\t1000\t1300\nI\t5000\t5400\n")
    options = ("--genome", CE, "--regions", tmp_path / "r.bed", "--window", 400, "--strands", "+")
    result = run_cli("windows", *options, "--min-length", 200, "--out", tmp_path / "w.bed")
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[:3] for line in (tmp_path / "w.bed").read_text().splitlines()] == [
        ["I", "1000", "1300"], ["I", "5000", "5400"]]
    result = run_cli("windows", *options, "--min-length", 400, "--out", tmp_path / "none.bed")
    assert_user_error(result, "--min-length 400", "give less than 400")
    assert not (tmp_path / "none.bed").exists()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_longer_than_a_chunk_are_copied_in_pieces(tmp_path, monkeypatch, newline):
    """A FASTA of one line per record goes through in chunk-sized pieces (memory stays at a chunk):
    the same bases, headers still found, a bad base still named at its position."""
    import random

    from dnabert2.sequences import fasta

    monkeypatch.setattr(fasta, "_CHUNK", 64)
    rng = random.Random(1)
    records = {f"r{i}": "".join(rng.choice("ACGTN") for _ in range(rng.randrange(1, 400))) for i in range(12)}
    source = tmp_path / "long.fa"
    source.write_bytes("".join(f">{name} some description{newline}{seq}{newline}"
                               for name, seq in records.items()).encode()[:-len(newline)])  # no last newline
    write_indexed_fasta(source, tmp_path / "out.fa")
    with Fasta(tmp_path / "out.fa") as out:
        assert {name: out.fetch(name) for name in out.lengths} == records
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\n" + "A" * 300 + "Q" + "A" * 300 + "\n")
    with pytest.raises(UserError, match="'Q' at position 301"):
        write_indexed_fasta(bad, tmp_path / "bad_out.fa")


def test_a_header_line_longer_than_a_chunk_is_refused_in_a_short_line(tmp_path, monkeypatch):
    """A FASTA of old Mac line ends (CR alone) is one line: it was read whole as its first header, in
    memory and time growing with the square of the file, and named whole in the error."""
    from dnabert2.sequences import fasta

    monkeypatch.setattr(fasta, "_CHUNK", 64)
    mac = tmp_path / "mac.fa"
    mac.write_bytes(b">chrA\r" + b"ACGTACGTAC\r" * 100)
    with pytest.raises(UserError, match="a header line of over .*: its lines end in CR alone") as refused:
        write_indexed_fasta(mac, tmp_path / "out.fa.gz")
    assert len(str(refused.value)) < 200 and not list(tmp_path.glob("out*"))
    (tmp_path / "long.fa").write_bytes(b">chrA " + b"x" * 200 + b"\nACGT\n")
    with pytest.raises(UserError, match="a header line of over .*: longer than any FASTA header"):
        write_indexed_fasta(tmp_path / "long.fa", tmp_path / "out.fa.gz")


def test_a_transcript_whose_parent_is_a_transcript_belongs_to_the_gene_above(tmp_path):
    """NCBI's GFF3 gives a miRNA its primary_transcript as Parent, and that the gene: one gene. Its
    primary_transcript is the hairpin (pre-miRNA) cut from a longer one: neither gives a TSS."""
    (tmp_path / "ncbi.gff3").write_text(
        "##gff-version 3\nc\tt\tgene\t101\t900\t.\t+\t.\tID=gene-MIR1;gene_biotype=miRNA\n"
        "c\tt\tprimary_transcript\t101\t900\t.\t+\t.\tID=rna-NR_1;Parent=gene-MIR1;gbkey=precursor_RNA\n"
        "c\tt\texon\t101\t900\t.\t+\t.\tParent=rna-NR_1\n"
        "c\tt\tmiRNA\t401\t422\t.\t+\t.\tID=rna-MIR1-5p;Parent=rna-NR_1\n"
        "c\tt\texon\t401\t422\t.\t+\t.\tParent=rna-MIR1-5p\n")
    annotation = read_annotation(tmp_path / "ncbi.gff3")
    assert {t.id: t.gene for t in annotation.transcripts} == {"rna-NR_1": "gene-MIR1", "rna-MIR1-5p": "gene-MIR1"}
    # A gene's own Parent (an operon, a locus) is no gene of its transcripts.
    (tmp_path / "operon.gff3").write_text(
        "##gff-version 3\nc\tt\toperon\t101\t2000\t.\t+\t.\tID=op1\n"
        "c\tt\tgene\t101\t900\t.\t+\t.\tID=g1;Parent=op1\nc\tt\tmRNA\t101\t900\t.\t+\t.\tID=t1;Parent=g1\n"
        "c\tt\texon\t101\t900\t.\t+\t.\tParent=t1\nc\tt\tgene\t1001\t2000\t.\t+\t.\tID=g2;Parent=op1\n"
        "c\tt\tmRNA\t1001\t2000\t.\t+\t.\tID=t2;Parent=g2\nc\tt\texon\t1001\t2000\t.\t+\t.\tParent=t2\n")
    assert [g.id for g in read_annotation(tmp_path / "operon.gff3").genes()] == ["g1", "g2"]
    # So too a prokaryote's genes of CDS alone (the gene the CDS's Parent and its transcript): they were
    # one gene, the operon, spanning both.
    (tmp_path / "cds.gff3").write_text(
        "##gff-version 3\nc\tt\toperon\t101\t2000\t.\t+\t.\tID=op1\n"
        "c\tt\tgene\t101\t900\t.\t+\t.\tID=g1;Parent=op1\nc\tt\tCDS\t101\t900\t.\t+\t0\tID=c1;Parent=g1\n"
        "c\tt\tgene\t1001\t2000\t.\t+\t.\tID=g2;Parent=op1\nc\tt\tCDS\t1001\t2000\t.\t+\t0\tID=c2;Parent=g2\n")
    assert [(g.id, g.start, g.end) for g in read_annotation(tmp_path / "cds.gff3").genes()] == [
        ("g1", 100, 900), ("g2", 1000, 2000)]
    assert [(g.id, g.start, g.end) for g in annotation.genes()] == [("gene-MIR1", 100, 900)]
    assert annotation.tss() == [] and [s.position for s in annotation.unlabelled({"tss"})] == [100, 400]
    # NCBI writes GenBank's prim_transcript as a primary_transcript too: a transcript from its TSS.
    text = (tmp_path / "ncbi.gff3").read_text()
    (tmp_path / "prim.gff3").write_text(text.replace("gbkey=precursor_RNA", "gbkey=prim_transcript"))
    assert [s.position for s in read_annotation(tmp_path / "prim.gff3").tss()] == [100]
