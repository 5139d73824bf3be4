"""Genome-wide scanning with a fine-tuned classifier: windows over a FASTA (or over what a BAM covers,
or along its reads) → calls in BED, per-window scores in bedGraph, and a JSON summary.

A scan can be split into `--chunk i/n` jobs whose outputs `gather` joins into what one job gives.
"""

import json
import logging
import os
import tempfile
from collections import Counter
from pathlib import Path

import torch

from ..bed import write_junctions
from ..errors import UserError
from ..outputs import atomic_output, check_outputs
from ..sequences import Fasta, read_bed_regions, write_bgzf_fasta
from ..sequences.fasta import NoRandomAccess
from .calls import BedGraph, Merger, read_calls, top, write_calls
from .model import called_labels, load_scanner
from .plan import blocks, chunk, merge_regions

log = logging.getLogger(__name__)

BLOCK_WINDOWS = 512


def requested_regions(lengths: dict[str, int], source: str, regions=None, contigs=None) -> list[tuple[str, int, int]]:
    """Regions to scan in genome order, checked against the contig lengths: a BED file's, the named
    contigs, or every contig."""
    if regions is not None:
        wanted = read_bed_regions(regions)
        if not wanted:
            raise UserError(f"{regions}: no regions")
    else:
        wanted = [(c, 0, lengths.get(c, 0)) for c in (contigs or lengths)]
    for contig, start, end in wanted:
        if contig not in lengths:
            raise UserError(f"{source}: unknown contig {contig!r}" + (f" (from {regions})" if regions else ""))
        if not 0 <= start < end <= lengths[contig]:
            raise UserError(f"{source}: region {contig}:{start}-{end} is outside the contig or empty "
                            f"(length {lengths[contig]})")
    return merge_regions(wanted, {c: i for i, c in enumerate(lengths)})


def _indexed(path, folder: str) -> Path:
    """The FASTA itself if it has random access, else a bgzip copy in `folder` (streamed, so memory
    does not grow with the genome)."""
    path = Path(path)
    try:
        Fasta(path, in_memory=False).close()
        return path
    except NoRandomAccess:
        pass
    log.info("%s: making an indexed bgzip copy to scan (`dnabert2 download` makes one to keep)", path)
    copy = Path(folder) / "genome.fa.gz"
    write_bgzf_fasta(path, copy)
    return copy


def scan(model, out, *, fasta=None, bam=None, reference=None, covered: int | None = None, regions=None, contigs=None,
         window=None, stride=None, strands="both", labels=None, threshold=0.5, top_k=None, bedgraph=None,
         summary=None, chunk_of=(0, 1), batch_tokens=None, workers=1, max_n=0.1, min_mapq=0, min_reads=1,
         junctions=None, device="auto", dtype="auto", progress=False) -> dict:
    """Scan and write `out` (BED6+4 calls), and `bedgraph` and `summary` if given; returns the summary.
    Input: `fasta`; or `bam` read sequences; or, with `covered` = a depth, the regions of `reference`
    the BAM covers that deeply."""
    from .bam import bam_lengths, covered_regions, scan_reads, split_regions
    from .genome import scan_blocks

    check_outputs([out, bedgraph, summary, junctions], [fasta, bam, reference, regions])
    if junctions and (bam is None or chunk_of[1] > 1):
        raise UserError("--junctions needs --bam and a whole scan (for chunks, write them once with "
                        "`dnabert2 junctions`)")
    if not 0 <= threshold <= 1:
        raise UserError(f"threshold must be between 0 and 1, not {threshold}")
    index, count = chunk_of
    if top_k is not None and count > 1:
        raise UserError("--top-k ranks calls over the whole genome: give it to `dnabert2 scan-gather`, not to a chunk")
    if bedgraph and bam is not None and covered is None:
        raise UserError("--bedgraph holds window scores along the genome: it goes with FASTA and --covered scans, "
                        "not with reads")
    if covered is not None and reference is None:
        raise UserError("scanning covered regions needs the reference FASTA (--reference)")
    scanner = load_scanner(model, window=window, device=device, dtype=dtype)
    stride = stride or max(1, scanner.window // 4)
    batch_tokens = batch_tokens or (65536 if scanner.device.type == "cuda" else 8192)
    if scanner.max_tokens > batch_tokens:
        raise UserError(f"a {scanner.window} bp window can take {scanner.max_tokens} tokens, more than "
                        f"--batch-tokens {batch_tokens}: raise it or scan shorter windows")
    chosen = called_labels(scanner, labels)
    graph = BedGraph() if bedgraph else None
    with tempfile.TemporaryDirectory(prefix="dnabert2-scan-") as tmp:
        genome = _indexed(fasta or reference, tmp) if (fasta or reference) else None
        lengths = None
        if genome:
            with Fasta(genome) as opened:
                lengths = opened.lengths
        if bam is not None:
            reference = genome  # the indexed copy where the reference had no random access
            lengths = bam_lengths(bam, reference, lengths)
        source = str(bam if bam is not None and covered is None else fasta or reference)
        wanted = requested = requested_regions(lengths, source, regions, contigs)
        options = {"labels": chosen, "threshold": threshold, "batch_tokens": batch_tokens, "workers": workers,
                   "progress": progress}
        if bam is not None and covered is None:
            calls, tally = scan_reads(scanner, bam, reference, wanted, split_regions(wanted, index, count), stride=stride,
                                      min_mapq=min_mapq, min_reads=min_reads, **options)
        else:
            if covered is not None:
                from ..sequences import open_alignments

                with open_alignments(bam, reference) as alignments:
                    wanted = covered_regions(alignments, wanted, covered, scanner.window // 2, lengths, min_mapq)
                log.info("%d region(s) covered by %d or more reads", len(wanted), covered)
            mine = chunk(blocks(wanted, scanner.window, stride, BLOCK_WINDOWS), index, count)
            calls, tally = scan_blocks(scanner, genome, mine, strands={"both": "+-"}.get(strands, strands),
                                       max_n=max_n, bedgraph=graph, lengths=lengths, **options)
        if junctions:
            write_junctions(junctions, bam, reference, min_mapq=min_mapq)
    order = {c: i for i, c in enumerate(lengths)}
    calls = top(calls, top_k, order)
    tally.calls = dict(Counter(c.label for c in calls))
    mode = "reads" if bam is not None and covered is None else "covered" if covered is not None else "fasta"
    report = {"model": str(model), "input": source, "mode": mode, "chunk": [index, count], "labels": scanner.labels,
              "called": [scanner.labels[i] for i in chosen], "threshold": threshold, "top_k": top_k,
              "stride": stride, "strands": strands, "max_n": max_n, "min_depth": covered, "min_mapq": min_mapq,
              "min_reads": min_reads, "regions": [list(r) for r in requested], "batch_tokens": batch_tokens,
              "dtype": "bf16" if scanner.dtype == torch.bfloat16 else "fp32", **tally.summary(scanner),
              "contigs": list(lengths), "calls_file": _relative(out, summary),
              "bedgraph_file": _relative(bedgraph, summary) if bedgraph else None}
    # The calls last: a failure writing the others leaves no calls file that looks finished.
    if graph is not None:
        graph.write(bedgraph)
    if summary:
        _write_json(summary, report)
    write_calls(out, calls, order)
    return report


def _relative(path, summary) -> str:
    return os.path.relpath(Path(path).resolve(), Path(summary).resolve().parent) if summary else str(path)


def _write_json(path, data: dict) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")


def gather(summaries, out, *, bedgraph=None, summary=None, top_k=None) -> dict:
    """Join the chunks of one scan (given by their summaries, in any order) into one sorted BED (calls
    that meet across chunk ends merged), one bedGraph and one summary."""
    check_outputs([out, bedgraph, summary], summaries)
    parts = [(Path(path), _read_summary(path)) for path in summaries]
    parts.sort(key=lambda p: p[1]["chunk"][0])
    count = parts[0][1]["chunk"][1]
    found = [p[1]["chunk"][0] for p in parts]
    if any(p[1]["chunk"][1] != count for p in parts) or found != list(range(count)):
        raise UserError(f"chunks {found} given; a scan in {count} chunks needs each of 0..{count - 1} once")
    for key in SAME_IN_EVERY_CHUNK:
        if len({json.dumps(p[1].get(key)) for p in parts}) > 1:
            raise UserError(f"the chunks differ in {key}: they are not parts of one scan")
    if bedgraph:
        unscored = [str(folder) for folder, part in parts if not part.get("bedgraph_file")]
        if unscored:
            raise UserError(f"{unscored[0]}: this chunk was scanned without --bedgraph")
    order = {c: i for i, c in enumerate(parts[0][1]["contigs"])}
    calls = []
    for folder, part in parts:
        path = folder.parent / part["calls_file"]
        mine = read_calls(path)
        strangers = sorted({c.contig for c in mine} - set(order))
        if strangers:
            raise UserError(f"{path}: contig {strangers[0]!r} is not in the scanned genome")
        calls += mine
    merger = Merger()
    for call in sorted(calls, key=lambda c: (order[c.contig], c.start)):
        merger.add(call)
    merged = top(merger.finish(), top_k, order)
    if bedgraph:
        graph = BedGraph()
        for folder, part in parts:
            graph.extend(folder.parent / part["bedgraph_file"])
    totals = {key: sum(p[1][key] for p in parts) for key in ("windows", "windows_skipped_for_n", "tokens", "bases", "seconds")}
    # Rates over the chunks' summed job time: what one job running them all in turn would do.
    seconds = max(totals["seconds"], 1e-9)
    totals |= {"bp_per_second": round(totals["bases"] / seconds),
               "window_bp_per_second": round(totals["windows"] * parts[0][1]["window_bp"] / seconds),
               "tokens_per_second": round(totals["tokens"] / seconds)}
    report = {**parts[0][1], **totals, "chunk": [0, 1], "chunks": count, "calls": dict(Counter(c.label for c in merged)), "top_k": top_k,
              "calls_file": _relative(out, summary), "bedgraph_file": _relative(bedgraph, summary) if bedgraph else None}
    if bedgraph:
        graph.write(bedgraph)
    if summary:
        _write_json(summary, report)
    write_calls(out, merged, order)
    return report


SAME_IN_EVERY_CHUNK = ("model", "input", "mode", "labels", "called", "threshold", "stride", "strands", "window_bp",
                       "max_n", "min_depth", "min_mapq", "min_reads", "regions", "contigs", "batch_tokens", "dtype")


def _read_summary(path) -> dict:
    """A chunk's summary, checked for what gathering needs."""
    try:
        part = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not a scan summary ({error})") from None
    chunk_ok = isinstance(part, dict) and isinstance(part.get("chunk"), list) and len(part["chunk"]) == 2 \
        and all(isinstance(x, int) for x in part["chunk"])
    if not chunk_ok or not isinstance(part.get("calls_file"), str) or not isinstance(part.get("contigs"), list) \
            or not all(isinstance(part.get(k), (int, float)) for k in ("windows", "windows_skipped_for_n", "tokens",
                                                                      "bases", "seconds", "window_bp")):
        raise UserError(f"{path}: not a summary written by `dnabert2 scan --summary`")
    return part
