"""The command line as users call it: help, outputs of the sequence utilities, errors."""

import gzip
import os
import re
import signal
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pysam
import pytest

from conftest import GENOMES, ROOT, assert_stopped, assert_user_error, run_cli, run_patched, without_bases
from dnabert2.cli import COMMANDS as ALL_COMMANDS
from dnabert2.cli import build_parser
from dnabert2.errors import UserError
from dnabert2.outputs import ORIGIN
from dnabert2.sequences import write_indexed_fasta

COMMANDS = ["download", "vocab", "windows", "sites", "junctions", "pretrain", "tasks", "finetune", "evaluate", "scan",
            "scan-gather", "scan-eval", "plot"]


def test_help_lists_every_command():
    for invocation in ([sys.executable, "-m", "dnabert2", "--help"], ["dnabert2", "--help"]):
        result = subprocess.run(invocation, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        for command in COMMANDS:
            assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_documents_its_options(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "--out" in result.stdout and "usage: dnabert2 " + command in result.stdout


def readme_command_lines() -> list[list[str]]:
    """Every `dnabert2 …` line of README's bash blocks (continuations joined), as words."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.startswith("dnabert2 ") and "..." not in line]


def test_readme_command_lines_parse():
    # The command-line route README gives other pipelines: every command and option it shows exists
    # and takes the values shown.
    lines = readme_command_lines()
    assert len(lines) >= 10
    for words in lines:
        assert words[1] in ALL_COMMANDS, words
        build_parser(words[1]).parse_args(words[1:])


@pytest.mark.parametrize("command, required", [
    ("vocab", ["--genome", "g.fa", "--out", "t.json"]),
    ("pretrain", ["--genome", "g.fa", "--tokenizer", "t.json", "--out", "m"]),
    ("tasks", ["promoter", "--genome", "g.fa", "--annotation", "a.gff3", "--out", "t"]),
])
def test_a_negative_seed_is_refused_in_one_line(command, required):
    """numpy takes no negative seed: tasks gave its traceback."""
    assert_user_error(run_cli(command, *required, "--seed", -1), "--seed: must be zero or more, not -1")


def test_an_option_of_several_values_given_twice_takes_both():
    """`--tag basic --tag MANE_Select` is `--tag basic MANE_Select`, not the last alone; a default
    list (seeds) is replaced, not added to."""
    args = build_parser("sites").parse_args(["sites", "--annotation", "a", "--genome", "g", "--out", "o", "--tag",
                                             "basic", "--tag", "MANE_Select", "--biotype", "mRNA"])
    assert (args.tags, args.biotypes) == (["basic", "MANE_Select"], ["mRNA"])
    args = build_parser("finetune").parse_args(["finetune", "--model", "m", "--data", "d", "--out", "o", "--seeds",
                                                "1", "--seeds", "2"])
    assert args.seeds == [2]
    args = build_parser("windows").parse_args(["windows", "--genome", "g", "--out", "o", "--contigs", "I",
                                               "--contigs", "II"])
    assert args.contigs == ["I", "II"]


def test_a_table_named_as_another_format_is_refused_and_any_other_name_taken():
    from dnabert2.outputs import check_table_name

    for name in ("o.csv", "O.CSV.GZ", "ism.svg", "x.npz"):
        with pytest.raises(UserError, match=f"{re.escape(name)}: --out writes a tab-separated table"):
            check_table_name(Path(name), "--out")
    for name in ("o.tsv", "o.tsv.gz", "o.txt", "run1.out", "HG002.predictions", "o", "-", "/dev/stdout"):
        check_table_name(Path(name), "--out")


def test_mutagenesis_scores_in_fp32_unless_asked_otherwise():
    """Its score changes are differences of nearly equal scores, which bf16 (the other commands' choice
    on a GPU) blurs; a GPU user asks for it with --dtype bf16 or auto."""
    options = ["mutagenesis", "--model", "m", "--fasta", "g", "--region", "I:1-20", "--out", "o"]
    assert build_parser("mutagenesis").parse_args(options).dtype == "fp32"
    assert build_parser("mutagenesis").parse_args([*options, "--dtype", "auto"]).dtype == "auto"


def test_missing_required_option_is_a_usage_error(tmp_path):
    result = run_cli("vocab", "--out", tmp_path / "t.json")
    assert result.returncode == 2 and "--genome" in result.stderr and "Traceback" not in result.stderr
    # One line, as README says: the usage is what --help is for.
    assert result.stderr.splitlines() == ["dnabert2 vocab: error: the following arguments are required: --genome "
                                          "(see dnabert2 vocab --help)"]
    # An option the command lacks is named by the command, whose --help lists those it has.
    result = run_cli("vocab", "--genome", "g.fa", "--out", tmp_path / "t.json", "--junctions", "j.bed")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "dnabert2 vocab: error: unrecognized arguments: --junctions j.bed (see dnabert2 vocab --help)"]


def test_windows_as_csv_fasta_and_bed(tmp_path):
    genome = GENOMES / "phiX174_NC_001422.gbk.gz"
    assert run_cli("windows", "--genome", genome, "--out", tmp_path / "w.csv", "--length", "1000", "--stride", "500").returncode == 0
    rows = (tmp_path / "w.csv").read_text().splitlines()
    assert rows[0] == "contig,start,end,strand,sequence"
    starts = sorted({int(r.split(",")[1]) for r in rows[1:]})
    assert starts == [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4386]
    assert len(rows) - 1 == 2 * len(starts)
    assert all(len(r.split(",")[4]) == 1000 for r in rows[1:])
    # Named .csv.gz: the same CSV, bgzip-compressed.
    assert run_cli("windows", "--genome", genome, "--out", tmp_path / "w.csv.gz", "--length", "1000", "--stride",
                   "500").returncode == 0
    with gzip.open(tmp_path / "w.csv.gz", "rt") as handle:
        assert handle.read().splitlines() == rows
    # The name decides alike in any case and for bgzip's own .bgz (as download and scan decide it).
    assert run_cli("windows", "--genome", genome, "--out", tmp_path / "W.CSV.BGZ", "--length", "1000", "--stride",
                   "500").returncode == 0
    assert (tmp_path / "W.CSV.BGZ").read_bytes()[:4] == b"\x1f\x8b\x08\x04"  # bgzip: gzip with the extra field
    with gzip.open(tmp_path / "W.CSV.BGZ", "rt") as handle:
        assert handle.read().splitlines() == rows

    assert run_cli("windows", "--genome", genome, "--out", tmp_path / "w.fa", "--length", "1000", "--stride", "1000",
                   "--strands", "-").returncode == 0
    lines = (tmp_path / "w.fa").read_text().splitlines()
    assert lines[0] == ">NC_001422.1:0-1000(-)" and len(lines) == 12

    regions = tmp_path / "r.bed"
    regions.write_text("NC_001422.1\t100\t400\nNC_001422.1\t1000\t1050\n")
    result = run_cli("windows", "--genome", genome, "--out", tmp_path / "w.bed", "--regions", regions, "--length", "100",
                     "--stride", "100", "--strands", "+")
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[:3] for line in (tmp_path / "w.bed").read_text().splitlines()] == [
        ["NC_001422.1", str(start), str(start + 100)] for start in (100, 200, 300)]
    # A region shorter than a window gives none, and says so: a pipeline would otherwise miss it unheard.
    assert "1 contig(s) or region(s) (overlapping or touching ones merged) shorter than 100 bp (--window)" in result.stderr
    assert "NC_001422.1:1000-1050" in result.stderr
    # Windows longer than the genome: an error, not an empty file.
    assert_user_error(run_cli("windows", "--genome", genome, "--out", tmp_path / "long.bed", "--length", "6000"),
                      "no 6000 bp window fits", "5,386 bp")
    assert not (tmp_path / "long.bed").exists()


def test_windows_on_unknown_contig_is_refused_without_output(tmp_path):
    result = run_cli("windows", "--genome", GENOMES / "phiX174_NC_001422.gbk.gz", "--out", tmp_path / "w.csv", "--contigs", "chr1")
    assert_user_error(result, "unknown contig 'chr1'")
    assert list(tmp_path.iterdir()) == []


def test_sites_bed_is_sorted_bed6(tmp_path, data):
    out = tmp_path / "sites.bed"
    result = run_cli("sites", "--annotation", GENOMES / "ce1pct.gff3.gz", "--genome", GENOMES / "ce1pct.fa.gz", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    order = ["I", "II", "III", "IV", "V", "X", "MtDNA"]
    keys = [(order.index(r[0]), int(r[1])) for r in rows]
    assert keys == sorted(keys)
    assert {r[3] for r in rows} == {"donor", "acceptor"} and {r[5] for r in rows} == {"+", "-"}
    assert all(int(r[2]) == int(r[1]) + 1 for r in rows)


def test_sites_and_junctions_named_gz_are_bgzip_with_a_tabix_index(tmp_path, data):
    """As genome browsers and `tabix` read a BED: bgzip, with its .tbi beside it answering region queries."""
    sirv = data / "bam/sirv_ont"
    runs = {"sites.bed": ("sites", "--annotation", GENOMES / "ce1pct.gff3.gz", "--genome", GENOMES / "ce1pct.fa.gz"),
            "junctions.bed": ("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--reference",
                              sirv / "SIRV_150601a.fasta.gz")}
    for name, args in runs.items():
        plain, packed = tmp_path / name, tmp_path / f"{name}.gz"
        for out in (plain, packed):
            result = run_cli(*args, "--out", out)
            assert result.returncode == 0, result.stderr
        rows = [line.split("\t") for line in plain.read_text().splitlines()]
        assert not Path(f"{plain}.tbi").exists() and Path(f"{packed}.tbi").exists()
        with pysam.TabixFile(str(packed)) as tabix:
            contig, start = rows[len(rows) // 2][0], int(rows[len(rows) // 2][1])
            assert [line.split("\t") for line in tabix.fetch(contig, start, start + 1000)] == \
                [r for r in rows if r[0] == contig and int(r[2]) > start and int(r[1]) < start + 1000]
        with gzip.open(packed, "rt") as handle:
            assert handle.read() == plain.read_text()
        if shutil.which("tabix"):
            listed = subprocess.run(["tabix", "-l", str(packed)], capture_output=True, text=True, check=True)
            assert listed.stdout.split() == list(dict.fromkeys(r[0] for r in rows))


def test_positions_past_2_to_the_29_get_a_csi_index_and_an_earlier_index_is_not_left_stale(tmp_path):
    """A .tbi holds positions below 2^29 (wheat's and axolotl's contigs reach further): such a BED gets a
    .csi, as `tabix -C` writes. An index an earlier output left beside the name is removed, where
    tabix would read it for the new file."""
    from dnabert2.outputs import write_bed_rows

    out = tmp_path / "sites.bed.gz"
    assert write_bed_rows(out, [("c", 100, 101, "tss", 0, "+")]) == 1 and Path(f"{out}.tbi").exists()
    far = [("c", 600_000_000, 600_000_001, "tss", 0, "+"), ("c", 700_000_000, 700_000_001, "tss", 0, "-")]
    write_bed_rows(out, far)
    assert Path(f"{out}.csi").exists() and not Path(f"{out}.tbi").exists()
    with pysam.TabixFile(str(out), index=f"{out}.csi") as tabix:
        assert [line.split("\t")[1] for line in tabix.fetch("c", 650_000_000, 800_000_000)] == ["700000000"]
    if shutil.which("tabix"):
        found = subprocess.run(["tabix", str(out), "c:600000001-600000001"], capture_output=True, text=True)
        assert found.returncode == 0 and found.stdout.split("\t")[:2] == ["c", "600000000"]
    # The same name written again by a command that indexes nothing (windows as BED).
    result = run_cli("windows", "--genome", GENOMES / "phiX174_NC_001422.gbk.gz", "--format", "bed", "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sites.bed.gz"]
    # An output named by a link: an index beside the link's name is read as well as one beside the file.
    (tmp_path / "store").mkdir()
    out.rename(tmp_path / "store" / "sites.bed.gz")
    out.symlink_to(tmp_path / "store" / "sites.bed.gz")
    write_bed_rows(out, far)
    shutil.copy(Path(f"{out}.csi"), tmp_path / "copy.csi")
    Path(f"{out}.csi").unlink()
    shutil.move(tmp_path / "copy.csi", Path(f"{out}.csi"))  # a file now, not the link publishing made
    write_bed_rows(out, [("c", 100, 101, "tss", 0, "+")])
    assert sorted(p.name for p in tmp_path.rglob("*.*i")) == ["sites.bed.gz.tbi", "sites.bed.gz.tbi"]


def test_a_name_holding_a_tab_is_refused_not_written_into_another_column(tmp_path):
    """GFF3 escapes a tab in an ID as %09; a BED or TSV field cannot hold one."""
    genome, notes = tmp_path / "c.fa", tmp_path / "tab.gff3"
    genome.write_text(">c\n" + "ACGT" * 25 + "\n")
    notes.write_text("##gff-version 3\nc\tx\tgene\t10\t50\t.\t+\t.\tID=g%09x\n"
                     "c\tx\tmRNA\t10\t50\t.\t+\t.\tID=t;Parent=g%09x\nc\tx\texon\t10\t50\t.\t+\t.\tParent=t\n")
    result = run_cli("sites", "--annotation", notes, "--genome", genome, "--kind", "genes", "--out", tmp_path / "g.bed")
    assert_user_error(result, "'g\\tx' holds a tab or a line break", "tab-separated")
    assert not list(tmp_path.glob("*g.bed*"))


def test_sites_of_some_biotypes_by_gff3_type_or_gene_biotype(tmp_path):
    """--biotype mRNA keeps the example's mRNAs (WormBase's GFF3 type): their TSSs are the ends of its
    mRNA lines. RefSeq bacteria name biotypes on gene lines only (gene_biotype=ncRNA); a mature tRNA's
    5' end, cut from a longer transcript, is no TSS."""
    out = tmp_path / "tss.bed"
    result = run_cli("sites", "--annotation", GENOMES / "ce1pct.gff3.gz", "--genome", GENOMES / "ce1pct.fa.gz",
                     "--kind", "tss", "--biotype", "mRNA", "--out", out)
    assert result.returncode == 0, result.stderr
    with gzip.open(GENOMES / "ce1pct.gff3.gz", "rt") as handle:
        mrna = {(f[0], int(f[3]) - 1 if f[6] == "+" else int(f[4]) - 1, f[6])
                for f in (line.split("\t") for line in handle if not line.startswith("#")) if f[2] == "mRNA"}
    written = {(r[0], int(r[1]), r[5]) for r in (line.split("\t") for line in out.read_text().splitlines())}
    assert written == mrna and len(mrna) > 200
    result = run_cli("sites", "--annotation", GENOMES / "ecoli_k12_mg1655.gff.gz", "--genome",
                     GENOMES / "ecoli_k12_mg1655.fna.gz", "--kind", "tss", "--biotype", "ncRNA", "tRNA", "ncRNAs",
                     "--out", out)
    assert result.returncode == 0 and "no transcript of biotype ncRNAs; the biotypes of its transcripts are ncRNA, protein_coding, rRNA, tRNA" in result.stderr
    assert "86 transcript(s) of tRNAs, rRNAs, snoRNAs, miRNAs, piRNAs or circular RNAs give no TSS" in result.stderr
    assert len(out.read_text().splitlines()) == 99  # the genes of gene_biotype ncRNA
    result = run_cli("sites", "--annotation", GENOMES / "ecoli_k12_mg1655.gff.gz", "--genome",
                     GENOMES / "ecoli_k12_mg1655.fna.gz", "--biotype", "mRNA", "--out", tmp_path / "none.bed")
    assert_user_error(result, "no transcript of biotype mRNA", "ncRNA, protein_coding, rRNA, tRNA")
    assert not (tmp_path / "none.bed").exists()


def test_sites_of_a_kind_the_annotation_lacks_give_an_empty_bed_and_a_warning_even_with_q(tmp_path):
    result = run_cli("sites", "--annotation", GENOMES / "ecoli_k12_mg1655.gff.gz", "--genome",
                     GENOMES / "ecoli_k12_mg1655.fna.gz", "--kind", "splice", "--out", tmp_path / "s.bed", "-q")
    assert result.returncode == 0 and (tmp_path / "s.bed").read_text() == ""
    assert "holds no splice sites on the genome's contigs" in result.stderr


@pytest.mark.parametrize("words, quiet", [(["-q", "tasks"], True), (["tasks", "--quiet"], True), (["tasks"], False)])
def test_quiet_is_taken_before_the_command_as_after_it(tmp_path, words, quiet):
    """`dnabert2 -q tasks …` was refused (unrecognized arguments), as `pip -q install` is not."""
    plasmid = GENOMES / "Ypestis_pPCP1_NC_005816.gb.gz"
    result = run_cli(*words, "core-promoter", "--genome", plasmid, "--annotation", plasmid, "--negatives", "shuffled",
                     "--out", tmp_path / "t")
    assert result.returncode == 0, result.stderr
    assert ("splitting each contig by position" in result.stderr) is not quiet


def test_sites_with_annotation_of_another_genome_is_refused(tmp_path):
    result = run_cli("sites", "--annotation", GENOMES / "ce1pct.gff3.gz", "--genome", GENOMES / "lambda_phage_bowtie2_example.fa.gz",
                     "--out", tmp_path / "s.bed")
    assert_user_error(result, "none of its 7 contig(s) is in")
    assert not (tmp_path / "s.bed").exists()


def test_junctions_bed_has_read_support(tmp_path, data):
    out = tmp_path / "junctions.bed"
    sirv = data / "bam/sirv_ont"
    result = run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--reference", sirv / "SIRV_150601a.fasta.gz",
                     "--min-reads", "5", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    reads = [int(r[3].removeprefix("reads=")) for r in rows]
    assert rows and min(reads) >= 5 and max(reads) > 1000
    assert all(int(r[4]) == min(n, 1000) and r[5] in "+-." for r, n in zip(rows, reads))
    some = tmp_path / "some.bed"  # a contig's own: the same rows, read from its part of the BAM only
    result = run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--reference", sirv / "SIRV_150601a.fasta.gz",
                     "--min-reads", "5", "--out", some, "--contigs", "SIRV5", "SIRV3", "SIRV5")
    assert result.returncode == 0, result.stderr
    assert some.read_text().splitlines() == [line for line in out.read_text().splitlines()
                                             if line.split("\t")[0] in ("SIRV3", "SIRV5")] != []
    # Regions' (a scan's --regions, in the workflow): the rows that share a base with one of them.
    (tmp_path / "regions.bed").write_text("SIRV5\t1000\t5000\nSIRV3\t0\t100\n")
    result = run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--reference", sirv / "SIRV_150601a.fasta.gz",
                     "--min-reads", "5", "--out", tmp_path / "regions_junctions.bed", "--regions", tmp_path / "regions.bed")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "regions_junctions.bed").read_text().splitlines() == [line for line in out.read_text().splitlines() if any(
        line.split("\t")[0] == c and int(line.split("\t")[1]) < b and int(line.split("\t")[2]) > a
        for c, a, b in (("SIRV5", 1000, 5000), ("SIRV3", 0, 100)))] != []
    assert run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--out", tmp_path / "none.bed", "--contigs",
                   "SIRV5", "--regions", tmp_path / "regions.bed").returncode == 2  # one or the other
    # Checked as scan checks them; a region without junctions says where it looked.
    (tmp_path / "past.bed").write_text("SIRV7\t0\t200000\n")
    assert_user_error(run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--out", tmp_path / "none.bed",
                              "--regions", tmp_path / "past.bed"),
                      f"region SIRV7:0-200000 (from {tmp_path / 'past.bed'}) is outside the contig")
    assert not (tmp_path / "none.bed").exists()
    (tmp_path / "bare.bed").write_text("SIRV7\t0\t50\n")
    result = run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--out", tmp_path / "bare_junctions.bed",
                     "--regions", tmp_path / "bare.bed")
    assert result.returncode == 0 and (tmp_path / "bare_junctions.bed").read_text() == "" and f"--min-reads 1, in {tmp_path / 'bare.bed'})" in result.stderr
    result = run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--out", tmp_path / "none.bed",
                     "--contigs", "chr1")
    assert_user_error(result, "unknown contig 'chr1'")
    assert not (tmp_path / "none.bed").exists()
    # A MAPQ is 0 to 255: a higher minimum would keep no alignment, unsaid; filters that keep none say so.
    result = run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--out", tmp_path / "none.bed",
                     "--min-mapq", 1000)
    assert_user_error(result, "--min-mapq: must be a mapping quality, 0 to 255, not 1000")
    result = run_cli("junctions", "--bam", sirv / "pcs109_5k_spliced.bam", "--out", tmp_path / "none.bed",
                     "--min-reads", 10**9)
    assert result.returncode == 0 and (tmp_path / "none.bed").read_text() == ""
    assert "no intron (CIGAR N) in the primary alignments kept (--min-mapq 0, --min-reads 1000000000)" in result.stderr


def test_an_untagged_read_joins_the_strand_of_its_introns_tagged_reads(tmp_path, data):
    """Without a reference, the SIRV reads minimap2 left without a ts tag count with the tagged reads
    of the same intron, not in a row of their own."""
    out = tmp_path / "junctions.bed"
    result = run_cli("junctions", "--bam", data / "bam/sirv_ont/pcs109_5k_spliced.bam", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    introns = [tuple(r[:3]) for r in rows]
    assert introns and len(introns) == len(set(introns))
    # Each row's reads, against a count of the CIGARs' skips (N) over the primary alignments.
    skips = Counter()
    with pysam.AlignmentFile(str(data / "bam/sirv_ont/pcs109_5k_spliced.bam")) as bam:
        for read in bam.fetch():
            if read.is_unmapped or read.is_secondary or read.is_supplementary:
                continue
            position = read.reference_start
            for operation, length in read.cigartuples:
                if operation == pysam.CREF_SKIP:
                    skips[(read.reference_name, str(position), str(position + length))] += 1
                if operation in (pysam.CMATCH, pysam.CDEL, pysam.CREF_SKIP, pysam.CEQUAL, pysam.CDIFF):
                    position += length
    assert {tuple(r[:3]): int(r[3].removeprefix("reads=")) for r in rows} == skips


def test_an_output_named_as_the_bams_index_is_refused(tmp_path, data):
    """htslib finds s.bam's index as s.bam.bai or s.bai: a BED written there replaced it, exit 0."""
    bam = shutil.copy(data / "bam/sirv_ont/pcs109_5k_spliced.bam", tmp_path / "s.bam")
    pysam.index(str(bam), str(tmp_path / "s.bai"))
    before = (tmp_path / "s.bai").read_bytes()
    for name in ("s.bai", "s.bam.bai", "s.bam.csi"):
        result = run_cli("junctions", "--bam", bam, "--out", tmp_path / name)
        assert_user_error(result, f"{name}: the name of", "s.bam's index")
    assert (tmp_path / "s.bai").read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["s.bai", "s.bam"]


def test_junctions_need_only_the_cigars(tmp_path, data):
    sirv = data / "bam/sirv_ont"
    bare = without_bases(sirv / "pcs109_5k_spliced.bam", tmp_path / "bare.bam")
    for bam, out in ((sirv / "pcs109_5k_spliced.bam", tmp_path / "with.bed"), (bare, tmp_path / "without.bed")):
        result = run_cli("junctions", "--bam", bam, "--reference", sirv / "SIRV_150601a.fasta.gz", "--out", out)
        assert result.returncode == 0, result.stderr
    assert (tmp_path / "with.bed").read_text() == (tmp_path / "without.bed").read_text() != ""


def test_tss_tts_and_genes_as_bed(tmp_path):
    rows = {}
    for kind in ("tss", "tts", "genes"):
        out = tmp_path / f"{kind}.bed"
        result = run_cli("sites", "--kind", kind, "--annotation", GENOMES / "ce1pct.gff3.gz",
                         "--genome", GENOMES / "ce1pct.fa.gz", "--out", out)
        assert result.returncode == 0, result.stderr
        rows[kind] = [line.split("\t") for line in out.read_text().splitlines()]
    gene = next(r for r in rows["genes"] if r[3] == "Gene:WBGene00022277")
    assert gene[:3] == ["I", "4115", "10230"] and gene[5] == "-"
    assert ["I", "10229", "10230", "tss", "0", "-"] in rows["tss"]  # minus strand: the gene's last base
    assert ["I", "4115", "4116", "tts", "0", "-"] in rows["tts"]  # and its transcript ends at its first


@pytest.mark.parametrize("command", ["windows", "vocab", "download"])
def test_output_that_would_overwrite_the_input_is_refused(tmp_path, command):
    genome = tmp_path / "g.fa"
    text = ">c\n" + "ACGT" * 500 + "\n"
    genome.write_text(text)
    args = {"windows": ["windows", "--genome", genome, "--out", genome],
            "vocab": ["vocab", "--genome", genome, "--out", genome],
            "download": ["download", genome, "--out", genome]}[command]
    assert_user_error(run_cli(*args), "overwrite the input")
    assert genome.read_text() == text


def test_output_that_is_a_directory_is_refused_without_leftovers(tmp_path):
    genome = tmp_path / "g.fa"
    genome.write_text(">c\n" + "ACGT" * 500 + "\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    assert_user_error(run_cli("download", genome, "--out", folder), "is a directory")
    assert_user_error(run_cli("vocab", "--genome", genome, "--out", tmp_path / "t.json", "--report", folder,
                              "--window", "100"), "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "g.fa"]
    assert list(folder.iterdir()) == []


def test_a_genome_given_twice_is_refused(tmp_path):
    """Its windows would be drawn twice: bp per token measured on windows also trained on."""
    genome = tmp_path / "g.fa"
    genome.write_text(">c\n" + "ACGT" * 500 + "\n")
    (tmp_path / "link.fa").symlink_to(genome)
    result = run_cli("vocab", "--genome", genome, "--genome", tmp_path / "link.fa", "--out", tmp_path / "t.json",
                     "--window", "100")
    assert_user_error(result, "link.fa: the same file as", "give each genome once")
    assert not (tmp_path / "t.json").exists()
    # The same genome in two files (plain and gzip), with its lines folded otherwise.
    (tmp_path / "g2.fa.gz").write_bytes(gzip.compress((">c\n" + "ACGT" * 250 + "\n" + "ACGT" * 250 + "\n").encode()))
    result = run_cli("vocab", "--genome", genome, "--genome", tmp_path / "g2.fa.gz", "--out", tmp_path / "t.json",
                     "--window", "100")
    assert_user_error(result, "g2.fa.gz: the same genome (every contig of one name and length) as", "give each genome once")
    assert not (tmp_path / "t.json").exists()


def test_standard_output_is_refused_not_written_as_a_file_named_dash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_user_error(run_cli("windows", "--genome", GENOMES / "phiX174_NC_001422.gbk.gz", "--out", "-"), "give a file name")
    assert list(tmp_path.iterdir()) == []


def test_an_output_through_a_symbolic_link_is_written_to_its_target_and_the_link_kept(tmp_path):
    target, dangling = tmp_path / "target.csv", tmp_path / "made" / "new.csv"
    target.write_text("old\n")
    (tmp_path / "link.csv").symlink_to(target)
    (tmp_path / "dangling.csv").symlink_to(dangling)
    for link in ("link.csv", "dangling.csv"):
        assert run_cli("windows", "--genome", GENOMES / "phiX174_NC_001422.gbk.gz", "--window", "1000",
                       "--out", tmp_path / link).returncode == 0
        assert (tmp_path / link).is_symlink()
    assert target.read_text().startswith("contig,start,end") and dangling.read_text() == target.read_text()
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    assert_user_error(run_cli("windows", "--genome", GENOMES / "phiX174_NC_001422.gbk.gz", "--out",
                              tmp_path / "loop.csv"), "loop.csv: a loop of symbolic links")
    (tmp_path / "loop.csv").unlink()
    # An indexed output's indices go beside its file, and beside the link as links, where htslib looks.
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "g.fa.gz").symlink_to("../made/g.fa.gz")
    write_indexed_fasta(GENOMES / "phiX174_NC_001422.gbk.gz", tmp_path / "work" / "g.fa.gz")
    assert sorted(p.name for p in (tmp_path / "made").iterdir()) == ["g.fa.gz", "g.fa.gz.fai", "g.fa.gz.gzi", "new.csv"]
    assert all((tmp_path / "work" / f"g.fa.gz{s}").is_symlink() for s in ("", ".fai", ".gzi"))
    with pysam.FastaFile(str(tmp_path / "work" / "g.fa.gz")) as fasta:
        assert fasta.fetch(fasta.references[0], 0, 10) == "GAGTTTTATC"
    assert len(list((tmp_path / "work").iterdir())) == 3  # nothing indexed again
    shutil.move(tmp_path, tmp_path.with_name("moved"))  # relative links: the indices move with the files
    with pysam.FastaFile(str(tmp_path.with_name("moved") / "work" / "g.fa.gz")) as fasta:
        assert fasta.fetch(fasta.references[0], 0, 10) == "GAGTTTTATC"
    shutil.move(tmp_path.with_name("moved"), tmp_path)


def test_standard_output_redirected_to_a_file_is_refused_and_the_file_kept(tmp_path):
    log = tmp_path / "all.txt"
    log.write_text("earlier\n")
    with open(log, "a") as handle:  # `>> all.txt`
        result = subprocess.run([sys.executable, "-m", "dnabert2", "windows", "--genome",
                                 GENOMES / "phiX174_NC_001422.gbk.gz", "--out", "/dev/stdout"], stdout=handle,
                                stderr=subprocess.PIPE, text=True)
    assert_user_error(result, "/dev/stdout: this command's standard output or error is written to it")
    assert log.read_text() == "earlier\n"


@pytest.mark.parametrize("special", ["/dev/null", "fifo"])
def test_an_output_that_is_a_device_or_a_pipe_is_refused_not_replaced(tmp_path, special):
    # As root, renaming a finished file onto /dev/null or /dev/stdout would have replaced the device.
    if special == "fifo":
        special = tmp_path / "fifo"
        os.mkfifo(special)
    result = run_cli("windows", "--genome", GENOMES / "phiX174_NC_001422.gbk.gz", "--out", special)
    assert_user_error(result, "not a regular file (a device, pipe or socket)")
    assert not Path(special).is_file() and Path(special).exists()


@pytest.mark.parametrize("command", [["windows", "--genome", GENOMES / "phiX174_NC_001422.gbk.gz"],
                                     ["vocab", "--genome", GENOMES / "phiX174_NC_001422.gbk.gz"]])
def test_an_output_named_as_a_folder_is_refused_not_written_as_a_file(tmp_path, command):
    """--out results/ (a folder, not there yet) would become a file named results."""
    result = run_cli(*command, "--out", f"{tmp_path}/results/")
    assert_user_error(result, "results/ ends in /", "give the file's name")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["g.fa.bz2", "calls.bed.XZ"])
def test_an_output_named_for_a_compression_not_written_is_refused(tmp_path, name):
    """A plain file under a .bz2 name is one that bzcat, and any tool going by the name, cannot read."""
    result = run_cli("download", GENOMES / "phiX174_NC_001422.gbk.gz", "--out", tmp_path / name)
    assert_user_error(result, f"{name}: outputs are not written", "bgzip-compressed when named .gz")
    assert list(tmp_path.iterdir()) == []


def test_output_under_a_file_is_refused(tmp_path):
    genome = tmp_path / "g.fa"
    genome.write_text(">c\n" + "ACGT" * 500 + "\n")
    assert_user_error(run_cli("windows", "--genome", genome, "--out", genome / "w.csv"), "a file is in the way")


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_failed_write_takes_away_the_folders_it_made(tmp_path, kind):
    """A run that fails while writing leaves the disk as it found it: no half-written output and
    none of the new folders made to hold it; folders that were there before stay."""
    from dnabert2.outputs import atomic_folder, atomic_output

    out = tmp_path / "made" / "deeper" / "out"
    with pytest.raises(RuntimeError):
        with (atomic_output(out) if kind == "file" else atomic_folder(out)) as tmp:
            (tmp if kind == "file" else tmp / "part").write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with (atomic_output(out) if kind == "file" else atomic_folder(out)) as tmp:
        (tmp if kind == "file" else tmp / "part").write_text("whole")
    assert (out if kind == "file" else out / "part").read_text() == "whole"


def test_standard_output_is_written_once_the_command_succeeds_and_a_reader_may_stop_early(tmp_path):
    """Output to - (standard output) is held until the command succeeds, so a failure writes nothing
    there, as it leaves no file; a reader that stops early (| head) ends the command as it ends a
    shell's tools (exit 141, SIGPIPE's), with no traceback."""
    program = ("import sys\nfrom dnabert2.outputs import standard_output\n"
               "with standard_output('-') as out:\n"
               "    print('made', out.name)\n"
               "    out.write_text('line\\n' * 100_000)\n"
               "    if sys.argv[1] == 'fail': raise SystemExit(1)\n")
    for case, want in (("ok", "line\n" * 100_000), ("fail", "")):
        result = subprocess.run([sys.executable, "-c", program, case], capture_output=True, text=True)
        assert result.stdout == want and result.stderr == "made stdout\n"
    piped = subprocess.run(["bash", "-c", f"{sys.executable} -c \"$0\" ok | head -1; echo ${{PIPESTATUS[0]}}", program],
                           capture_output=True, text=True)
    assert piped.stdout == "line\n141\n" and "Traceback" not in piped.stderr, piped.stderr


@pytest.mark.parametrize("option", [["--timeout", "0"], ["--retries", "-1"]])
def test_download_options_out_of_range_are_usage_errors(tmp_path, option):
    result = run_cli("download", "http://127.0.0.1:9/genome.fa.gz", "--out", tmp_path / "g.fa.gz", *option)
    assert result.returncode == 2 and option[0] in result.stderr and "Traceback" not in result.stderr


def test_windows_csv_quotes_contig_names_with_commas(tmp_path):
    genome = tmp_path / "alt.fa"
    genome.write_text(">HLA-A*01:01,alt\n" + "ACGT" * 50 + "\n")
    out = tmp_path / "w.csv"
    assert run_cli("windows", "--genome", genome, "--out", out, "--length", "100", "--stride", "100").returncode == 0
    import csv
    rows = list(csv.DictReader(out.open()))
    assert {r["contig"] for r in rows} == {"HLA-A*01:01,alt"} and len(rows) == 4


def test_frameshift_gaps_are_not_introns(tmp_path):
    """E. coli's RefSeq GFF3 gives prfB (release factor 2, a +1 ribosomal frameshift) as two CDS a base
    apart: no intron, and no splice sites, unless a 1 bp gap is asked to count."""
    annotation, genome = GENOMES / "ecoli_k12_mg1655.gff.gz", GENOMES / "ecoli_k12_mg1655.fna.gz"
    result = run_cli("sites", "--annotation", annotation, "--genome", genome, "--kind", "introns",
                     "--out", tmp_path / "introns.bed")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "introns.bed").read_text() == ""
    assert "1 gap(s) between exons shorter than 20 bp" in result.stderr
    result = run_cli("sites", "--annotation", annotation, "--genome", genome, "--kind", "introns", "--min-intron", 1,
                     "--out", tmp_path / "all.bed")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "all.bed").read_text() == "NC_000913.3\t3036206\t3036207\tintron\t0\t-\n"
    # The worm's introns, 39 bp and longer, all stay.
    for name, extra in (("worm.bed", []), ("every-gap.bed", ["--min-intron", 1])):
        assert run_cli("sites", "--annotation", GENOMES / "ce1pct.gff3.gz", "--genome", GENOMES / "ce1pct.fa.gz",
                       "--kind", "introns", "--out", tmp_path / name, *extra).returncode == 0
    worm = (tmp_path / "worm.bed").read_text()
    assert len(worm.splitlines()) > 900 and worm == (tmp_path / "every-gap.bed").read_text()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_while_the_command_loads_is_one_line(tmp_path, signum):
    """Stopped while its modules import (the first seconds, torch's among them): it was a traceback
    (Ctrl-C), a RecursionError from a half-imported scipy, or a silent death (SIGTERM)."""
    patch = ("import dnabert2.cli as c\nloaded = c.build_parser\n"
             f"def slow(command):\n    os.kill(os.getpid(), {int(signum)})\n    return loaded(command)\n"
             "c.build_parser = slow")
    result = run_patched(patch, "windows", "--genome", GENOMES / "ce1pct.fa.gz", "--window", 100,
                         "--out", tmp_path / "w.fa")
    assert_stopped(result, "windows", signum)
    assert len(result.stderr.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def _killed_before_its_renames(command) -> int:
    """Run `dnabert2 COMMAND`, killed (SIGKILL) when all is written, just before the renames: the most
    it can leave. Returns its process ID."""
    patch = "import dnabert2.outputs as o\ndef killed(path):\n    os.kill(os.getpid(), signal.SIGKILL)\no.share = killed"
    script = f"import os, signal, sys\n{patch}\nfrom dnabert2 import cli\nsys.exit(cli.main(sys.argv[1:]))\n"
    killed = subprocess.Popen([sys.executable, "-c", script, *map(str, command)], stderr=subprocess.DEVNULL)
    assert killed.wait() == -signal.SIGKILL
    return killed.pid


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_what_a_killed_run_left_the_next_run_removes(tmp_path, kind):
    """SIGKILL (the OOM killer, a scheduler past its grace time) gives a run no chance to remove its
    temporary files, a genome's worth of track or a model perhaps: the next run of that output removes
    them, and leaves those of a run still going, or of one on another machine (or in another
    container's process-ID namespace) sharing the folder."""
    out = tmp_path / ("w.bed.gz" if kind == "file" else "task")
    command = (["windows", "--genome", GENOMES / "ce1pct.fa.gz", "--window", 1000, "--format", "bed", "--out", out]
               if kind == "file" else
               ["tasks", "splice", "--dense", "--genome", GENOMES / "ce1pct.fa.gz", "--annotation",
                GENOMES / "ce1pct.gff3.gz", "--core", 1000, "--flank", 100, "--out", out])
    pid = _killed_before_its_renames(command)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left and all(f".{pid}." in name for name in left), left
    with subprocess.Popen(["sleep", "60"]) as running:
        others = [tmp_path / left[0].replace(f".{pid}.", f".{running.pid}."),
                  tmp_path / left[0].replace(f".{ORIGIN}.", ".another-node.")]
        for other in others:
            other.write_text("")
        result = run_cli(*command)
        running.kill()
    assert result.returncode == 0, result.stderr
    assert sorted(p for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(others)
    assert out.exists()


@pytest.mark.parametrize("nohup", [False, True])
def test_a_hangup_stops_a_run_cleanly_unless_it_runs_under_nohup(tmp_path, nohup):
    """SIGHUP (the terminal or ssh session closed) killed the run without a word, its temporary output
    left beside --out; a run started under nohup, which ignores it, must go on."""
    patch = (("signal.signal(signal.SIGHUP, signal.SIG_IGN)\n" if nohup else "")
             + "import importlib\nw = importlib.import_module('dnabert2.sequences.windows')\ntiled = w.genome_windows\n"
             "def hung_up(*args, **kwargs):\n    for i, window in enumerate(tiled(*args, **kwargs)):\n"
             "        if i == 10:\n            os.kill(os.getpid(), signal.SIGHUP)\n        yield window\n"
             "w.genome_windows = hung_up")
    result = run_patched(patch, "windows", "--genome", GENOMES / "ce1pct.fa.gz", "--window", 100,
                         "--out", tmp_path / "w.fa.gz")
    if nohup:
        assert result.returncode == 0, result.stderr
        assert [p.name for p in tmp_path.iterdir()] == ["w.fa.gz"]
    else:
        assert_stopped(result, "windows", signal.SIGHUP)
        assert not list(tmp_path.iterdir())


def test_stops_after_the_run_finished_leave_its_exit_code(tmp_path):
    """SIGTERM arriving while the finished program shuts down (a job's stop racing its exit) killed it
    (exit -15 after its outputs were written): Python sets its handlers back to the default action as
    it shuts down, so the signals are now ignored outright."""
    patch = ("import subprocess, time\nimport dnabert2.cli as c\nrun = c.main\n"
             "def main(argv):\n    code = run(argv)\n"
             "    print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, file=sys.stderr)\n"
             "    subprocess.Popen([sys.executable, '-c', 'import os, signal, time\\n'\n"
             "                      f'for _ in range(300):\\n    os.kill({os.getpid()}, signal.SIGTERM)\\n'\n"
             "                      '    time.sleep(0.002)'], stderr=subprocess.DEVNULL)\n"
             "    time.sleep(0.05)\n    return code\n"
             "c.main = main")
    result = run_patched(patch, "windows", "--genome", GENOMES / "ce1pct.fa.gz", "--window", 100,
                         "--out", tmp_path / "w.fa")
    assert result.returncode == 0 and result.stderr.splitlines()[-1] == "True", result.stderr
    assert (tmp_path / "w.fa").stat().st_size > 0


def test_an_error_raised_while_a_stop_unwinds_is_the_stop(tmp_path):
    """A SIGTERM sent to the whole job (as SLURM sends it) kills a DataLoader worker too, and torch
    raises that while the run unwinds: the exit is the stop's, not a traceback with exit 1."""
    patch = ("import importlib\nw = importlib.import_module('dnabert2.sequences.windows')\n"
             "def run(args):\n"
             "    try:\n        os.kill(os.getpid(), signal.SIGTERM)\n"
             "    except KeyboardInterrupt:\n"
             "        raise RuntimeError('DataLoader worker (pid 1) is killed by signal: Terminated.')\n"
             "w.run = run")
    result = run_patched(patch, "windows", "--genome", GENOMES / "ce1pct.fa.gz", "--window", 100,
                         "--out", tmp_path / "w.fa")
    assert_stopped(result, "windows", signal.SIGTERM)


def test_a_stop_waits_for_a_held_block_and_later_signals_leave_the_cleanup_whole(tmp_path):
    """held() (renames that put outputs in place, removing a temporary folder) runs whole; the stop
    comes after it, once: further signals do not cut short the cleanup it starts."""
    script = ("import os, signal\nfrom dnabert2 import stops\nstops.install()\n"
              "try:\n"
              "    with stops.held():\n        os.kill(os.getpid(), signal.SIGTERM)\n        print('block done')\n"
              "except stops.Terminated:\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n    os.kill(os.getpid(), signal.SIGINT)\n"
              "    print('cleanup done')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split() == ["block", "done", "cleanup", "done"], result.stderr


def test_a_stop_with_a_worker_death_pending_is_one_stop():
    """SLURM's SIGTERM kills the DataLoader workers too: the main process may find their SIGCHLD pending
    beside its own SIGTERM. torch's SIGCHLD handler raises a worker's death; Python reported a signal
    pending when its handler became SIG_IGN or SIG_DFL as 'ignored due to race condition'."""
    script = ("import os, signal\nfrom dnabert2 import stops\nstops.install()\n"
              "def torch_like(signum, frame):\n    raise RuntimeError('DataLoader worker is killed by signal')\n"
              "signal.signal(signal.SIGCHLD, torch_like)\n"
              "both = {signal.SIGTERM, signal.SIGCHLD, signal.SIGINT}\n"
              "signal.pthread_sigmask(signal.SIG_BLOCK, both)\n"
              "for signum in both:\n    os.kill(os.getpid(), signum)\n"
              "try:\n    signal.pthread_sigmask(signal.SIG_UNBLOCK, both)\n    for _ in range(1000):\n        pass\n"
              "except KeyboardInterrupt as stop:\n    print(type(stop).__name__)\n"
              "for _ in range(1000):\n    pass\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.split() == ["KeyboardInterrupt"], result.stderr
    assert result.stderr == ""


def test_outputs_written_together_appear_together_or_not_at_all(tmp_path):
    from dnabert2.errors import UserError
    from dnabert2.outputs import atomic_output, atomic_text, written_together

    with pytest.raises(RuntimeError):
        with written_together():
            with atomic_text(tmp_path / "a.txt") as handle:
                handle.write("a")
            with atomic_text(tmp_path / "new" / "deep" / "b.txt") as handle:
                handle.write("b")
            raise RuntimeError("stopped between them and the next")
    assert not list(tmp_path.iterdir())  # nor their temporary files, nor the folders made for them
    with pytest.raises(UserError, match="written twice"):
        with written_together():
            for _ in range(2):
                with atomic_text(tmp_path / "a.txt") as handle:
                    handle.write("a")
    assert not list(tmp_path.iterdir())
    with written_together():
        with atomic_text(tmp_path / "a.txt") as handle:
            handle.write("a")
        assert not (tmp_path / "a.txt").exists()
        with atomic_output(tmp_path / "b.txt", ".idx") as tmp:
            tmp.write_text("b")
            tmp.with_name(tmp.name + ".idx").write_text("i")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "b.txt.idx"]
