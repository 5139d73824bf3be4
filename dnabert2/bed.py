"""BED output: 0-based half-open, sorted by contig order then start, written atomically."""

import csv
from collections.abc import Iterable, Sequence

from .outputs import atomic_output

Row = tuple  # (contig, start, end[, name, score, strand, ...])


def write_bed(path, rows: Iterable[Row], contig_order: Sequence[str]) -> int:
    """Write rows sorted by (contig order, start, end); returns the number written."""
    order = {name: i for i, name in enumerate(contig_order)}
    ordered = sorted(rows, key=lambda row: (order[row[0]], row[1], row[2], row[3:]))
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(ordered)
    return len(ordered)
