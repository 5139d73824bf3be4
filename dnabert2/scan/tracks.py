"""Per-window score tracks of a scan: one track per label and strand, streamed to temporary files so
memory does not grow with the genome, and written as a folder of bedGraph files
(`{label}.plus.bedgraph`, `{label}.minus.bedgraph`), each valid on its own for bedtools and genome
browsers, and/or as bigWig (pyBigWig). A window's value covers its site up to where the next
window's site lies (at most one stride), so a track's intervals never overlap."""

import re
import tempfile
from pathlib import Path

from ..errors import UserError
from ..outputs import atomic_folder, make_parent

STRANDS = {"+": "plus", "-": "minus"}
SUFFIXES = {"bedgraph": ".bedgraph", "bigwig": ".bw"}
BIGWIG_BATCH = 100_000  # entries handed to pyBigWig at a time


def file_name(label: str, strand: str, kind: str) -> str:
    """A track's file: the label (with characters a file name cannot hold replaced) and strand."""
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', label)}.{STRANDS[strand]}{SUFFIXES[kind]}"


def check_folders(bedgraph, bigwig) -> None:
    """Each track folder may be new, or hold an earlier scan's tracks (which it replaces); anything
    else in it is refused rather than deleted, and the two kinds need folders of their own."""
    if bedgraph and bigwig and Path(bedgraph).resolve() == Path(bigwig).resolve():
        raise UserError(f"{bedgraph}: given for both --bedgraph and --bigwig; give each a folder of its own")
    for folder, kind in ((bedgraph, "bedgraph"), (bigwig, "bigwig")):
        if folder:
            _check_folder(folder, kind)


def _check_folder(path, kind: str) -> None:
    path = Path(path)
    make_parent(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder (--{kind} takes a folder, one file per label and strand)")
    others = sorted(p.name for p in path.iterdir() if not p.name.endswith(SUFFIXES[kind])) if path.is_dir() else []
    if others:
        raise UserError(f"{path}: holds {', '.join(others[:3])}, not {kind} tracks; give a folder of its own")


class Tracks:
    """Scores per (label, strand), added in genome order."""

    def __init__(self):
        self.folder = tempfile.TemporaryDirectory(prefix="dnabert2-tracks-")
        self.files = {}

    def _file(self, label: str, strand: str):
        if (label, strand) not in self.files:
            self.files[(label, strand)] = open(Path(self.folder.name) / f"{len(self.files)}.bedgraph", "w")
        return self.files[(label, strand)]

    def add(self, label: str, strand: str, contig: str, start: int, end: int, probability: float) -> None:
        self._file(label, strand).write(f"{contig}\t{start}\t{end}\t{probability:.3f}\n")

    def extend(self, folder) -> None:
        """Append the tracks of a bedGraph folder written by `write_bedgraph` (a chunk's)."""
        for path in sorted(Path(folder).glob("*.bedgraph")):
            with open(path) as handle:
                header = handle.readline()
                label, strand = _track_of(header, path)
                self._file(label, strand).writelines(handle)

    def _rows(self, key):
        self.files[key].flush()
        with open(self.files[key].name) as handle:
            for line in handle:
                contig, start, end, value = line.split("\t")
                yield contig, int(start), int(end), float(value)

    def write(self, bedgraph, bigwig, lengths: dict[str, int]) -> None:
        """Write the tracks into the folders given (bedGraph, bigWig), then let go of the temporary files."""
        try:
            if bedgraph:
                self.write_bedgraph(bedgraph)
            if bigwig:
                self.write_bigwig(bigwig, lengths)
        finally:
            self.close()

    def write_bedgraph(self, folder) -> None:
        with atomic_folder(folder, force=True) as tmp:
            for (label, strand), handle in sorted(self.files.items()):
                handle.flush()
                with open(tmp / file_name(label, strand, "bedgraph"), "w") as out, open(handle.name) as track:
                    out.write(f'track type=bedGraph name="{label}{strand}" description="dnabert2 scan: P({label}), '
                              f'{STRANDS[strand]} strand"\n')
                    out.writelines(track)

    def write_bigwig(self, folder, lengths: dict[str, int]) -> None:
        """The same tracks as bigWig; `lengths` (the genome's contigs, in order) make the header."""
        import pyBigWig

        with atomic_folder(folder, force=True) as tmp:
            for key in sorted(self.files):
                bigwig = pyBigWig.open(str(tmp / file_name(*key, "bigwig")), "w")
                try:
                    bigwig.addHeader(list(lengths.items()))
                    batch = []
                    for row in self._rows(key):
                        batch.append(row)
                        if len(batch) == BIGWIG_BATCH:
                            _add(bigwig, batch)
                            batch = []
                    _add(bigwig, batch)
                finally:
                    bigwig.close()

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()
        self.folder.cleanup()


def _add(bigwig, rows) -> None:
    if rows:
        contigs, starts, ends, values = (list(column) for column in zip(*rows))
        bigwig.addEntries(contigs, starts, ends=ends, values=values)


def _track_of(header: str, path: Path) -> tuple[str, str]:
    """(label, strand) from a track line this module wrote."""
    name = header.split('name="', 1)[1].split('"', 1)[0] if header.startswith("track") and 'name="' in header else ""
    if not name or name[-1] not in STRANDS:
        raise UserError(f"{path}: not a dnabert2 scan track (no track line naming its label and strand)")
    return name[:-1], name[-1]
