"""Joining the chunks of one scan (`dnabert2 scan --chunk i/n`, each with its summary) into what one
unchunked scan writes: peaks as each chunk called them (or, for --merge, calls that meet across chunk
ends merged), top-k over the whole genome, one set of tracks and one summary."""

import json
import os
from pathlib import Path

from ..errors import UserError
from ..options import add_settings, output_file, settings_from
from ..outputs import STDOUT, check_outputs, standard_output, write_json, written_together
from ..sequences.fasta import open_text
from ..settings import ScanSettings
from .calls import (MERGED, Merger, by_label, check_counts, check_scored, count_calls, read_calls, say_short_of_top, top,
                    write_calls)
from .tracks import Tracks, check_folders

SAME_IN_EVERY_CHUNK = ("model", "input", "mode", "labels", "called", "threshold", "dense", "calls_by", "min_distance",
                       "stride", "strands", "window_bp",
                       "max_n", "min_depth", "min_mapq", "min_reads", "regions", "contigs", "contig_lengths",
                       "batch_tokens", "dtype")


def relative(path, summary) -> str:
    """How a summary names an output beside it: relative to the summary's folder."""
    return os.path.relpath(Path(path).resolve(), Path(summary).resolve().parent) if summary else str(path)


def read_json(path):
    """A summary as write_json wrote it; a missing file is named so."""
    with open_text(path) as handle:
        return json.load(handle)


def gather(summaries, out, *, bedgraph=None, bigwig=None, summary=None, top_k=None) -> dict:
    """Join the chunks of one scan (given by their summaries, in any order) into one sorted BED (calls
    that meet across chunk ends merged), one set of tracks and one summary."""
    parts = _chunks(summaries, bool(bedgraph or bigwig))
    check_outputs([out, summary], [*summaries, *(folder.parent / part["calls_file"] for folder, part in parts)])
    check_folders(bedgraph, bigwig, [folder.parent / part["bedgraph_dir"] for folder, part in parts
                                     if part.get("bedgraph_dir")], files=[out, summary])
    order = {c: i for i, c in enumerate(parts[0][1]["contigs"])}
    calls = []
    for folder, part in parts:
        path = folder.parent / part["calls_file"]
        mine = read_calls(path)
        strangers = sorted({c.contig for c in mine} - set(order))
        if strangers:
            raise UserError(f"{path}: contig {strangers[0]!r} is not in the scanned genome")
        check_counts(mine, path, folder, part["calls"], "scan the chunk again")
        calls += mine
    if parts[0][1].get("calls_by") != MERGED:
        # Each chunk called the peaks of its own bases, its neighbours' scores in view (or counted the
        # reads at its own sites).
        joined = calls
    else:
        merger = Merger()
        for call in sorted(calls, key=lambda c: (order[c.contig], c.start)):
            merger.add(call)
        joined = merger.finish()
    merged = top(joined, top_k, order)
    if bedgraph or bigwig:
        graph = Tracks()
        for folder, part in parts:
            graph.extend(folder.parent / part["bedgraph_dir"], part, folder)
    totals = {key: sum(p[1][key] for p in parts) for key in ("windows", "windows_skipped_for_n", "tokens", "bases",
                                                           "seconds")}
    check_scored(totals["windows"], totals["windows_skipped_for_n"], parts[0][1].get("max_n"),
                 parts[0][1].get("mode", "fasta"))
    # Rates over the chunks' summed job time: what one job running them all in turn would do.
    seconds = max(totals["seconds"], 1e-9)
    totals |= {"bp_per_second": round(totals["bases"] / seconds),
               "window_bp_per_second": round(totals["windows"] * parts[0][1]["window_bp"] / seconds),
               "tokens_per_second": round(totals["tokens"] / seconds)}
    report = {**parts[0][1], **totals, "chunk": [0, 1], "chunks": len(parts),
              "calls": count_calls(merged, parts[0][1].get("called", [])), "top_k": top_k,
              "calls_file": relative(out, summary),
              "bedgraph_dir": relative(bedgraph, summary) if bedgraph else None,
              "bigwig_dir": relative(bigwig, summary) if bigwig else None,
              "track_sha256": None}
    say_short_of_top(report["calls"], top_k, report["threshold"])
    with written_together():
        if bedgraph or bigwig:
            lengths = dict(zip(parts[0][1]["contigs"], _lengths(parts[0][1]))) if bigwig else {}
            report["track_sha256"] = graph.write(bedgraph, bigwig, lengths)
        if summary:
            write_json(summary, report)
        write_calls(out, merged, order)
    return report


def _lengths(part: dict) -> list[int]:
    lengths = part.get("contig_lengths") or {}
    if len(lengths) != len(part["contigs"]):
        raise UserError("the chunks' summaries hold no contig lengths (written before bigWig tracks); scan again")
    return [lengths[c] for c in part["contigs"]]


def _chunks(summaries, tracks: bool) -> list[tuple[Path, dict]]:
    """(path, summary) of every chunk, in chunk order, checked to be the whole of one scan."""
    parts = [(Path(path), read_summary(path)) for path in summaries]
    parts.sort(key=lambda p: p[1]["chunk"][0])
    counts = sorted({p[1]["chunk"][1] for p in parts})
    if len(counts) > 1:
        raise UserError(f"the chunks are of scans split {', '.join(map(str, counts[:-1]))} and {counts[-1]} ways "
                        "(--chunk i/n of several n): they are not parts of one scan")
    count, found = counts[0], [p[1]["chunk"][0] for p in parts]
    if found != list(range(count)):
        raise UserError(f"chunks {found} given; a scan in {count} chunks needs each of 0..{count - 1} once")
    for key in SAME_IN_EVERY_CHUNK:
        if len({json.dumps(p[1].get(key)) for p in parts}) > 1:
            raise UserError(f"the chunks differ in {key}: they are not parts of one scan")
    if tracks:
        unscored = [str(folder) for folder, part in parts if not part.get("bedgraph_dir")]
        if unscored:
            raise UserError(f"{unscored[0]}: this chunk was scanned without --bedgraph (gathered tracks come "
                            "from the chunks' bedGraph folders)")
        missing = [folder.parent / part["bedgraph_dir"] for folder, part in parts
                   if not (folder.parent / part["bedgraph_dir"]).is_dir()]
        if missing:  # gathered without it, the tracks would lack the chunk's bases, and say nothing
            raise UserError(f"{missing[0]}: this chunk's bedGraph folder is missing (gathered tracks come from "
                            "the chunks' bedGraph folders)")
    return parts


def read_summary(path) -> dict:
    """A chunk's summary, checked for what gathering needs."""
    try:
        part = read_json(path)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not a scan summary ({error})") from None
    chunk_ok = isinstance(part, dict) and isinstance(part.get("chunk"), list) and len(part["chunk"]) == 2 \
        and all(isinstance(x, int) for x in part["chunk"])
    if not chunk_ok or not isinstance(part.get("calls_file"), str) or not isinstance(part.get("contigs"), list) \
            or not isinstance(part.get("calls"), dict) \
            or not all(isinstance(part.get(k), (int, float)) for k in ("windows", "windows_skipped_for_n", "tokens",
                                                                      "bases", "seconds", "window_bp")):
        raise UserError(f"{path}: not a summary written by `dnabert2 scan --summary`")
    return part


def scan_line(report: dict, out) -> str:
    """The one line a scan, or its gathering, prints."""
    calls = by_label(report["calls"]) or "no calls"
    return (f"{out}: {calls} from {report['windows']} windows ({report['bases']} bp) in {report['seconds']:.1f} s, "
            f"{report['bp_per_second']} bp/s")


def no_summary_of_stdout(args) -> None:
    """A summary names its calls file, which scan-gather and scan-eval read beside it: standard output
    leaves none."""
    if str(args.out) == STDOUT and args.summary:
        raise UserError("--summary names the calls file it describes (scan-gather and scan-eval read them "
                        "together): give --out a file name, not - (standard output)")


def add_arguments(parser) -> None:
    parser.description = (
        "Join `dnabert2 scan --chunk i/n` outputs, given by their summaries (in any order), into one sorted BED; "
        "calls that meet across chunk ends merge, so the result is what one unchunked scan gives. --top-k is "
        "applied here, over the whole genome.")
    parser.add_argument("summaries", nargs="+", type=Path, metavar="SUMMARY", help="chunk summaries (JSON)")
    parser.add_argument("--out", required=True, type=output_file, help="calls (BED6+4; .gz: bgzip with a tabix index; - plain BED "
                        "to standard output)")
    parser.add_argument("--bedgraph", type=Path, metavar="DIR",
                        help="joined per-window scores, one bedGraph per label and strand (every chunk needs its own)")
    parser.add_argument("--bigwig", type=Path, metavar="DIR", help="the same tracks as bigWig (from the chunks' bedGraph)")
    parser.add_argument("--summary", type=output_file, help="joined summary (JSON)")
    add_settings(parser, ScanSettings, only=["top_k"])


def run(args) -> None:
    settings = settings_from(args, ScanSettings)
    no_summary_of_stdout(args)
    with standard_output(args.out) as out:
        report = gather(args.summaries, out, bedgraph=args.bedgraph, bigwig=args.bigwig, summary=args.summary,
                        top_k=settings.top_k)
        print(scan_line(report, args.out))
