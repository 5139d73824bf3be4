"""Calls: windows scoring at or above a threshold, overlapping ones (same label and strand) merged
into one call that keeps its best window's site as the peak.

Calls are written as BED6+4 in the ENCODE narrowPeak layout: contig, start, end (0-based, half-open),
name (the label), score (probability × 1000), strand, then the windows (or reads) supporting the
call, -1, -1, and the peak's offset from start. Scores are compared as those integers throughout, so
calls merged from chunk files are the calls a single run makes.
"""

import csv
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UserError
from ..outputs import atomic_output


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


class Merger:
    """Merges calls fed in genome order, per (label, strand): a call overlapping the open one joins
    it (support adds up; the higher score, or the earlier on a tie, gives the peak)."""

    def __init__(self):
        self.open: dict[tuple[str, str], Call] = {}
        self.done: list[Call] = []

    def add(self, call: Call) -> None:
        key = (call.label, call.strand)
        current = self.open.get(key)
        if current is not None and current.contig == call.contig and call.start < current.end:
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
    rows = sorted((c.row() for c in calls), key=lambda r: (order[r[0]], r[1], r[2], r[3], r[5]))
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)
    return len(rows)


def read_calls(path) -> list[Call]:
    calls = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            fields = line.rstrip("\n").split("\t")
            try:
                contig, start, end, label, score, strand, support = fields[0], int(fields[1]), int(fields[2]), \
                    fields[3], int(fields[4]), fields[5], int(fields[6])
                peak = start + int(fields[9])
            except (IndexError, ValueError):
                raise UserError(f"{path}: line {number} is not a dnabert2 scan call (BED6+4)") from None
            calls.append(Call(contig, start, end, label, score, strand, support, peak))
    return calls


def track_name(label: str, strand: str) -> str:
    return f"{label}{strand}"


class BedGraph:
    """Per-window scores, one bedGraph track per label and strand, streamed to temporary files so memory
    does not grow with the genome. A window's value covers its site up to where the next window's
    site lies (at most one stride), so intervals never overlap."""

    def __init__(self):
        self.folder = tempfile.TemporaryDirectory(prefix="dnabert2-bedgraph-")
        self.files = {}

    def _file(self, name: str):
        if name not in self.files:
            self.files[name] = open(Path(self.folder.name) / f"{len(self.files)}.bedgraph", "w")
        return self.files[name]

    def add(self, label: str, strand: str, contig: str, start: int, end: int, probability: float) -> None:
        self._file(track_name(label, strand)).write(f"{contig}\t{start}\t{end}\t{probability:.3f}\n")

    def extend(self, path) -> None:
        """Append the tracks of a bedGraph written by `write` (a chunk's)."""
        with open(path) as handle:
            out = None
            for line in handle:
                if line.startswith("track"):
                    out = self._file(line.split('name="', 1)[1].split('"', 1)[0])
                elif out is not None:
                    out.write(line)

    def write(self, path) -> None:
        with atomic_output(path) as tmp, open(tmp, "w") as handle:
            for name in sorted(self.files):
                self.files[name].close()
                handle.write(f'track type=bedGraph name="{name}" description="dnabert2 scan: P({name[:-1]}), '
                             f'{"plus" if name[-1] == "+" else "minus"} strand"\n')
                with open(self.files[name].name) as track:
                    shutil.copyfileobj(track, handle)
        self.close()

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.folder.cleanup()
