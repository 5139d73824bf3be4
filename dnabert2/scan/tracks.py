"""Score tracks of a scan: one track per label and strand, streamed to temporary files so
memory does not grow with the genome, and written as a folder of bedGraph files
(`{label}.plus.bedgraph`, `{label}.minus.bedgraph`), each valid on its own for bedtools and genome
browsers, and/or as bigWig (pyBigWig). A dense scan's value covers its base; a window scan's covers
the window's site up to where the next window's site lies (at most one stride), so a track's
intervals never overlap."""

import re
import tempfile
from pathlib import Path

import numpy as np

from ..bedgraph import bedgraph_table
from ..errors import UserError
from ..model.checkpoint import sha256_of
from ..outputs import atomic_folder, check_writable
from ..stops import held

STRANDS = {"+": "plus", "-": "minus"}
SUFFIXES = {"bedgraph": ".bedgraph", "bigwig": ".bw"}
BATCH = 100_000  # rows formatted, or handed to pyBigWig, at a time


def file_name(label: str, strand: str, kind: str) -> str:
    """A track's file: the label (with characters a file name cannot hold replaced) and strand."""
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', label)}.{STRANDS[strand]}{SUFFIXES[kind]}"


def check_folders(bedgraph, bigwig, chunks=(), files=()) -> None:
    """Each track folder may be new, or hold an earlier scan's tracks (which it replaces); anything
    else in it is refused rather than deleted, the two kinds need folders of their own, neither may
    be one of `chunks`, the bedGraph folders scan-gather reads, and no other output (`files`, the
    other folder) may lie inside one: a folder is published by replacing it whole."""
    if bedgraph and bigwig and Path(bedgraph).resolve() == Path(bigwig).resolve():
        raise UserError(f"{bedgraph}: given for both --bedgraph and --bigwig; give each a folder of its own")
    for folder in filter(None, (bedgraph, bigwig)):
        for other in filter(None, (*files, bedgraph, bigwig)):
            if Path(folder).resolve() in Path(other).resolve().parents:
                raise UserError(f"{other}: inside the track folder {folder}, which is written whole; give it a place "
                                "of its own")
    read = {Path(folder).resolve() for folder in chunks}
    for given in filter(None, (bedgraph, bigwig)):
        if Path(given).resolve() in read:  # replaced while it is read
            raise UserError(f"{given}: a chunk's bedGraph folder, read to gather the tracks; give them another folder")
    for folder, kind in ((bedgraph, "bedgraph"), (bigwig, "bigwig")):
        if folder:
            _check_folder(folder, kind)


def _check_folder(path, kind: str) -> None:
    path = Path(path)
    check_writable(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder (--{kind} takes a folder, one file per label and strand)")
    others = sorted(p.name for p in path.iterdir() if not p.name.endswith(SUFFIXES[kind])) if path.is_dir() else []
    if others:
        raise UserError(f"{path}: holds {', '.join(others[:3])}, not {kind} tracks; give a folder of its own")


ROW = np.dtype([("contig", "<i4"), ("start", "<i8"), ("end", "<i8"), ("score", "<i2")])


class Tracks:
    """Scores per (label, strand), added in genome order and kept as binary rows in temporary files
    (contig, start, end, probability × 1000), so a per-base track of a large genome costs disk, not
    memory, and bigWig is written from the numbers without parsing text."""

    def __init__(self):
        self.folder = tempfile.TemporaryDirectory(prefix="dnabert2-tracks-")
        self.files = {}
        self.contigs: dict[str, int] = {}

    def _append(self, label: str, strand: str, rows: np.ndarray) -> None:
        if (label, strand) not in self.files:
            self.files[(label, strand)] = open(Path(self.folder.name) / f"{len(self.files)}.rows", "wb")
        rows.tofile(self.files[(label, strand)])

    def add_many(self, label: str, strand: str, contig: str, starts, ends, scores, join: bool = False) -> None:
        """Intervals in order with their scores (probability × 1000). With join, neighbours that touch
        and score alike become one bedGraph line, so a per-base track stays as small as its changes."""
        if not len(starts):
            return
        joins = (starts[1:] == ends[:-1]) & (scores[1:] == scores[:-1]) & join
        first = np.flatnonzero(np.concatenate([[True], ~joins]))
        last = np.concatenate([first[1:] - 1, [len(starts) - 1]])
        rows = np.empty(len(first), dtype=ROW)
        rows["contig"] = self.contigs.setdefault(contig, len(self.contigs))
        rows["start"], rows["end"], rows["score"] = starts[first], ends[last], scores[first]
        self._append(label, strand, rows)

    def extend(self, folder, scanned: dict, summary) -> None:
        """Append the tracks of a bedGraph folder written by `write_bedgraph` (a chunk's, whose summary
        `summary` reads `scanned`)."""
        for path in sorted(Path(folder).glob("*.bedgraph")):
            check_track(path, scanned, "bedgraph", summary)
            with open(path) as handle:
                label, strand = _track_of(handle.readline(), path)
            table = bedgraph_table(path, 1)
            rows = np.empty(len(table), dtype=ROW)
            rows["contig"] = [self.contigs.setdefault(c, len(self.contigs)) for c in table["contig"]]
            rows["start"], rows["end"] = table["start"], table["end"]
            rows["score"] = np.rint(table["value"].to_numpy() * 1000)
            self._append(label, strand, rows)

    def _batches(self, key):
        """A track's rows, BATCH at a time."""
        self.files[key].flush()
        rows = np.memmap(self.files[key].name, dtype=ROW, mode="r") if Path(self.files[key].name).stat().st_size \
            else np.empty(0, dtype=ROW)
        for start in range(0, len(rows), BATCH):
            yield rows[start:start + BATCH]

    def write(self, bedgraph, bigwig, lengths: dict[str, int]) -> dict[str, dict[str, str]]:
        """Write the tracks into the folders given (bedGraph, bigWig), then let go of the temporary files.
        Returns each file's SHA-256 by kind and name, for the summary: scan-eval then knows a folder
        written over by another scan, or a damaged file, from the tracks of this one."""
        try:
            return {**({"bedgraph": self.write_bedgraph(bedgraph)} if bedgraph else {}),
                    **({"bigwig": self.write_bigwig(bigwig, lengths)} if bigwig else {})}
        finally:
            self.close()

    def write_bedgraph(self, folder) -> dict[str, str]:
        names = list(self.contigs)
        with atomic_folder(folder, force=True) as tmp:
            for (label, strand) in sorted(self.files):
                with open(tmp / file_name(label, strand, "bedgraph"), "w") as out:
                    out.write(f'track type=bedGraph name="{label}{strand}" description="dnabert2 scan: P({label}), '
                              f'{STRANDS[strand]} strand"\n')
                    for rows in self._batches((label, strand)):
                        out.writelines(f"{names[c]}\t{a}\t{b}\t{v / 1000:.3f}\n" for c, a, b, v in
                                       zip(rows["contig"].tolist(), rows["start"].tolist(), rows["end"].tolist(),
                                           rows["score"].tolist()))
            return _digests(tmp)

    def write_bigwig(self, folder, lengths: dict[str, int]) -> dict[str, str]:
        """The same tracks as bigWig; `lengths` (the genome's contigs, in order) make the header."""
        import pyBigWig

        names = np.array(list(self.contigs), dtype=object)
        with atomic_folder(folder, force=True) as tmp:
            for key in sorted(self.files):
                bigwig = pyBigWig.open(str(tmp / file_name(*key, "bigwig")), "w")
                try:
                    bigwig.addHeader(list(lengths.items()))
                    for rows in self._batches(key):
                        bigwig.addEntries(names[rows["contig"]].tolist(), rows["start"].tolist(),
                                          ends=rows["end"].tolist(), values=(rows["score"] / 1000).tolist())
                finally:
                    bigwig.close()
            return _digests(tmp)

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        with held():  # a stop asked for meanwhile must not leave a genome's worth of rows
            self.folder.cleanup()

    # As a context, the rows go as an error unwinds, not when the collector finds the folder: a process
    # that ends with os._exit (cli, after a data-loading worker died) would leave them in $TMPDIR.
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _digests(folder: Path) -> dict[str, str]:
    return {path.name: sha256_of(path) for path in sorted(folder.iterdir())}


def check_track(path: Path, scanned: dict, kind: str, summary) -> None:
    """Refuse a track file other than those the scan of `summary` (read: `scanned`) wrote: another
    scan's, written over it into the same folder, or a damaged one. A summary written before the
    digests were recorded is taken on trust."""
    recorded = (scanned.get("track_sha256") or {}).get(kind)
    if recorded is not None and recorded.get(path.name) != sha256_of(path):
        raise UserError(f"{path}: not the track the scan of {summary} wrote (another scan wrote over it, or it is "
                        "damaged); scan again")


def _track_of(header: str, path: Path) -> tuple[str, str]:
    """(label, strand) from a track line this module wrote."""
    name = header.split('name="', 1)[1].split('"', 1)[0] if header.startswith("track") and 'name="' in header else ""
    if not name or name[-1] not in STRANDS:
        raise UserError(f"{path}: not a dnabert2 scan track (no track line naming its label and strand)")
    return name[:-1], name[-1]
