"""Genome-wide scanning: FASTA and BAM input, BED/bedGraph/summary outputs, chunking, scan-eval and bad
input. The classifier is a tiny random model with a sharpened head (scores vary from window to window;
mechanics, not biology); genomes, reads and annotations are the real ones in ../shared/data."""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pysam
import pytest
import torch
from Bio.Seq import reverse_complement
from conftest import (DATA, GENOMES, TOKENIZER, assert_stopped, assert_user_error, run_cli, run_patched,
                      scan_classifier)

from dnabert2.model import build_model, preset, save_model
from dnabert2.sequences import Fasta, aligned_reads, open_alignments, read_annotation
from dnabert2.tokenizer import load_tokenizer

SIRV = DATA / "bam" / "sirv_ont"
SIRV_BAM = SIRV / "pcs109_5k_spliced.bam"
SIRV_FASTA = SIRV / "SIRV_150601a.fasta.gz"


@pytest.fixture(scope="module")
def splice_model(tmp_path_factory):
    return scan_classifier(tmp_path_factory.mktemp("model") / "splice", 400)


@pytest.fixture(scope="module")
def short_model(tmp_path_factory):
    """60 bp windows, site at the centre: short enough for 35 bp-plus reads and quick scans."""
    return scan_classifier(tmp_path_factory.mktemp("model") / "short", 60, task="custom", labels=("no", "yes"))


def read_bed(path):
    rows = []
    for line in path.read_text().splitlines():
        f = line.split("\t")
        rows.append((f[0], int(f[1]), int(f[2]), f[3], int(f[4]), f[5], int(f[6]), int(f[7]), int(f[8]), int(f[9])))
    return rows


def assert_valid_bed(rows, lengths: dict[str, int], labels):
    order = {c: i for i, c in enumerate(lengths)}
    keys = [(order[r[0]], r[1], r[2]) for r in rows]
    assert keys == sorted(keys), "calls are not sorted in genome order"
    for contig, start, end, name, score, strand, support, *_, peak in rows:
        assert 0 <= start < end <= lengths[contig]
        assert name in labels and strand in "+-" and 0 <= score <= 1000 and support >= 1
        assert 0 <= peak < end - start


def read_bedgraph(folder) -> dict[str, list]:
    """A scan's bedGraph folder: track name (label and strand) → intervals, one file per track."""
    tracks = {}
    for path in sorted(folder.glob("*.bedgraph")):
        header, *lines = path.read_text().splitlines()
        name = header.split('name="')[1].split('"')[0]
        assert path.name == f"{name[:-1]}.{'plus' if name[-1] == '+' else 'minus'}.bedgraph"
        tracks[name] = [(c, int(s), int(e), float(v)) for c, s, e, v in (line.split("\t") for line in lines)]
    return tracks


def folder_text(folder) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def scan(model, out, *args):
    result = run_cli("scan", "--model", model, "--out", out, "--summary", out.with_suffix(".json"), "--workers", 0, *args)
    assert result.returncode == 0, result.stderr
    return read_bed(out), json.loads(out.with_suffix(".json").read_text())


def test_fasta_scan_writes_sorted_calls_bedgraph_and_summary(splice_model, ce1pct, tmp_path):
    regions = tmp_path / "regions.bed"
    regions.write_text("II\t40000\t61000\nI\t0\t20000\nI\t15000\t30000\n")  # unsorted, overlapping
    rows, summary = scan(splice_model, tmp_path / "calls.bed", "--fasta", ce1pct, "--regions", regions,
                         "--stride", 50, "--threshold", 0.7, "--bedgraph", tmp_path / "scores.bedgraph")
    lengths = Fasta(ce1pct).lengths
    assert_valid_bed(rows, lengths, {"donor", "acceptor"})
    assert rows and {r[5] for r in rows} == {"+", "-"} and {r[3] for r in rows} == {"donor", "acceptor"}
    assert all((r[0] == "I" and r[2] <= 30000) or (r[0] == "II" and 40000 <= r[1] and r[2] <= 61000) for r in rows)
    # Merged regions I:0-30000 and II:40000-61000, windows every 50 bp plus one flush with each end.
    per_strand = (30000 - 400) // 50 + 1 + (21000 - 400) // 50 + 1
    assert summary["windows"] == 2 * per_strand and summary["windows_skipped_for_n"] == 0
    assert summary["calls"] == {label: sum(r[3] == label for r in rows) for label in ("donor", "acceptor")}
    assert summary["bp_per_second"] > 0 and summary["mode"] == "fasta"

    tracks = read_bedgraph(tmp_path / "scores.bedgraph")
    assert sorted(tracks) == ["acceptor+", "acceptor-", "donor+", "donor-"]
    for name, intervals in tracks.items():
        assert len(intervals) == per_strand
        for (c1, s1, e1, _), (c2, s2, e2, _) in zip(intervals, intervals[1:]):
            assert s1 < e1 <= lengths[c1] and (c1, s1) < (c2, s2) or c1 != c2
            assert c1 != c2 or e1 <= s2, f"{name}: overlapping bedGraph intervals"
    # Each call's score is its best window's, and that window's site is the peak.
    values = {(name[:-1], name[-1], c, s): v for name, intervals in tracks.items() for c, s, _, v in intervals}
    for contig, start, end, name, score, strand, support, _, _, peak in rows:
        assert abs(values[(name, strand, contig, start + peak)] * 1000 - score) <= 1.5
    # The splice geometry: a donor window's site is its base 200 on its strand (the intron's first base).
    donors = [r for r in rows if r[3] == "donor" and r[6] == 1]
    assert all(r[9] == (200 if r[5] == "+" else 199) for r in donors)


def test_window_scan_tracks_stay_inside_the_scanned_regions(splice_model, ce1pct, tmp_path):
    """A window's value reaches to the next window's site; the last one's reached a stride past its site,
    beyond the region's end (a donor 200 bp into the last 400 bp window: 200 bp over bases no window
    read), which `bedtools intersect -v` against the regions showed."""
    regions = tmp_path / "regions.bed"
    regions.write_text("IV\t57000\t60000\nV\t1000\t2500\n")
    scan(splice_model, tmp_path / "calls.bed", "--fasta", ce1pct, "--regions", regions, "--stride", 400,
         "--threshold", 0.5, "--bedgraph", tmp_path / "tracks")
    ends = {"IV": 60000, "V": 2500}
    for name, intervals in read_bedgraph(tmp_path / "tracks").items():
        assert max(e for c, _, e, _ in intervals if c == "IV") == 60000, name
        assert all(e <= ends[c] for c, _, e, _ in intervals), name
    # A stride longer than the window leaves bases between windows that none read: no value there.
    scan(splice_model, tmp_path / "sparse.bed", "--fasta", ce1pct, "--regions", regions, "--stride", 1000,
         "--threshold", 0.5, "--bedgraph", tmp_path / "sparse")
    read = [(c, s, s + 400) for c, a, b in (("IV", 57000, 60000), ("V", 1000, 2500))
            for s in sorted({*range(a, b - 400 + 1, 1000), b - 400})]
    for name, intervals in read_bedgraph(tmp_path / "sparse").items():
        assert all(any(c == rc and rs <= s and e <= re_ for rc, rs, re_ in read) for c, s, e, _ in intervals), name


def test_a_summary_counts_every_label_called_even_where_none_is(splice_model, ce1pct, tmp_path):
    """A scan without calls summarised `"calls": {}`: a reader's summary["calls"]["donor"] failed."""
    regions = tmp_path / "regions.bed"
    regions.write_text("I\t1000\t4000\n")
    common = ["--fasta", ce1pct, "--regions", regions, "--threshold", 1.0]
    rows, summary = scan(splice_model, tmp_path / "none.bed", *common)
    assert rows == [] and summary["calls"] == {"donor": 0, "acceptor": 0}
    for i in range(2):
        scan(splice_model, tmp_path / f"part{i}.bed", *common, "--chunk", f"{i}/2")
    result = run_cli("scan-gather", tmp_path / "part0.json", tmp_path / "part1.json", "--out", tmp_path / "all.bed",
                     "--summary", tmp_path / "all.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "all.json").read_text())["calls"] == {"donor": 0, "acceptor": 0}
    assert "all.bed: no calls" in result.stdout
    _, some = scan(splice_model, tmp_path / "donors.bed", *common[:-1], 0.5, "--labels", "donor")
    assert list(some["calls"]) == ["donor"] and some["calls"]["donor"] > 0


@pytest.mark.parametrize("labels", [("none", "site", "site"), ("none", "site A", "site/A")])
def test_labels_that_would_share_calls_and_track_files_are_refused(ce1pct, tmp_path, labels):
    """Two labels of one name (a hand-written task.json) scanned into one label's calls and one track
    file, its rows twice over; two names of one file name wrote one over the other."""
    model = scan_classifier(tmp_path / "model", 60, task="custom", labels=labels)
    result = run_cli("scan", "--model", model, "--fasta", ce1pct, "--contigs", "MtDNA", "--out", tmp_path / "c.bed",
                     "--bedgraph", tmp_path / "tracks")
    assert_user_error(result, f"labels {labels[1]!r} and {labels[2]!r} would share calls and track files")
    assert not (tmp_path / "c.bed").exists() and not (tmp_path / "tracks").exists()


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "not the task.json of a task built by `dnabert2 tasks` (a JSON object)"),
    # Each of these was a TypeError or AttributeError traceback, or (dense) a window model scanned as one.
    ('{"task": ["splice"]}', """'task' must be a task kind's name, as "splice", not ["splice"]"""),
    ('{"labels": ["none", "site"]}', "'labels' must map each class number to its name"),
    ('{"labels": {"0": "none", "2": "site"}}', "'labels' must map each class number to its name"),
    ('{"window_bp": "60"}', "'window_bp' must be a whole number of bp, 1 or more, not \"60\""),
    ('{"dense": "yes"}', "'dense' must be true or false"),
])
def test_a_task_json_that_is_no_description_is_one_line_error(ce1pct, tmp_path, content, message):
    """Every reader of task.json (scan, scan-eval --held-out, finetune, evaluate) reads it one way."""
    model = scan_classifier(tmp_path / "model", 60, task="custom", labels=("none", "site"))
    (model / "task.json").write_text(content)
    result = run_cli("scan", "--model", model, "--fasta", ce1pct, "--contigs", "MtDNA", "--out", tmp_path / "c.bed")
    assert_user_error(result, f"model/task.json: {message}")
    assert not (tmp_path / "c.bed").exists()
    calls = tmp_path / "calls.bed"
    calls.write_text("I\t100\t101\tdonor\t900\t+\t1\t-1\t-1\t0\n")
    for held_out, message in ((model, message), (tmp_path, "task.json: no such file")):
        result = run_cli("scan-eval", "--calls", calls, "--annotation", GENOMES / "ce1pct.gff3.gz",
                         "--held-out", held_out, "--out", tmp_path / "eval.json")
        assert_user_error(result, message)
        assert not (tmp_path / "eval.json").exists()


def test_merge_joins_windows_that_touch_as_bedtools_merge_does(splice_model, ce1pct, tmp_path):
    # Windows laid end to end (stride = the 400 bp window), every one a call at threshold 0.
    regions = tmp_path / "regions.bed"
    regions.write_text("I\t1000\t3000\n")
    rows, summary = scan(splice_model, tmp_path / "calls.bed", "--fasta", ce1pct, "--regions", regions,
                         "--stride", 400, "--threshold", 0, "--merge")
    assert summary["windows"] == 2 * 5
    assert sorted((r[0], r[1], r[2], r[3], r[5], r[6]) for r in rows) == sorted(
        ("I", 1000, 3000, label, strand, 5) for label in ("donor", "acceptor") for strand in "+-")


def scan_in_chunks(model, folder, common, chunks=3):
    """A scan whole and in chunks, the chunks gathered: (whole calls, chunks' calls, chunk summaries)."""
    folder.mkdir()
    whole, _ = scan(model, folder / "whole.bed", *common, "--bedgraph", folder / "whole.bedgraph")
    summaries = []
    for i in range(chunks):
        out = folder / f"chunk{i}.bed"
        scan(model, out, *common, "--chunk", f"{i}/{chunks}", "--bedgraph", folder / f"chunk{i}.bedgraph")
        summaries.append(out.with_suffix(".json"))
    parts = [read_bed(folder / f"chunk{i}.bed") for i in range(chunks)]
    assert all(parts), "every chunk should hold some of the calls"
    result = run_cli("scan-gather", *summaries[::-1], "--out", folder / "gathered.bed",
                     "--bedgraph", folder / "gathered.bedgraph", "--summary", folder / "gathered.json")
    assert result.returncode == 0, result.stderr
    assert (folder / "gathered.bed").read_text() == (folder / "whole.bed").read_text()
    assert folder_text(folder / "gathered.bedgraph") == folder_text(folder / "whole.bedgraph")
    gathered = json.loads((folder / "gathered.json").read_text())
    assert gathered["windows"] == sum(json.loads(s.read_text())["windows"] for s in summaries)
    return whole, parts, summaries


@pytest.mark.parametrize("size, stride, reach", [(400, 10, 10300), (400, 1, 2650), (400, 100, 5000), (1000, None, 5000)])
def test_a_chunk_reads_its_neighbours_windows_as_far_as_peaks_reach(size, stride, reach):
    """Window blocks overlap by a window less a stride: counting their spans, a chunk read too few of
    its neighbours' windows, and a stride-1 scan with --min-distance 2250 in 3 chunks called a site that
    one 2,247 bp away suppresses in the whole scan."""
    from dnabert2.scan.plan import blocks, chunk, neighbours

    every = blocks([("I", 0, 60000)], size, stride, 64 if stride else 4)
    for i in range(1, 4):
        mine = chunk(every, i, 5)
        before, after = neighbours(every, mine, reach)
        first, last = mine[0].starts[0], mine[-1].starts[-1]
        assert before[0].starts[0] <= max(0, first - reach) and after[-1].starts[-1] >= min(last + reach, every[-1].starts[-1])


@pytest.mark.parametrize("size, stride", [(300, 75), (300, 300), (100, 250), (1000, None)])
def test_blocks_count_the_bases_their_windows_read_once(size, stride):
    """A summary's bases (and bp/s) are the bases windows read: overlaps once, and with a stride longer
    than a window, not the gaps between windows, which were counted as read. Regions of 1,234 bp, whose
    last window lies flush with the end (a dense scan's last core is cut there)."""
    from dnabert2.scan.plan import blocks

    regions = [("I", 0, 1234), ("I", 5000, 6234), ("II", 7, 1241)]
    read = set()
    for block in blocks(regions, size, stride, 3):
        for start in block.starts:
            read |= {(block.grid.contig, b) for b in range(start, min(start + size, block.grid.end))}
    assert sum(block.bases for block in blocks(regions, size, stride, 3)) == len(read)
    assert (len(read) < 3 * 1234) == (stride is not None and stride > size)


def test_chunks_gather_into_the_same_calls_and_scores(splice_model, ce1pct, tmp_path):
    common = ["--fasta", ce1pct, "--contigs", "III", "MtDNA", "--stride", 100, "--threshold", 0.55]
    # Merged calls: one spanning a chunk end is cut in two by the chunks and whole again after gathering.
    whole, parts, _ = scan_in_chunks(splice_model, tmp_path / "merged", [*common, "--merge"])
    assert len(whole) < sum(map(len, parts))
    # Peaks: each chunk calls its own, its neighbours' scores in view, so none is called twice or lost.
    whole, parts, summaries = scan_in_chunks(splice_model, tmp_path / "peaks", common)
    assert len(whole) == sum(map(len, parts))
    tmp_path = tmp_path / "peaks"

    # A summary named .gz is bgzip-compressed, as every text output so named, and read back as such.
    result = run_cli("scan-gather", *summaries, "--out", tmp_path / "top.bed", "--top-k", 2, "--summary",
                     tmp_path / "top.json.gz")
    assert result.returncode == 0, result.stderr
    with gzip.open(tmp_path / "top.json.gz", "rt") as handle:
        assert json.load(handle)["top_k"] == 2
    assert run_cli("scan-gather", tmp_path / "top.json.gz", "--out", tmp_path / "again.bed").returncode == 0
    assert (tmp_path / "again.bed").read_text() == (tmp_path / "top.bed").read_text()
    top = read_bed(tmp_path / "top.bed")
    for label in ("donor", "acceptor"):
        best = sorted((r[4] for r in whole if r[3] == label), reverse=True)[:2]
        assert sorted((r[4] for r in top if r[3] == label), reverse=True) == best
    scan(splice_model, tmp_path / "whole-top.bed", *common, "--top-k", 2)
    assert (tmp_path / "top.bed").read_text() == (tmp_path / "whole-top.bed").read_text()

    other = tmp_path / "other.bed"
    scan(splice_model, other, "--fasta", ce1pct, "--contigs", "V", "--stride", 100, "--threshold", 0.55,
         "--chunk", "1/3")
    assert_user_error(run_cli("scan-gather", summaries[0], summaries[2], other.with_suffix(".json"),
                              "--out", tmp_path / "mixed.bed"), "differ in regions")
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    assert_user_error(run_cli("scan-gather", broken, "--out", tmp_path / "mixed.bed"), "not a summary")
    assert_user_error(run_cli("scan-gather", tmp_path / "gone.json", "--out", tmp_path / "mixed.bed"),
                      "gone.json: no such file")
    quarter = tmp_path / "quarter.bed"  # said to be "chunks [0, 1, 2] given; … needs each of 0..2 once"
    scan(splice_model, quarter, *common, "--chunk", "1/4")
    assert_user_error(run_cli("scan-gather", summaries[0], quarter.with_suffix(".json"), summaries[2],
                              "--out", tmp_path / "mixed.bed"), "the chunks are of scans split 3 and 4 ways")
    unscored = tmp_path / "unscored.bed"
    scan(splice_model, unscored, *common, "--chunk", "0/1")
    assert_user_error(run_cli("scan-gather", unscored.with_suffix(".json"), "--out", tmp_path / "mixed.bed",
                              "--bedgraph", tmp_path / "mixed.bedgraph"), "without --bedgraph")
    assert not list(tmp_path.glob("mixed*"))

    missing = run_cli("scan-gather", *summaries[:2], "--out", tmp_path / "partial.bed")
    assert_user_error(missing, "0..2")
    assert not (tmp_path / "partial.bed").exists()
    # A chunk's calls written over by a later run at another threshold, its summary not: refused, not
    # gathered as the chunk's own.
    calls = tmp_path / "chunk1.bed"
    kept = calls.read_text()
    assert run_cli("scan", "--model", splice_model, "--out", calls, "--workers", 0, *common[:-1], 0.9, "--chunk",
                   "1/3").returncode == 0
    assert calls.read_text() != kept
    assert_user_error(run_cli("scan-gather", *summaries, "--out", tmp_path / "stale.bed"),
                      "chunk1.bed: not the calls of the scan", "scan the chunk again")
    assert not (tmp_path / "stale.bed").exists()
    calls.write_text(kept)
    # Outputs onto what gathering reads (a chunk's calls, its bedGraph folder): refused, the chunk kept.
    tracks = summaries[1].parent / json.loads(summaries[1].read_text())["bedgraph_dir"]
    bedgraphs = folder_text(tracks)
    for outputs, words in ((["--out", calls], ["would overwrite the input"]),
                           (["--out", tmp_path / "onto.bed", "--bedgraph", tracks], ["a chunk's bedGraph folder"])):
        assert_user_error(run_cli("scan-gather", *summaries, *outputs), *words)
        assert calls.read_text() == kept and folder_text(tracks) == bedgraphs and not (tmp_path / "onto.bed").exists()
    # A chunk's bedGraph folder gone (removed as an intermediate too early): refused, not tracks without its bases.
    folder = summaries[1].parent / json.loads(summaries[1].read_text())["bedgraph_dir"]
    shutil.rmtree(folder)
    assert_user_error(run_cli("scan-gather", *summaries, "--out", tmp_path / "lost.bed", "--bigwig",
                              tmp_path / "lost.bigwig"), str(folder), "bedGraph folder is missing")
    assert not list(tmp_path.glob("lost*"))


STOPPED_WHILE_WRITING = {
    # the summary and tracks written, the calls not yet: they stood, beside an earlier run's calls, and
    # scan-gather joined those as this run's
    "after the summary": ("import dnabert2.scan as scan\nwritten = scan.write_json\n"
                          "def stopped(*args):\n    written(*args)\n    os.kill(os.getpid(), signal.SIGTERM)\n"
                          "scan.write_json = stopped"),
    # while the calls are written as plain BED, to be bgzipped: it stayed beside the output
    "writing the calls": ("import dnabert2.outputs as outputs\nwriter = outputs.TabSeparated\n"
                          "def stopped(handle):\n    os.kill(os.getpid(), signal.SIGTERM)\n"
                          "    return writer(handle)\n"
                          "outputs.TabSeparated = stopped"),
}


@pytest.mark.parametrize("when", STOPPED_WHILE_WRITING)
def test_a_scan_stopped_while_writing_leaves_none_of_its_outputs(splice_model, ce1pct, tmp_path, when):
    result = run_patched(STOPPED_WHILE_WRITING[when], "scan", "--model", splice_model, "--fasta", ce1pct,
                         "--contigs", "MtDNA", "--window", 100, "--out", tmp_path / "calls.bed.gz", "--summary",
                         tmp_path / "calls.json", "--bedgraph", tmp_path / "tracks", "--workers", 0)
    assert_stopped(result, "scan", signal.SIGTERM)
    assert not list(tmp_path.iterdir())  # nor their temporary names


def living(pid: int) -> bool:
    """Whether a process runs (a zombie no one reaped, here or in a container, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not Path(f"/proc/self/task/{os.getpid()}/children").is_file(),
                    reason="reads a process's children from /proc (Linux, CONFIG_PROC_CHILDREN)")
def test_a_scan_killed_outright_leaves_no_worker_behind(splice_model, ce1pct, tmp_path):
    """SIGKILL (the OOM killer, a cluster's grace period spent) gives the run no time to stop its
    DataLoader workers: one left writing to the pipe no one read blocked for ever, holding its memory."""
    process = subprocess.Popen([sys.executable, "-m", "dnabert2", "scan", "--model", splice_model, "--fasta", ce1pct,
                                "--window", "100", "--workers", "1", "--out", tmp_path / "calls.bed"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children, workers = Path(f"/proc/{process.pid}/task/{process.pid}/children"), []
    try:
        while not workers and process.poll() is None:
            workers = [int(pid) for pid in children.read_text().split()]
            time.sleep(0.1)
        time.sleep(3)  # the worker runs ahead, filling the pipe
        running = process.poll() is None  # else the workers ended with the scan, as they always did
    finally:
        process.kill()
        process.wait()
    assert workers and running, "the scan ended before it could be killed"
    deadline = time.monotonic() + 10
    while any(map(living, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in workers if living(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left


@pytest.mark.skipif(not Path(f"/proc/self/task/{os.getpid()}/children").is_file(),
                    reason="reads a process's children from /proc (Linux, CONFIG_PROC_CHILDREN)")
def test_a_loader_worker_killed_is_said_in_one_line(splice_model, ce1pct, tmp_path):
    """The OOM killer takes a DataLoader worker, not the scan: torch's RuntimeError was a traceback, and
    about one kill in eight, mid-batch, left the scan hanging."""
    process = subprocess.Popen([sys.executable, "-m", "dnabert2", "scan", "--model", splice_model, "--fasta", ce1pct,
                                "--window", "100", "--workers", "1", "--out", tmp_path / "calls.bed"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children, workers = Path(f"/proc/{process.pid}/task/{process.pid}/children"), []
    while not workers and process.poll() is None:
        workers = [int(pid) for pid in children.read_text().split()]
        time.sleep(0.05)
    assert workers, "the scan ended before its worker could be killed"
    os.kill(workers[0], signal.SIGKILL)
    try:  # a worker killed while writing a batch left the scan waiting for the rest of it for good
        stderr = process.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        said = process.communicate()[1].strip().splitlines()[-3:]
        raise AssertionError(f"the scan still waits for its killed worker after 2 minutes; it said {said}") from None
    assert_user_error(subprocess.CompletedProcess(process.args, process.returncode, "", stderr),
                      "a data-loading worker (--workers)", "out of memory? run again with fewer --workers")
    assert not (tmp_path / "calls.bed").exists()


def test_tracks_and_calls_that_genome_tools_read(splice_model, ce1pct, tmp_path):
    """One bedGraph per label and strand (bedtools merges each), the same as bigWig (pyBigWig reads the
    values back), and calls bgzip-compressed with a tabix index."""
    import pyBigWig

    calls = tmp_path / "calls.bed.gz"
    result = run_cli("scan", "--model", splice_model, "--fasta", ce1pct, "--contigs", "IV", "V", "--stride", 200,
                     "--threshold", 0.6, "--out", calls, "--bedgraph", tmp_path / "bg", "--bigwig", tmp_path / "bw",
                     "--summary", tmp_path / "s.json", "--workers", 0)
    assert result.returncode == 0, result.stderr
    tracks = read_bedgraph(tmp_path / "bg")
    assert sorted(p.name for p in (tmp_path / "bw").iterdir()) == [
        "acceptor.minus.bw", "acceptor.plus.bw", "donor.minus.bw", "donor.plus.bw"]
    lengths = Fasta(ce1pct).lengths
    with pyBigWig.open(str(tmp_path / "bw" / "donor.plus.bw")) as bigwig:
        assert bigwig.chroms() == lengths
        for contig in ("IV", "V"):
            stored = [(contig, s, e, v) for s, e, v in bigwig.intervals(contig)]
            expected = [t for t in tracks["donor+"] if t[0] == contig]
            assert [t[:3] for t in stored] == [t[:3] for t in expected]
            assert max(abs(a[3] - b[3]) for a, b in zip(stored, expected)) < 1e-6
    plain = [line.split("\t") for line in gzip.decompress(calls.read_bytes()).decode().splitlines()]
    assert plain and (tmp_path / "calls.bed.gz.tbi").is_file()
    with pysam.TabixFile(str(calls)) as indexed:
        assert [row.split("\t") for row in indexed.fetch("V", 0, 100_000)] == [
            r for r in plain if r[0] == "V" and int(r[1]) < 100_000]
    assert json.loads((tmp_path / "s.json").read_text())["calls_file"] == "calls.bed.gz"
    if shutil.which("bedtools") is None:
        pytest.skip("bedtools is not installed (apt-get install bedtools): the checks above ran without it")
    for path in (tmp_path / "bg").iterdir():
        merged = subprocess.run(["bedtools", "merge", "-i", str(path)], capture_output=True, text=True)
        assert merged.returncode == 0 and merged.stdout, merged.stderr
    near = subprocess.run(["bedtools", "intersect", "-u", "-a", str(calls), "-b", str(tmp_path / "bg" /
                                                                                      "donor.plus.bedgraph")],
                          capture_output=True, text=True)
    assert near.returncode == 0 and near.stdout, near.stderr


def test_track_folders_hold_tracks_only(splice_model, ce1pct, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    common = ["scan", "--model", splice_model, "--fasta", ce1pct, "--contigs", "MtDNA", "--window", 100,
              "--out", tmp_path / "c.bed", "--workers", 0]
    assert_user_error(run_cli(*common, "--bedgraph", tmp_path / "mine"), "notes.txt", "not bedgraph tracks")
    assert_user_error(run_cli(*common, "--bedgraph", tmp_path / "t", "--bigwig", tmp_path / "t"),
                      "a folder of its own")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me" and not (tmp_path / "t").exists()


def test_top_k_breaks_ties_by_genome_position_whatever_the_input_order():
    from dnabert2.scan.calls import Call, top

    order = {"I": 0, "II": 1}
    calls = [Call(c, s, s + 10, "donor", score, "+", 1, s) for c, s, score in
             [("II", 5, 900), ("I", 50, 800), ("I", 20, 800), ("II", 1, 800), ("I", 90, 700)]]
    for shuffled in (calls, calls[::-1], calls[2:] + calls[:2]):
        assert [(c.contig, c.start) for c in top(shuffled, 3, order)] == [("II", 5), ("I", 20), ("I", 50)]


def test_regions_shorter_than_a_window_are_named_not_skipped_silently(short_model, ce1pct, tmp_path):
    regions = tmp_path / "regions.bed"
    regions.write_text("I\t1000\t1040\nI\t5000\t5300\n")  # 40 bp, shorter than the 60 bp windows; 300 bp
    result = run_cli("scan", "--model", short_model, "--fasta", ce1pct, "--regions", regions, "--out",
                     tmp_path / "c.bed", "--summary", tmp_path / "c.json", "--workers", 0, "--threshold", 0)
    assert result.returncode == 0, result.stderr
    assert "1 region(s) shorter than the 60 bp window are not scanned (I:1000-1040)" in result.stderr
    summary = json.loads((tmp_path / "c.json").read_text())
    # scan-eval counts annotated sites in the summary's regions: not in one left unscanned.
    assert summary["bases"] == 300 and summary["regions"] == [["I", 5000, 5300]]
    # Every region too short: an empty BED with exit 0 would pass for a scan that found nothing.
    regions.write_text("I\t1000\t1040\nMtDNA\t0\t50\n")
    result = run_cli("scan", "--model", short_model, "--fasta", ce1pct, "--regions", regions, "--out",
                     tmp_path / "none.bed", "--summary", tmp_path / "none.json", "--workers", 0)
    assert_user_error(result, "every region is shorter than the 60 bp window (the longest, 50 bp)")
    assert not list(tmp_path.glob("none.*"))


def test_a_region_past_its_contigs_end_is_refused_naming_the_bed(short_model, ce1pct, tmp_path):
    regions = tmp_path / "regions.bed"
    regions.write_text("I\t1000\t2000\nI\t5000\t999999999\n")
    result = run_cli("scan", "--model", short_model, "--fasta", ce1pct, "--regions", regions, "--out",
                     tmp_path / "c.bed", "--workers", 0)
    assert_user_error(result, f"region I:5000-999999999 (from {regions}) is outside the contig")
    assert not list(tmp_path.glob("c.bed*"))


def test_minus_strand_is_the_reverse_complement(short_model, tmp_path):
    """Scanning a contig and its reverse complement: the + windows of one are the - windows of the
    other, mirrored."""
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        forward = genome.fetch("I", 10000, 10000 + 60 + 20 * 200)  # a whole number of strides
    fasta = tmp_path / "mirror.fa"
    fasta.write_text(f">fwd\n{forward}\n>rev\n{reverse_complement(forward)}\n")
    scan(short_model, tmp_path / "calls.bed", "--fasta", fasta, "--stride", 20, "--bedgraph", tmp_path / "s.bedgraph")
    tracks = read_bedgraph(tmp_path / "s.bedgraph")
    length = len(forward)
    plus = {s - 30: v for c, s, _, v in tracks["yes+"] if c == "fwd"}  # centre site: start + 30 on +
    minus = {s - 29: v for c, s, _, v in tracks["yes-"] if c == "rev"}  # start + 29 on -
    assert len(plus) == len(minus) == 201
    assert max(abs(plus[s] - minus[length - s - 60]) for s in plus) <= 0.002


def test_compiled_scan_gives_the_eager_scan(short_model, cnn, tmp_path):
    # --compile runs the model under torch.compile (Inductor compiles it for the CPU here), a window
    # classifier and a per-base model alike: the same calls, and every score within float rounding.
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        sequence = genome.fetch("II", 20000, 26000)
    fasta = tmp_path / "piece.fa"
    fasta.write_text(f">II\n{sequence}\n")
    for model, args in ((short_model, ("--stride", 30)), (cnn, ())):
        runs = {}
        for name, extra in (("eager", ()), ("compiled", ("--compile",))):
            out = tmp_path / f"{model.name}.{name}.bed"
            rows, summary = scan(model, out, "--fasta", fasta, "--threshold", 0.2, "--bedgraph",
                                 tmp_path / f"{model.name}.{name}", *args, *extra)
            runs[name] = rows, read_bedgraph(tmp_path / f"{model.name}.{name}"), summary["windows"]
        (eager, eager_tracks, windows), (compiled, compiled_tracks, compiled_windows) = runs["eager"], runs["compiled"]
        assert compiled_windows == windows > 0 and eager
        assert [r[:4] + r[5:] for r in compiled] == [r[:4] + r[5:] for r in eager], model.name
        assert all(abs(c[4] - e[4]) <= 1 for c, e in zip(compiled, eager))
        assert compiled_tracks.keys() == eager_tracks.keys()
        for track, values in eager_tracks.items():
            assert [v[:3] for v in compiled_tracks[track]] == [v[:3] for v in values]
            assert max(abs(c[3] - e[3]) for c, e in zip(compiled_tracks[track], values)) <= 0.002


def test_windows_over_n_are_skipped_and_gzip_input_streams(short_model, tmp_path):
    with Fasta(GENOMES / "ce1pct.fa.gz") as genome:
        sequence = genome.fetch("X", 0, 6000)
    gapped = sequence[:2000] + "N" * 500 + sequence[2500:]
    fasta = tmp_path / "gapped.fa.gz"
    with gzip.open(fasta, "wt") as handle:  # plain gzip: no random access, scanned through a bgzip copy
        handle.write(f">chrX\n{gapped}\n")
    rows, summary = scan(short_model, tmp_path / "calls.bed", "--fasta", fasta, "--stride", 60, "--max-n", 0,
                         "--threshold", 0)
    # Windows starting at 1980..2460 touch the N run: nine, on each strand; both counts are per strand.
    assert summary["windows_skipped_for_n"] == 2 * 9 and summary["windows"] == 2 * (100 - 9)
    assert all(r[2] <= 2000 or r[1] >= 2500 for r in rows)
    # Regions of N alone: no window scored, which exit 0 and empty outputs passed for a scan of no sites;
    # a chunk of them is one of a scan whose others score, and gathered the scan is refused alike.
    (tmp_path / "gap.bed").write_text("chrX\t2000\t2500\n")
    common = ["--model", short_model, "--fasta", fasta, "--regions", tmp_path / "gap.bed", "--workers", 0]
    assert_user_error(run_cli("scan", *common, "--out", tmp_path / "gap.bed.gz", "--bedgraph", tmp_path / "gap"),
                      "every window (62) holds more N than --max-n 0.1 allows, so none was scored")
    assert not list(tmp_path.glob("gap.bed.gz*")) and not (tmp_path / "gap").exists()
    for i in range(2):
        result = run_cli("scan", *common, "--chunk", f"{i}/2", "--out", tmp_path / f"c{i}.bed", "--summary",
                         tmp_path / f"c{i}.json")
        assert result.returncode == 0, result.stderr
    assert_user_error(run_cli("scan-gather", tmp_path / "c0.json", tmp_path / "c1.json", "--out",
                              tmp_path / "all.bed"), "so none was scored")
    assert not (tmp_path / "all.bed").exists()


def test_reads_mode_places_sites_on_aligned_bases_with_read_support(short_model, tmp_path):
    rows, summary = scan(short_model, tmp_path / "reads.bed", "--bam", SIRV_BAM, "--reference", SIRV_FASTA,
                         "--contigs", "SIRV5", "--stride", 200, "--threshold", 0, "--junctions", tmp_path / "j.bed")
    assert summary["mode"] == "reads" and rows
    assert summary["calls_by"] == "window sites along each read, counted per site" and summary["min_distance"] is None
    with pysam.AlignmentFile(str(SIRV_BAM)) as bam:
        lengths = dict(zip(bam.references, bam.lengths))
        aligned = set()
        spliced = 0
        for read in bam.fetch("SIRV5"):
            if not (read.is_secondary or read.is_supplementary or read.is_unmapped):
                aligned.update(read.get_reference_positions())
                spliced += "N" in read.cigarstring
    assert spliced > 100
    assert_valid_bed(rows, lengths, {"yes"})
    assert all(r[0] == "SIRV5" and r[2] == r[1] + 1 and r[9] == 0 for r in rows)
    assert all(r[1] in aligned for r in rows), "a site was placed off the aligned bases"
    # With threshold 0 every window whose site lands on the reference supports exactly one site.
    assert sum(r[6] for r in rows) == summary["windows"]
    junctions = [line.split("\t") for line in (tmp_path / "j.bed").read_text().splitlines()]
    assert junctions and all(j[3].startswith("reads=") for j in junctions)
    assert {j[0] for j in junctions} == {"SIRV5"}  # those of the scanned contig, not the whole BAM's


def test_reads_mode_compares_windows_with_the_threshold_in_thousandths_as_a_genome_scan_does():
    """A window scoring 0.0022 is a BED score of 2: below --threshold 0.0021 (3 in thousandths), in
    reads mode as in a genome scan; 0.2996 scores 300, at --threshold 0.3."""
    from types import SimpleNamespace

    from dnabert2.scan.bam import window_read_hits

    scanner = SimpleNamespace(labels=["neither", "promoter"])
    item = {"sites": np.array([[10], [20]]), "strand": ["+", "-"], "read": [0, 0]}
    probabilities = np.array([[0.9978, 0.0022], [0.7004, 0.2996]])

    def hits(threshold):
        return [hit[1:3] for hit in window_read_hits(scanner, item, probabilities, [1], threshold)]

    assert hits(0.0021) == [(20, "-")]
    assert hits(0.3) == [(20, "-")]
    assert hits(0.002) == [(10, "+"), (20, "-")]


def test_reads_mode_skips_windows_of_too_many_n_as_a_genome_scan_does(short_model, tmp_path):
    """A read with a run of N (a basecaller's gap): its windows with more than --max-n of N are
    skipped and counted, as a genome scan's are, and no site is called from them."""
    bam = tmp_path / "gap.bam"
    with pysam.AlignmentFile(str(SIRV_BAM)) as source, pysam.AlignmentFile(str(bam), "wb", template=source) as sink:
        read = next(r for r in source.fetch("SIRV5") if not (r.is_secondary or r.is_supplementary)
                    and r.query_length > 1500 and "N" not in r.cigarstring)
        bases = read.query_sequence
        read.query_sequence = bases[:500] + "N" * 400 + bases[900:]
        sink.write(read)
    pysam.index(str(bam))
    common = ["--bam", bam, "--reference", SIRV_FASTA, "--stride", 20, "--threshold", 0]
    rows, summary = scan(short_model, tmp_path / "strict.bed", *common, "--max-n", 0.1)
    _, lax = scan(short_model, tmp_path / "lax.bed", *common, "--max-n", 0.99)  # windows of N alone skipped
    assert summary["windows_skipped_for_n"] > lax["windows_skipped_for_n"] > 0
    assert summary["windows"] + summary["windows_skipped_for_n"] == lax["windows"] + lax["windows_skipped_for_n"]
    assert sum(r[6] for r in rows) == summary["windows"]


def test_reads_mode_chunks_count_each_read_once(short_model, tmp_path):
    common = ["--bam", SIRV_BAM, "--reference", SIRV_FASTA, "--contigs", "SIRV3", "--stride", 250, "--threshold", 0.3]
    whole, tally = scan(short_model, tmp_path / "whole.bed", *common)
    for i in range(2):
        scan(short_model, tmp_path / f"c{i}.bed", *common, "--chunk", f"{i}/2")
    result = run_cli("scan-gather", tmp_path / "c0.json", tmp_path / "c1.json", "--out", tmp_path / "g.bed",
                     "--summary", tmp_path / "g.json")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "g.bed").read_text() == (tmp_path / "whole.bed").read_text()
    # Both chunks classify the reads they share; each window is tallied once, by one of them.
    gathered = json.loads((tmp_path / "g.json").read_text())
    assert {k: gathered[k] for k in ("windows", "tokens", "bases")} == {k: tally[k] for k in ("windows", "tokens", "bases")}
    with pysam.AlignmentFile(str(SIRV_BAM)) as bam:  # read bases, each read once at most
        assert 0 < tally["bases"] <= sum(r.query_length for r in bam.fetch("SIRV3") if not r.is_secondary)
    # Scores are whole thousandths: cut where the k-th best ties with the next; the earliest in the genome wins.
    scores = sorted((r[4] for r in whole), reverse=True)
    k = next(i for i in range(10, len(scores)) if scores[i - 1] == scores[i])
    scan(short_model, tmp_path / "whole-top.bed", *common, "--top-k", k)
    result = run_cli("scan-gather", tmp_path / "c1.json", tmp_path / "c0.json", "--out", tmp_path / "g-top.bed",
                     "--top-k", k)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "g-top.bed").read_text() == (tmp_path / "whole-top.bed").read_text()
    # A K past the calls above --threshold keeps them all, and says it ranks those only.
    for result in (run_cli("scan", "--model", short_model, *common, "--top-k", 10**6, "--out", tmp_path / "all.bed"),
                   run_cli("scan-gather", tmp_path / "c0.json", tmp_path / "c1.json", "--out", tmp_path / "g-all.bed",
                           "--top-k", 10**6)):
        assert result.returncode == 0, result.stderr
        assert "--top-k 1000000: " in result.stderr and "call(s) above --threshold 0.3, which it ranks" in result.stderr
    assert (tmp_path / "all.bed").read_text() == (tmp_path / "g-all.bed").read_text() == (tmp_path / "whole.bed").read_text()


def test_reads_mode_counts_a_pair_whose_mates_both_call_a_site_once(short_model, cnn, tmp_path):
    """As `junctions` counts (STAR's SJ.out.tab): one SIRV read written three times, as both mates of
    pair p1 and as single read s1. Every site they call has two supporting reads, where three
    alignments call it, and so --min-reads 3 keeps none; chunks gather to the same calls."""
    bam = tmp_path / "pairs.bam"
    with pysam.AlignmentFile(str(SIRV_BAM)) as source, pysam.AlignmentFile(str(bam), "wb", template=source) as sink:
        read = next(r for r in source.fetch("SIRV3") if not (r.is_secondary or r.is_supplementary)
                    and 500 < r.query_length < 1500 and "N" in r.cigarstring)
        for name, flag in (("p1", 99), ("p1", 147), ("s1", 0)):
            copy = pysam.AlignedSegment.fromstring(read.to_string(), sink.header)
            copy.query_name, copy.flag = name, flag
            copy.next_reference_id, copy.next_reference_start = (read.reference_id, read.reference_start) \
                if flag else (-1, -1)
            sink.write(copy)
    pysam.index(str(bam))
    for model, args in ((short_model, ("--stride", 30, "--threshold", 0)), (cnn, ("--threshold", 0.01))):
        common = ["--bam", bam, "--reference", SIRV_FASTA, *args]
        rows, _ = scan(model, tmp_path / "calls.bed", *common)
        assert rows and {r[6] for r in rows} == {2}
        for i in range(2):
            scan(model, tmp_path / f"c{i}.bed", *common, "--chunk", f"{i}/2")
        result = run_cli("scan-gather", tmp_path / "c0.json", tmp_path / "c1.json", "--out", tmp_path / "g.bed")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "g.bed").read_text() == (tmp_path / "calls.bed").read_text()
        assert scan(model, tmp_path / "three.bed", *common, "--min-reads", 3)[0] == []


def test_an_unknown_contig_names_the_input_that_lacks_it(short_model, tmp_path):
    # A reference holding one contig more than the BAM: the BAM lacks it, in covered mode as in reads
    # mode; a contig of neither is the reference's to lack.
    reference = tmp_path / "ref.fa"
    with Fasta(SIRV_FASTA) as fasta:
        reference.write_text("".join(f">{c}\n{fasta.fetch(c, 0, n)}\n" for c, n in fasta.lengths.items())
                             + ">extra\n" + "ACGT" * 100 + "\n")
    for mode in ([], ["--covered", 10]):
        for contig, lacking in (("extra", SIRV_BAM), ("chrZ", reference)):
            out = tmp_path / "calls.bed"
            result = run_cli("scan", "--model", short_model, "--out", out, "--bam", SIRV_BAM, "--reference", reference,
                             "--contigs", contig, *mode)
            assert_user_error(result, f"{lacking}: unknown contig {contig!r}")
            assert not out.exists()


def test_reads_mode_names_the_reference_as_given_and_says_splice_sites_are_no_spliced_read_bases(short_model, cnn,
                                                                                                   tmp_path):
    """A plain-gzip reference is read through an indexed copy: the contigs it lacks were said to be
    lacking from that copy's temporary path. A splice model along reads calls no site where the reads
    splice (the intron's ends are none of their bases), which passed without a word."""
    reference = tmp_path / "some.fa.gz"
    with Fasta(SIRV_FASTA) as fasta, gzip.open(reference, "wt") as out:
        out.write("".join(f">{c}\n{fasta.fetch(c, 0, n)}\n" for c, n in fasta.lengths.items() if c != "SIRV3"))
    common = ["--bam", SIRV_BAM, "--reference", reference, "--contigs", "SIRV2"]
    result = run_cli("scan", "--model", short_model, *common, "--out", tmp_path / "calls.bed", "--junctions",
                     tmp_path / "junctions.bed", "--stride", 100)
    assert result.returncode == 0, result.stderr
    lacking = [line for line in result.stderr.splitlines() if "not in the reference" in line]
    assert len(lacking) == 1 and f"not in the reference {reference}, their alignments left out: SIRV3" in lacking[0], \
        result.stderr
    assert "reads mode calls" not in result.stderr  # its labels mark no splice site
    splice = run_cli("scan", "--model", cnn, *common, "--out", tmp_path / "splice.bed")
    assert splice.returncode == 0, splice.stderr
    assert ("reads mode calls donor and acceptor sites on the reads' own bases: where a read splices, the intron's "
            "first and last bases (the sites) are none of its bases") in splice.stderr
    covered = run_cli("scan", "--model", cnn, *common, "--out", tmp_path / "covered.bed", "--covered", 5)
    assert covered.returncode == 0 and "reads mode calls" not in covered.stderr, covered.stderr


def test_a_bam_scan_that_reads_nothing_says_so(short_model, tmp_path):
    # Filters that keep no read, or a depth no stretch reaches: empty calls, as for a sample without
    # reads there, but said aloud (under -q too), not passed off as a scan that found no site.
    for mode, words in ((["--min-mapq", 61], "no read that passes the filters"),
                        (["--reference", SIRV_FASTA, "--covered", 100_000], "no stretch covered deeply enough")):
        out = tmp_path / "calls.bed"
        result = run_cli("scan", "--model", short_model, "--bam", SIRV_BAM, "--contigs", "SIRV2", "--out", out, "-q",
                         *mode)
        assert result.returncode == 0, result.stderr
        assert f"nothing was scanned: the regions asked for hold {words}" in result.stderr, result.stderr
        assert out.read_text() == ""


def test_covered_mode_scans_only_where_reads_are(short_model, tmp_path):
    rows, summary = scan(short_model, tmp_path / "covered.bed", "--bam", SIRV_BAM, "--reference", SIRV_FASTA,
                         "--covered", 50, "--stride", 30, "--threshold", 0.5)
    assert summary["mode"] == "covered" and rows
    with pysam.AlignmentFile(str(SIRV_BAM)) as bam:
        for contig, start, end, *_ in rows[:50]:
            depth = np.array(bam.count_coverage(contig, start, end, quality_threshold=0)).sum(0)
            assert depth.max() >= 40, "a call far from any well-covered stretch"
    with Fasta(SIRV_FASTA) as genome:
        total = sum(genome.lengths.values())
    assert summary["bases"] < total / 2
    # The summary names the stretches scanned (covered, widened by half a window): every call lies in one.
    regions = summary["regions"]
    assert sum(end - start for _, start, end in regions) < total / 2
    assert all(any(c == contig and s <= start < e for c, s, e in regions) for contig, start, *_ in rows)
    # Widened within --regions only: a region starting inside a covered stretch is not reached past.
    contig, start, end = max(regions, key=lambda r: r[2] - r[1])
    (tmp_path / "asked.bed").write_text(f"{contig}\t{start + 300}\t{end}\n")
    rows, summary = scan(short_model, tmp_path / "inside.bed", "--bam", SIRV_BAM, "--reference", SIRV_FASTA,
                         "--covered", 50, "--stride", 30, "--threshold", 0.5, "--regions", tmp_path / "asked.bed")
    assert rows and summary["regions"][0][1] == start + 300
    assert all(c == contig and start + 300 <= a and b <= end for c, a, b in summary["regions"])
    assert all(start + 300 <= int(r[1]) + int(r[9]) < end for r in rows)


def test_a_dense_covered_scan_scores_the_intron_ends_where_reads_splice(cnn, tmp_path):
    """Introns are no read's coverage, so the splice sites where reads splice (an intron's first and
    last bases) lie just outside the stretches they cover; they were never scored."""
    rows, summary = scan(cnn, tmp_path / "c.bed", "--bam", SIRV_BAM, "--reference", SIRV_FASTA, "--contigs", "SIRV5",
                         "--covered", 20, "--bedgraph", tmp_path / "tracks")
    spliced = Counter()
    with pysam.AlignmentFile(str(SIRV_BAM)) as bam:
        for read in bam.fetch("SIRV5"):
            if read.is_secondary or read.is_supplementary:
                continue
            position = read.reference_start
            for operation, length in read.cigartuples:
                if operation == 3:  # N: an intron
                    spliced[position, position + length] += 1
                position += length if operation in (0, 2, 3, 7, 8) else 0
    introns = [intron for intron, reads in spliced.items() if reads >= 40]  # well within a stretch of depth 20
    assert len(introns) >= 5
    scored = {(c, s, e) for c, s, e, _ in read_bedgraph(tmp_path / "tracks")["donor+"]}
    for start, end in introns:
        for base in (start, end - 1):
            assert any(s <= base < e for _, s, e in summary["regions"]), (start, end)
            assert any(s <= base < e for _, s, e in scored), (start, end)


def test_covered_mode_scores_every_covered_base_on_both_strands_wherever_the_task_places_its_site(tmp_path):
    """A promoter's TSS lies 249 bp into a 300 bp window on one strand, 50 bp on the other: stretches
    widened by half a window left ~100 bp at each end of each without a score on one strand."""
    model = scan_classifier(tmp_path / "promoter", 300, task="promoter", labels=("neither", "promoter"))
    (tmp_path / "asked.bed").write_text("SIRV2\t5000\t6911\n")
    scan(model, tmp_path / "calls.bed", "--bam", SIRV_BAM, "--reference", SIRV_FASTA, "--covered", 10,
         "--regions", tmp_path / "asked.bed", "--stride", 1, "--threshold", 0.99, "--bedgraph", tmp_path / "tracks")
    depth = np.zeros(6911, dtype=int)
    with open_alignments(SIRV_BAM, SIRV_FASTA) as reads:
        for read in aligned_reads(reads, "SIRV2", 5000, 6911):
            for a, b in read.get_blocks():
                depth[max(a, 5000):min(b, 6911)] += 1
    covered = set(np.flatnonzero(depth >= 10).tolist())
    assert len(covered) > 100
    for name, intervals in read_bedgraph(tmp_path / "tracks").items():
        scored = {p for _, start, end, _ in intervals for p in range(start, end)}
        assert covered <= scored, f"{name}: {len(covered - scored)} covered bases without a score"


def test_a_covered_stretch_cut_by_the_regions_edge_still_fits_a_window():
    from dnabert2.scan.bam import covered_regions

    lengths = Fasta(SIRV_FASTA).lengths
    with open_alignments(SIRV_BAM, SIRV_FASTA) as reads:
        whole = covered_regions(reads, [("SIRV5", 0, lengths["SIRV5"])], 50, 200, lengths)
        contig, start, end = whole[0]
        assert start + 200 < 1139 < end - 200  # the asked region starts inside the first covered stretch
        cut = covered_regions(reads, [("SIRV5", 1139, lengths["SIRV5"])], 50, 200, lengths)
    assert cut[0] == ("SIRV5", 1139, 1139 + 401) and cut[1:] == whole[1:]


def reordered(bam_path, out):
    """The BAM with its header's contigs in reverse order (sorted and indexed by them)."""
    with pysam.AlignmentFile(str(bam_path)) as bam:
        header = bam.header.to_dict()
        header["SQ"] = header["SQ"][::-1]
        header = pysam.AlignmentHeader.from_dict(header)
        unsorted = out.with_suffix(".unsorted.bam")
        with pysam.AlignmentFile(str(unsorted), "wb", header=header) as copy:
            for read in bam.fetch(until_eof=True):
                copy.write(pysam.AlignedSegment.fromstring(read.to_string(), header))
    pysam.sort("-o", str(out), str(unsorted))
    pysam.index(str(out))
    return out


def test_outputs_follow_the_references_contig_order_not_the_bam_headers(short_model, tmp_path):
    """bedtools -sorted -g genome.fai needs the reference's order, whichever order the BAM's header has."""
    ex1 = DATA / "bam" / "ex1"
    options = ["--reference", ex1 / "ex1.fa", "--covered", 10, "--window", 30, "--stride", 10, "--threshold", 0.5]
    rows, summary = scan(short_model, tmp_path / "a.bed", "--bam", reordered(ex1 / "ex1.bam", tmp_path / "r.bam"),
                         *options)
    scan(short_model, tmp_path / "b.bed", "--bam", ex1 / "ex1.bam", *options)
    assert list(dict.fromkeys(r[0] for r in rows)) == summary["contigs"] == ["chr1", "chr2"]
    assert (tmp_path / "a.bed").read_text() == (tmp_path / "b.bed").read_text()
    result = run_cli("junctions", "--bam", reordered(SIRV_BAM, tmp_path / "sirv.bam"), "--reference", SIRV_FASTA,
                     "--out", tmp_path / "j.bed")
    assert result.returncode == 0, result.stderr
    contigs = [line.split("\t")[0] for line in (tmp_path / "j.bed").read_text().splitlines()]
    assert list(dict.fromkeys(contigs)) == sorted(set(contigs), key=list(Fasta(SIRV_FASTA).lengths).index)
    assert len(set(contigs)) > 3


def test_ex1_reads_and_coverage(short_model, tmp_path):
    """samtools' ex1: 35 bp reads on two 1.6 kb contigs; 30 bp windows (the model was fine-tuned on 60,
    which warns)."""
    ex1 = DATA / "bam" / "ex1"
    lengths = {"chr1": 1575, "chr2": 1584}
    rows, summary = scan(short_model, tmp_path / "covered.bed", "--bam", ex1 / "ex1.bam", "--reference",
                         ex1 / "ex1.fa", "--covered", 10, "--window", 30, "--stride", 10, "--threshold", 0.5)
    assert rows and summary["mode"] == "covered" and summary["bases"] <= sum(lengths.values())
    assert_valid_bed(rows, lengths, {"yes"})
    rows, summary = scan(short_model, tmp_path / "reads.bed", "--bam", ex1 / "ex1.bam", "--window", 30,
                         "--stride", 5, "--threshold", 0)
    assert_valid_bed(rows, lengths, {"yes"})
    assert sum(r[6] for r in rows) == summary["windows"] > 3000  # both strands of every read's windows
    # Reads shorter than the window (these are 33-40 bp) hold none: the scan says how many it could not read.
    with pysam.AlignmentFile(str(ex1 / "ex1.bam")) as bam:
        reads = sum(1 for r in bam.fetch() if not (r.is_secondary or r.is_supplementary or r.is_unmapped))
    result = run_cli("scan", "--model", short_model, "--bam", ex1 / "ex1.bam", "--window", 41, "--out",
                     tmp_path / "none.bed", "--workers", 0)
    assert result.returncode == 0 and f"{reads} reads shorter than the model's 41 bp window" in result.stderr, \
        result.stderr


def test_scan_eval_precision_and_recall_against_the_annotation(tmp_path):
    annotation = GENOMES / "ce1pct.gff3.gz"
    donors = [s for s in read_annotation(annotation).splice_sites() if s.kind == "donor"]
    hits = donors[::2]
    calls = tmp_path / "calls.bed"
    lines = [f"{s.contig}\t{s.position - 100}\t{s.position + 100}\tdonor\t900\t{s.strand}\t3\t-1\t-1\t102"
             for s in hits]  # peaks 2 bp past the annotated donors
    calls.write_text("\n".join(lines) + "\n")
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--out", tmp_path / "exact.json")
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "exact.json").read_text())
    # The report went to its file; here, its figures as a table.
    assert result.stdout.splitlines()[2].startswith(f"| {calls.name} | donor | the whole annotation | 0 | {len(hits)} |")
    exact = written["labels"]["donor"]
    assert exact["calls"] == len(hits) and exact["calls_matching_a_site"] == 0 and exact["recall"] == 0
    # The tolerance the donors were matched with is recorded, and none that matched nothing; a TSS
    # tolerance given to donors would change nothing, unsaid.
    assert written["splice_tolerance"] == 0 and "tss_tolerance" not in written and "tts_tolerance" not in written
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--tss-tolerance", 50,
                     "--out", tmp_path / "tss.json")
    assert_user_error(result, "--tss-tolerance: no label evaluated here (donor) is matched with it")
    assert not (tmp_path / "tss.json").exists()
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--splice-tolerance", 2)
    near = json.loads(result.stdout)["labels"]["donor"]
    assert near["precision"] == 1.0 and near["sites"] == len(donors)
    assert near["sites_found"] >= len(hits) and near["recall"] == pytest.approx(near["sites_found"] / len(donors), abs=1e-4)
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--splice-tolerance", 2, "--contigs", "I")
    on_one = json.loads(result.stdout)["labels"]["donor"]
    assert on_one["sites"] == sum(s.contig == "I" for s in donors)
    # Calls of one contig, with nothing to say where the scan looked: the others' sites count as
    # missed, and the warning says so.
    (tmp_path / "on_i.bed").write_text("".join(line + "\n" for line in lines if line.startswith("I\t")))
    result = run_cli("scan-eval", "--calls", tmp_path / "on_i.bed", "--annotation", annotation)
    assert result.returncode == 0 and json.loads(result.stdout)["labels"]["donor"]["sites"] == len(donors)
    assert "no call on 5 of the 6 contigs with annotated sites (II, III, IV, V, X): their sites count as missed" \
        in result.stderr
    result = run_cli("scan-eval", "--calls", tmp_path / "on_i.bed", "--annotation", annotation, "--contigs", "I")
    assert result.returncode == 0 and "no call on" not in result.stderr
    # UCSC's name for Ensembl's I: an evaluation of nothing would report nulls and pass.
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--contigs", "I", "chrI")
    assert_user_error(result, "--contigs chrI: in neither the calls, the annotation nor the scanned genome")
    # So would regions of UCSC's names, or none (a header alone).
    (tmp_path / "ucsc.bed").write_text("chrI\t4000\t7000\n")
    (tmp_path / "header.bed").write_text('track name="regions"\n')
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--regions", tmp_path / "ucsc.bed")
    assert_user_error(result, f"--regions {tmp_path / 'ucsc.bed'}: none of its contigs is in the calls, the annotation")
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--regions", tmp_path / "header.bed")
    assert_user_error(result, f"{tmp_path / 'header.bed'}: no regions")


def test_scan_eval_sets_aside_calls_at_sites_only_transcripts_left_out_give(tmp_path):
    """A call at the real donor of a transcript the annotation leaves out (the example's cut-out
    truncates 7), or at the TSS of a transcript of another --biotype, is neither right nor wrong."""
    annotation = GENOMES / "ce1pct.gff3.gz"
    read = read_annotation(annotation)
    donors, aside = read.sites({"donor"}), read.unlabelled({"donor"})
    assert aside
    calls = tmp_path / "calls.bed"

    def report(sites, label, *options):
        # A 200 bp call with the site its summit, cut at the contig's start as a scan's would be.
        calls.write_text("".join(f"{s.contig}\t{max(s.position - 100, 0)}\t{s.position + 100}\t{label}\t900\t"
                                 f"{s.strand}\t3\t-1\t-1\t{min(s.position, 100)}\n" for s in sites))
        result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, *options)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["labels"][label]

    donor = report(donors[:20] + aside, "donor", "--splice-tolerance", 0)
    assert (donor["calls"], donor["calls_unlabelled"], donor["precision"]) == (20, len(aside), 1.0)
    coding = read_annotation(annotation, biotypes=["mRNA"])
    other = coding.unlabelled({"tss"})
    assert len(other) > 50  # ncRNA, piRNA, snoRNA, … TSSs
    tss = report(coding.tss()[:10] + other, "promoter", "--biotype", "mRNA", "--tss-tolerance", 0)
    assert (tss["calls"], tss["calls_unlabelled"], tss["precision"]) == (10, len(other), 1.0)
    assert tss["sites"] == len(coding.tss()) < len(read.tss())
    everything = report(coding.tss()[:10] + other, "promoter", "--tss-tolerance", 0)
    # Unlabelled whatever the biotypes: 3 TSSs of transcripts the cut-out truncates, 31 of pseudogenes, 28
    # of transcripts cut from longer ones (tRNAs, rRNAs, snoRNAs, miRNAs, 8 piRNAs).
    assert everything["calls_unlabelled"] == len(read.unlabelled({"tss"})) == 3 + 31 + 28
    assert everything["precision"] == 1.0
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--biotype", "protein-coding")
    assert_user_error(result, "no transcript of biotype protein-coding", "protein_coding")
    # A task built from some biotypes records them, and its held-out evaluation uses them unless told otherwise.
    task = tmp_path / "task"
    result = run_cli("tasks", "promoter", "--genome", GENOMES / "ce1pct.fa.gz", "--annotation", annotation,
                     "--biotype", "mRNA", "--test-contigs", "IV", "--out", task)
    assert result.returncode == 0, result.stderr
    assert json.loads((task / "task.json").read_text())["biotypes"] == ["mRNA"]
    on_iv = [s for s in coding.tss()[:10] + other if s.contig == "IV"]
    held_out = report(on_iv, "promoter", "--held-out", task, "--tss-tolerance", 0)
    assert held_out["calls_unlabelled"] == sum(s in other for s in on_iv) > 0
    assert held_out["sites"] == sum(s.contig == "IV" for s in coding.tss())


def test_a_task_records_how_it_was_built_and_its_held_out_evaluation_takes_its_introns(tmp_path):
    """task.json says what --min-intron, --max-n and the negatives' margin were; `scan-eval --held-out`
    reads the task's splice sites with its --min-intron (it took its own default of 20 before), unless
    told another, 20 included."""
    annotation = GENOMES / "ce1pct.gff3.gz"
    task = tmp_path / "task"
    result = run_cli("tasks", "splice", "--genome", GENOMES / "ce1pct.fa.gz", "--annotation", annotation,
                     "--min-intron", 60, "--max-n", 0.1, "--test-contigs", "IV", "--out", task)
    assert result.returncode == 0, result.stderr
    described = json.loads((task / "task.json").read_text())
    assert (described["min_intron"], described["max_n"], described["margin"]) == (60, 0.1, 1000)
    long_introns = [s for s in read_annotation(annotation, min_intron=60).sites({"donor"}) if s.contig == "IV"]
    every = [s for s in read_annotation(annotation, min_intron=30).sites({"donor"}) if s.contig == "IV"]
    assert len(long_introns) < len(every)
    calls = tmp_path / "calls.bed"
    calls.write_text("".join(f"{s.contig}\t{s.position}\t{s.position + 1}\tdonor\t900\t{s.strand}\t3\t-1\t-1\t0\n"
                             for s in long_introns))
    default = [s for s in read_annotation(annotation).sites({"donor"}) if s.contig == "IV"]
    for options, sites, taken in (((), len(long_introns), 60), (("--min-intron", 30), len(every), 30),
                                  (("--min-intron", 20), len(default), 20)):
        result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--held-out", task, *options)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert (report["labels"]["donor"]["sites"], report["min_intron"]) == (sites, taken)
    kept = (task / "task.json").read_text()
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--held-out", task,
                     "--out", task / "task.json")
    assert_user_error(result, "would overwrite the input")
    assert (task / "task.json").read_text() == kept


def test_scan_eval_says_which_evaluated_contigs_the_annotation_lacks(tmp_path):
    """An annotation of some chromosomes (a GFF3 cut to chromosome IV) scored the calls on the others
    as false, unsaid: precision fell tenfold in a helper's run. They are named, in the log and report."""
    annotation = tmp_path / "iv.gff3"
    with gzip.open(GENOMES / "ce1pct.gff3.gz", "rt") as handle:
        annotation.write_text("".join(line for line in handle if line.startswith("#") or line.startswith("IV\t")))
    donors = [s for s in read_annotation(annotation).sites({"donor"})][:5]
    calls = tmp_path / "calls.bed"
    calls.write_text("".join(f"{s.contig}\t{s.position}\t{s.position + 1}\tdonor\t900\t{s.strand}\t3\t-1\t-1\t0\n"
                             for s in donors) + "V\t1000\t1001\tdonor\t900\t+\t3\t-1\t-1\t0\n")
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation)
    assert result.returncode == 0, result.stderr
    assert "no transcript on 1 evaluated contig(s) (V)" in result.stderr
    report = json.loads(result.stdout)
    assert report["unannotated_contigs"] == ["V"] and report["labels"]["donor"]["precision"] == pytest.approx(5 / 6, abs=1e-4)
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--contigs", "IV")
    assert result.returncode == 0 and "no transcript on" not in result.stderr, result.stderr
    assert json.loads(result.stdout)["unannotated_contigs"] == []
    # No calls and no summary: no label to evaluate (the error ended in "no annotated", naming none).
    (tmp_path / "none.bed").write_text("")
    assert_user_error(run_cli("scan-eval", "--calls", tmp_path / "none.bed", "--annotation", annotation),
                      "none.bed: no calls, so no label to evaluate", "--summary")


def test_a_task_of_some_tags_records_them_and_its_held_out_evaluation_takes_them(tmp_path):
    """The example with every other mRNA tagged as GENCODE tags its transcripts: `sites --tag` writes
    theirs only, `tasks --tag` records the tags, and `scan-eval --held-out` sets aside a call at an
    untagged transcript's TSS; an unknown tag is refused with no file written."""
    annotation, count = tmp_path / "tagged.gff3", 0
    with gzip.open(GENOMES / "ce1pct.gff3.gz", "rt") as handle, annotation.open("w") as out:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) == 9 and fields[2] == "mRNA":
                count += 1
                line = line.rstrip("\n") + (";tag=basic,MANE_Select\n" if count % 2 else ";tag=basic\n")
            out.write(line)
    tagged = read_annotation(annotation, tags=["MANE_Select"])
    untagged = tagged.unlabelled({"tss"})
    assert len(tagged.transcripts) == (count + 1) // 2 and len(untagged) > 50
    tss = tmp_path / "tss.bed"
    result = run_cli("sites", "--annotation", annotation, "--genome", GENOMES / "ce1pct.fa.gz", "--kind", "tss",
                     "--tag", "MANE_Select", "--out", tss)
    assert result.returncode == 0, result.stderr
    assert [(r[0], int(r[1]), r[5]) for r in (line.split("\t") for line in tss.read_text().splitlines())] == \
        [(s.contig, s.position, s.strand) for s in tagged.tss()]
    result = run_cli("sites", "--annotation", annotation, "--genome", GENOMES / "ce1pct.fa.gz", "--tag", "MANE",
                     "--out", tmp_path / "none.bed")
    assert_user_error(result, "no transcript tagged MANE; the tags of its transcripts are MANE_Select, basic")
    assert not list(tmp_path.glob("none.bed*"))
    task = tmp_path / "task"
    result = run_cli("tasks", "promoter", "--genome", GENOMES / "ce1pct.fa.gz", "--annotation", annotation,
                     "--tag", "MANE_Select", "--test-contigs", "IV", "--out", task)
    assert result.returncode == 0, result.stderr
    # No introns decide a promoter task's sites: unlike a splice task, it records no min_intron.
    assert json.loads((task / "task.json").read_text())["tags"] == ["MANE_Select"]
    assert json.loads((task / "task.json").read_text())["min_intron"] is None
    on_iv = [s for s in tagged.tss() if s.contig == "IV"][:10] + [s for s in untagged if s.contig == "IV"]
    calls = tmp_path / "calls.bed"
    calls.write_text("".join(f"{s.contig}\t{s.position - 100}\t{s.position + 100}\tpromoter\t900\t{s.strand}"
                             f"\t3\t-1\t-1\t100\n" for s in on_iv))
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--held-out", task,
                     "--tss-tolerance", 0)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    promoter = report["labels"]["promoter"]
    assert report["tags"] == ["MANE_Select"] and promoter["precision"] == 1.0 and promoter["calls"] == 10
    assert promoter["calls_unlabelled"] == len(on_iv) - 10 > 0
    assert promoter["sites"] == sum(s.contig == "IV" for s in tagged.tss())
    assert report["min_intron"] is None and "introns" not in result.stderr
    # Nor does --min-intron change what TSS calls are scored against: refused, as `sites --kind tss` refuses it.
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--held-out", task,
                     "--min-intron", 30)
    assert_user_error(result, "--min-intron decides which gaps between exons are introns: an evaluation of "
                      "promoter calls has no splice sites")


def test_scan_eval_matches_calls_and_sites_one_to_one(tmp_path):
    """A second call near a site is a false positive, and one call between two sites finds one."""
    annotation = GENOMES / "ce1pct.gff3.gz"
    donors = sorted({(s.contig, s.strand, s.position) for s in read_annotation(annotation).splice_sites()
                     if s.kind == "donor"})
    a, b = min(zip(donors, donors[1:]), key=lambda pair: (pair[0][:2] != pair[1][:2], pair[1][2] - pair[0][2]))
    contig, strand = a[:2]
    calls = tmp_path / "calls.bed"

    def donor_report(peaks, tolerance):
        calls.write_text("".join(f"{contig}\t{p - 100}\t{p + 100}\tdonor\t900\t{strand}\t3\t-1\t-1\t100\n"
                                 for p in peaks))
        result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--contigs", contig,
                         "--splice-tolerance", tolerance)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["labels"]["donor"]

    twice = donor_report([a[2] - 1, a[2] + 1], 1)
    assert (twice["calls"], twice["calls_matching_a_site"], twice["sites_found"], twice["precision"]) == (2, 1, 1, 0.5)
    gap = b[2] - a[2]
    between = donor_report([a[2] + gap // 2], gap - gap // 2)
    assert (between["calls_matching_a_site"], between["sites_found"]) == (1, 1)


def test_scan_eval_reads_narrowpeak_without_a_summit_as_the_calls_middle(tmp_path):
    annotation = GENOMES / "ce1pct.gff3.gz"
    donor = next(s for s in read_annotation(annotation).splice_sites() if s.kind == "donor")
    calls = tmp_path / "calls.bed"
    for offset, matched in (("-1", 1), ("1", 1), ("0", 0)):  # a 3 bp call centred on the donor
        calls.write_text(f"{donor.contig}\t{donor.position - 1}\t{donor.position + 2}\tdonor\t900\t{donor.strand}\t1"
                         f"\t-1\t-1\t{offset}\n")
        result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--contigs", donor.contig)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["labels"]["donor"]["calls_matching_a_site"] == matched
    calls.write_text(f"{donor.contig}\t{donor.position}\t{donor.position + 1}\tdonor\t900\t{donor.strand}\t1\t-1\t-1\t5\n")
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation)
    assert_user_error(result, "line 1", "summit offset 5 lies outside the call")
    # A call a scan cannot have written: reversed, or on no strand (matched to no site, it would count
    # as a false positive with exit 0).
    def call(start, end, strand):
        return f"{donor.contig}\t{start}\t{end}\tdonor\t900\t{strand}\t1\t-1\t-1\t0\n"

    good = call(donor.position, donor.position + 1, donor.strand)
    for bad, words in ((call(donor.position, donor.position + 1, "."), "strand '.', not + or -"),
                       (call(520, 505, donor.strand), f"{donor.contig}:520-505 is empty")):
        calls.write_text(good + bad)
        assert_user_error(run_cli("scan-eval", "--calls", calls, "--annotation", annotation), "line 2", words)


def test_scan_eval_counts_labels_without_calls_and_only_where_the_scan_looked(tmp_path):
    annotation = GENOMES / "ce1pct.gff3.gz"
    sites = read_annotation(annotation).splice_sites()
    donor = next(s for s in sites if s.kind == "donor" and s.contig == "I")
    elsewhere = next(s for s in sites if s.kind == "donor" and s.contig == "II")
    calls = tmp_path / "calls.bed"
    calls.write_text("".join(f"{s.contig}\t{s.position - 200}\t{s.position + 200}\tdonor\t900\t{s.strand}\t1\t-1\t-1\t200\n"
                             for s in (donor, elsewhere)))
    summary = tmp_path / "scan.json"
    summary.write_text(json.dumps({"called": ["donor", "acceptor"], "regions": [["I", 0, 150724]]}))
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--summary", summary)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    on_i = {kind: sum(s.kind == kind and s.contig == "I" for s in sites) for kind in ("donor", "acceptor")}
    assert report["labels"]["donor"]["calls"] == 1 and report["labels"]["donor"]["sites"] == on_i["donor"]
    assert report["labels"]["donor"]["precision"] == 1.0
    no_tracks = "the scan wrote no score tracks (--bigwig or --bedgraph)"
    acceptors = report["labels"]["acceptor"]
    assert acceptors.pop("close_pairs") > 0 and acceptors.pop("close_pairs_resolved") == 0
    assert acceptors.pop("calls_unlabelled") == 0
    assert re.fullmatch("[0-9a-f]{64}", acceptors.pop("sites_sha256"))  # which sites, for tables that join reports
    assert acceptors == {"calls": 0, "calls_matching_a_site": 0, "sites": on_i["acceptor"],
                         "sites_found": 0, "precision": None, "recall": 0.0, "f1": None,
                         "pr_auc": None, "top_k_accuracy": None,
                         "undefined": {"precision": "no calls", "f1": "no calls",
                                       "pr_auc": no_tracks, "top_k_accuracy": no_tracks}}
    assert report["overall"]["sites"] == on_i["donor"] + on_i["acceptor"]
    result = run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--contigs", "II")
    assert json.loads(result.stdout)["labels"]["donor"]["calls"] == 1
    summary.write_text(json.dumps({"called": ["donor"], "regions": [["I", 0, 150724]], "chunk": [0, 2]}))
    assert_user_error(run_cli("scan-eval", "--calls", calls, "--annotation", annotation, "--summary", summary),
                      "one chunk")


def test_scan_eval_refuses_an_annotation_of_another_genome(splice_model, ce1pct, tmp_path):
    """Scored against another genome's annotation every call would be a miss, with exit 0; refused instead."""
    calls = tmp_path / "calls.bed"
    rows, summary = scan(splice_model, calls, "--fasta", ce1pct, "--contigs", "V", "--stride", 600, "--threshold", 0.5)
    assert rows and summary["contig_lengths"]["V"] == 209_241
    sirv = SIRV / "SIRV_C_150601a.gtf.gz"
    assert_user_error(run_cli("scan-eval", "--calls", calls, "--annotation", sirv, "--summary",
                              calls.with_suffix(".json")), "none of its 7 contig(s) is in the scanned genome", "SIRV")
    assert_user_error(run_cli("scan-eval", "--calls", calls, "--annotation", sirv), "annotates none of the contigs with calls",
                      "--summary")
    # The worm's own annotation with one transcript moved past the end of chromosome V (mechanics).
    moved = tmp_path / "moved.gff3"
    moved.write_text(gzip.decompress((GENOMES / "ce1pct.gff3.gz").read_bytes()).decode()
                     + "V\tx\tmRNA\t300001\t300500\t.\t+\t.\tID=Transcript:moved\n"
                     + "V\tx\texon\t300001\t300500\t.\t+\t.\tParent=Transcript:moved\n")
    assert_user_error(run_cli("scan-eval", "--calls", calls, "--annotation", moved, "--summary",
                              calls.with_suffix(".json")), "Transcript:moved", "past the end of V")
    result = run_cli("scan-eval", "--calls", calls, "--annotation", GENOMES / "ce1pct.gff3.gz", "--summary",
                     calls.with_suffix(".json"))
    assert result.returncode == 0, result.stderr


def test_scan_eval_refuses_calls_of_another_scan_than_its_summary(splice_model, ce1pct, tmp_path):
    """The summary's tracks score one scan; calls of another would mix two models' answers in one report."""
    calls = tmp_path / "calls.bed"
    rows, _ = scan(splice_model, calls, "--fasta", ce1pct, "--contigs", "V", "--stride", 600, "--threshold", 0.5)
    assert len(rows) > 1
    lines = calls.read_text().splitlines(keepends=True)
    (tmp_path / "copy.bed").write_text("".join(lines))
    (tmp_path / "other.bed").write_text("".join(lines[1:]))
    annotation = GENOMES / "ce1pct.gff3.gz"
    for ok in (calls, tmp_path / "copy.bed"):  # its own calls, or a copy of them
        result = run_cli("scan-eval", "--calls", ok, "--annotation", annotation, "--summary", calls.with_suffix(".json"))
        assert result.returncode == 0, result.stderr
    assert_user_error(run_cli("scan-eval", "--calls", tmp_path / "other.bed", "--annotation", annotation, "--summary",
                              calls.with_suffix(".json")), "not the calls of the scan", "calls.bed")


def test_window_other_than_the_task_warns(short_model, ce1pct, tmp_path):
    result = run_cli("scan", "--model", short_model, "--fasta", ce1pct, "--contigs", "MtDNA", "--window", 100,
                     "--out", tmp_path / "calls.bed", "--workers", 0)
    assert result.returncode == 0, result.stderr
    assert "fine-tuned on 60 bp windows" in result.stderr


def test_bad_input(splice_model, short_model, ce1pct, tmp_path):
    out = tmp_path / "new" / "calls.bed"  # the folder a refused run must not leave behind
    torch.manual_seed(0)
    encoder = save_model(build_model(preset("tiny"), "mlm"), tmp_path / "encoder", load_tokenizer(TOKENIZER))
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    unindexed = tmp_path / "reads.bam"
    shutil.copy(SIRV_BAM, unindexed)
    outside = tmp_path / "outside.bed"
    outside.write_text("I\t100\t999999999\n")
    corrupt = tmp_path / "corrupt.bam"  # its blocks' framing intact, so samtools quickcheck passes it
    data = bytearray(SIRV_BAM.read_bytes())
    data[200_000:200_200] = bytes(200)
    corrupt.write_bytes(bytes(data))
    shutil.copy(f"{SIRV_BAM}.bai", f"{corrupt}.bai")
    sam = tmp_path / "reads.sam"
    pysam.view("-h", "-o", str(sam), str(DATA / "bam" / "ex1" / "ex1.bam"), catch_stdout=False)
    cases = [
        (["--model", encoder, "--fasta", ce1pct], ["classification head"]),
        (["--model", splice_model, "--fasta", ce1pct, "--contigs", "chrZ"], ["chrZ"]),
        (["--model", splice_model, "--fasta", ce1pct, "--regions", outside], ["outside"]),
        (["--model", splice_model, "--fasta", empty], ["empty"]),
        (["--model", splice_model, "--fasta", ce1pct, "--batch-tokens", 50], ["--batch-tokens"]),
        (["--model", splice_model, "--fasta", ce1pct, "--chunk", "0/2", "--top-k", 5], ["scan-gather"]),
        (["--model", splice_model, "--fasta", ce1pct, "--chunk", "2/2"], ["0 <= i < n"]),
        (["--model", splice_model, "--fasta", ce1pct, "--labels", "exon"], ["exon"]),
        (["--model", short_model, "--bam", unindexed, "--reference", SIRV_FASTA], ["index"]),
        (["--model", short_model, "--bam", DATA / "bam" / "ex1" / "ex1.bam", "--reference", SIRV_FASTA], ["none of its contigs"]),
        (["--model", short_model, "--bam", SIRV_BAM, "--covered", 5], ["--reference"]),
        (["--model", short_model, "--bam", corrupt, "--reference", SIRV_FASTA], ["reading failed", "corrupt"]),
        (["--model", short_model, "--bam", corrupt, "--reference", SIRV_FASTA, "--covered", 5], ["reading failed"]),
        (["--model", short_model, "--bam", sam, "--reference", SIRV_FASTA], ["SAM", "samtools sort"]),
        (["--model", short_model, "--bam", SIRV_BAM, "--merge"], ["--merge", "reads"]),
        (["--model", short_model, "--bam", SIRV_BAM, "--min-distance", 50], ["--min-distance", "reads mode"]),
        (["--model", short_model, "--bam", SIRV_BAM, "--bedgraph", tmp_path / "s.bedgraph"], ["--bedgraph"]),
        # Options the scan would ignore.
        (["--model", splice_model, "--fasta", ce1pct, "--min-mapq", 20], ["--min-mapq", "--bam"]),
        (["--model", splice_model, "--fasta", ce1pct, "--merge", "--min-distance", 50], ["--min-distance", "--merge"]),
        (["--model", short_model, "--bam", SIRV_BAM, "--reference", SIRV_FASTA, "--fasta", ce1pct],
         ["--fasta and --reference", "give --reference"]),
        (["--model", short_model, "--bam", SIRV_BAM, "--reference", SIRV_FASTA, "--covered", 5, "--min-reads", 2],
         ["--min-reads", "reads mode"]),
        (["--model", splice_model, "--fasta", ce1pct, "--device", "cuda"] if not torch.cuda.is_available() else
         (["--model", splice_model, "--fasta", ce1pct, "--device", "cuda:99"]), ["cuda"]),
    ]
    blocker = tmp_path / "afile"
    blocker.write_text("")
    cases += [
        (["--model", short_model, "--fasta", ce1pct, "--contigs", "MtDNA", "--window", 50, "--bedgraph",
          blocker / "s.bedgraph"], ["a file is in the way"]),
        (["--model", short_model, "--bam", SIRV_BAM, "--reference", SIRV_FASTA, "--junctions", out], ["two outputs"]),
    ]
    for args, words in cases:
        assert_user_error(run_cli("scan", *args, "--out", out, "--workers", 0), *words)
        assert not out.parent.exists()
    # Read whole (no contig named), a damaged block is as clear.
    assert_user_error(run_cli("junctions", "--bam", corrupt, "--out", out), "reading failed", "truncated or corrupt")
    assert not out.parent.exists()
    # A read error in a DataLoader worker reaches the user as the same one line.
    assert_user_error(run_cli("scan", "--model", short_model, "--bam", corrupt, "--out", out, "--workers", 2),
                      "reading failed")
    assert not out.parent.exists()
