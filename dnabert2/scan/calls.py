"""Calls: windows scoring at or above a threshold, overlapping or touching ones (same label and strand)
merged into one call that keeps its best window's site as the peak.

Calls are written as BED6+4 in the ENCODE narrowPeak layout: contig, start, end (0-based, half-open),
name (the label), score (probability × 1000), strand, then the windows (or reads) supporting the
call, -1, -1, and the peak's offset from start. Scores are compared as those integers throughout, so
calls merged from chunk files are the calls a single run makes.
"""

import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..errors import UserError
from ..outputs import write_bed_rows
from ..sequences.fasta import open_text
from ..sequences.inputs import check_interval, is_bed_header

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Call:
    contig: str
    start: int
    end: int
    label: str
    score: int  # probability × 1000, rounded
    strand: str
    support: int  # windows merged, or reads in reads mode
    peak: int  # the best window's site, on the contig

    def row(self) -> tuple:
        return (self.contig, self.start, self.end, self.label, self.score, self.strand, self.support, -1, -1,
                self.peak - self.start)


def score_of(probability: float) -> int:
    return int(round(probability * 1000))


def threshold_score(threshold: float) -> int:
    """The least score a call may have: no BED score below the threshold's thousandths (rounding it,
    0.0025 would call 0.002). Rounded first to undo float noise (0.3 * 1000 is 300.00000000000006)."""
    return math.ceil(round(threshold * 1000, 6))


MERGED = "merging windows"  # a summary's calls_by for calls merged from windows (--merge)


class Merger:
    """Merges calls fed in genome order, per (label, strand): a call overlapping or touching the open
    one joins it, as bedtools merge joins book-ended intervals (support adds up; the higher score, or
    the earlier on a tie, gives the peak)."""

    def __init__(self):
        self.open: dict[tuple[str, str], Call] = {}
        self.done: list[Call] = []

    def add(self, call: Call) -> None:
        key = (call.label, call.strand)
        current = self.open.get(key)
        if current is not None and current.contig == call.contig and call.start <= current.end:
            best = call if call.score > current.score else current
            self.open[key] = replace(current, end=max(current.end, call.end), score=best.score, peak=best.peak,
                                     support=current.support + call.support)
            return
        if current is not None:
            self.done.append(current)
        self.open[key] = call

    def finish(self) -> list[Call]:
        self.done.extend(self.open.values())
        self.open.clear()
        return self.done


def top(calls: list[Call], k: int | None, order: dict[str, int]) -> list[Call]:
    """The k best-scoring calls of each label (on a tie, the earlier in the genome), or all."""
    if k is None:
        return calls
    kept = []
    for label in sorted({c.label for c in calls}):
        mine = [c for c in calls if c.label == label]
        kept += sorted(mine, key=lambda c: (-c.score, order[c.contig], c.start, c.end, c.strand))[:k]
    return kept


def write_calls(path, calls: Iterable[Call], order: dict[str, int]) -> int:
    """Calls as sorted BED6+4 (with a tabix index beside them when named .gz: write_bed_rows)."""
    return write_bed_rows(path, sorted((c.row() for c in calls), key=lambda r: (order[r[0]], r[1], r[2], r[3], r[5])))


def read_calls(path) -> list[Call]:
    calls = []
    with open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip() or is_bed_header(line):
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                contig, start, end, label, score, strand, support = fields[0], int(fields[1]), int(fields[2]), \
                    fields[3], int(fields[4]), fields[5], int(fields[6])
                offset = int(fields[9])
            except (IndexError, ValueError):
                raise UserError(f"{path}: line {number} is not a dnabert2 scan call (BED6+4)") from None
            check_interval(path, number, contig, start, end)
            # A scan calls each strand apart, and evaluation matches a call to sites of its strand alone.
            if strand not in ("+", "-"):
                raise UserError(f"{path}: line {number}: strand {strand!r}, not + or - as a scan writes it")
            # narrowPeak's -1 says no summit was called: the call's middle stands for it.
            if offset == -1:
                offset = (end - start) // 2
            if not 0 <= offset < end - start:
                raise UserError(f"{path}: line {number}: the summit offset {fields[9]} lies outside the call "
                                f"({end - start} bp; narrowPeak column 10 counts from its start, -1 for none)")
            calls.append(Call(contig, start, end, label, score, strand, support, start + offset))
    return calls


def count_calls(calls: list[Call], labels) -> dict[str, int]:
    """Calls by label, as a summary holds them: each of `labels` (those called) counted, 0 where it has
    none, so that a reader finds every label it asked for."""
    counted = Counter(c.label for c in calls)
    return {label: counted[label] for label in labels} | dict(counted)


def say_short_of_top(counts: dict[str, int], k: int | None, threshold: float) -> None:
    """Warn of the labels with fewer calls than --top-k: it ranks the calls above --threshold only, and
    a weak model's scores, which may rank sites well, rarely reach the default."""
    short = {label: n for label, n in counts.items() if k is not None and n < k}
    if short:
        advice = ", which it ranks (a lower --threshold ranks more: 0 ranks every peak)" if threshold > 0 else ""
        log.warning("--top-k %d: %s call(s) above --threshold %g%s", k,
                    ", ".join(f"{n} {label}" for label, n in sorted(short.items())), threshold, advice)


def by_label(counts: dict[str, int]) -> str:
    """Calls counted by label, as messages and a scan's line say them (labels without calls unsaid)."""
    return ", ".join(f"{n} {label}" for label, n in sorted(counts.items()) if n)


def check_counts(calls: list[Call], path, summary, counted: dict[str, int], advice: str) -> None:
    """Refuse calls that are not those the summary of their scan counted, label by label: written over
    by another run since, or another scan's (equal counts pass: the check is a count)."""
    found = count_calls(calls, counted)
    if found != counted:
        raise UserError(f"{path}: not the calls of the scan {summary} describes (calls by label: "
                        f"{by_label(found) or 'none'}; the scan made {by_label(counted) or 'none'}); {advice}")


def check_scored(windows: int, skipped: int, max_n: float | None, mode: str = "fasta") -> None:
    """Refuse a scan whose every window was skipped for its N (a whole scan, or its gathered chunks):
    empty calls and tracks with exit 0 would pass for a scan that found nothing. max_n: a window
    scan's (None for a per-base scan, whose cores of N alone are skipped). A BAM scan that read
    nothing is said aloud, not refused: a sample may have no read in a region."""
    if not windows and not skipped and mode != "fasta":
        what = "no stretch covered deeply enough (--covered)" if mode == "covered" else \
            "no read that passes the filters (--min-mapq, and the flags left out), if any lie there"
        log.warning("nothing was scanned: the regions asked for hold %s; the calls are empty", what)
    if windows or not skipped:
        return
    if max_n is None:
        raise UserError(f"every core ({skipped:,}) is N alone, so no base was scored: give regions of sequence")
    raise UserError(f"every window ({skipped:,}) holds more N than --max-n {max_n} allows, so none was scored: give "
                    "regions of sequence, or a higher --max-n")
