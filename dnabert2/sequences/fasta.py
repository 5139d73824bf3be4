"""Genome sequences: streaming FASTA/GenBank reading with validation, bgzip conversion with indices,
and random access by region."""

import contextlib
import errno
import functools
import gzip
import logging
import os
import re
import struct
import tempfile
import warnings
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import pysam
from Bio import BiopythonParserWarning, SeqIO
from Bio.Seq import UndefinedSequenceError

from ..errors import UserError, first_names
from ..outputs import atomic_output, bgzip_named, remove_abandoned, temporary_name
from ..stops import held

log = logging.getLogger(__name__)

# htslib prints its own multi-line complaints to stderr; our errors say what went wrong in one line.
pysam.set_verbosity(0)

IUPAC = "ACGTURYKMSWBDHVN"
_NUCLEOTIDE_BYTES = (IUPAC + IUPAC.lower()).encode()
_NOT_NUCLEOTIDE = re.compile(f"[^{IUPAC}{IUPAC.lower()}]")
_HEADER_LINE = re.compile(rb"^>.*$", re.M)
# A GenBank record, or the header of a GenBank release file (GBVRL1.SEQ) before its first record.
GENBANK_START = re.compile(r"LOCUS|GB[A-Z]{3}\d+\.SEQ\b")
_CHUNK = 1 << 20
CR_ALONE = "its lines end in CR alone, as old Mac files' do (tr '\\r' '\\n')"
LINE_WIDTH = 60


# The empty block bgzip ends every file with (SAM/BAM specification, 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def compression(path) -> str | None:
    """'bgzf', 'gzip' or None (plain), from the file's first bytes rather than its name. A bgzip file
    without its end-of-file block is refused: cut between two blocks, it reads as whole."""
    with open(path, "rb") as handle:
        head = handle.read(18)
        if head[:2] != b"\x1f\x8b":
            return None
        # A BGZF block is a gzip member with an extra field whose subfield id is "BC".
        if not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"):
            return "gzip"
        handle.seek(-min(len(BGZF_EOF), os.fstat(handle.fileno()).st_size), os.SEEK_END)
        if handle.read() != BGZF_EOF:
            raise UserError(f"{path}: truncated bgzip file (no end-of-file block); fetch it again (or, if an old "
                            "bgzip wrote it, recompress it: zcat it | bgzip)")
    return "bgzf"


def check_file(path) -> Path:
    """The path of an existing regular file, or a UserError saying what is there instead."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    return path


def check_distinct(paths) -> None:
    """The same file given twice (by two names, or a link) would be sampled twice as often, and its
    windows could be both trained on and held out."""
    _refuse_twice(((path, (path.stat().st_dev, path.stat().st_ino) if path.exists() else path)
                   for path in map(Path, paths)), "the same file as")


def check_distinct_contigs(genomes) -> None:
    """Two files of one genome (g.fa and g.fa.gz: every contig of one name and length), as one file
    given twice, would be sampled twice as often. genomes: (path, contig lengths) pairs."""
    _refuse_twice(((path, tuple(lengths.items())) for path, lengths in genomes),
                  "the same genome (every contig of one name and length) as")


def _refuse_twice(keyed, same: str) -> None:
    """keyed: (path, key) pairs; two paths of one key are one genome given twice."""
    seen = {}
    for path, key in keyed:
        if key in seen:
            raise UserError(f"{path}: {same} {seen[key]}; give each genome once")
        seen[key] = path


def open_binary(path):
    """Open a plain, gzip or bgzip file for reading decompressed bytes."""
    path = check_file(path)
    return gzip.open(path, "rb") if compression(path) else open(path, "rb")


def open_text(path, newline: str | None = None):
    """Open a plain, gzip or bgzip file for reading UTF-8 text; a byte-order mark (spreadsheets write
    one) is dropped, so it does not become part of the first column's name."""
    path = check_file(path)
    if compression(path):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline=newline)
    return open(path, encoding="utf-8-sig", newline=newline)


def corrupt(path, error) -> UserError:
    return UserError(f"{path}: truncated or corrupt compressed file ({error})")


@contextlib.contextmanager
def reading_text(path, kind: str):
    """What a binary, truncated or corrupt file raises while it is read as text, as one UserError."""
    try:
        yield
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a {kind} file (binary content, or text that is not UTF-8{undecodable_at(path)})") \
            from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise corrupt(path, error) from None


def undecodable_at(path) -> str:
    """Where the first byte that is not UTF-8 lies, so that one accented letter in a note can be found
    and mended in a file of millions of lines (the decoder reads in blocks, and knows no line)."""
    longest = 1 << 20
    try:
        with open_binary(path) as handle:
            for number, line in enumerate(iter(functools.partial(handle.readline, longest), b""), 1):
                if len(line) == longest and not line.endswith(b"\n"):
                    return ""  # binary content: no line to name
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as error:
                    return f": line {number}, byte 0x{line[error.start]:02x} at column {error.start + 1}"
    except (EOFError, OSError, zlib.error):
        pass
    return ""


def sniff_format(path) -> str:
    """'fasta' or 'genbank', from the first non-blank line."""
    try:
        with open_text(path) as handle:
            for line in handle:
                if line.strip():
                    if line.startswith(">"):
                        return "fasta"
                    if GENBANK_START.match(line):
                        return "genbank"
                    break
            else:
                raise UserError(f"{path}: empty file, no sequences")
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as error:
        if isinstance(error, UnicodeDecodeError):
            raise UserError(f"{path}: not a FASTA or GenBank file (binary content, or text that is not UTF-8"
                            f"{undecodable_at(path)})") from None
        raise corrupt(path, error) from None
    raise UserError(f"{path}: not a FASTA or GenBank file (first line: {line.strip()[:40]!r})")


_STALE_INDEX = "if the FASTA was replaced, remove its .fai (and .gzi) to rebuild them"


def check_nucleotides(path, name: str, sequence: str, before: int = 0) -> None:
    """Raise a UserError naming the record and the first character that is not an IUPAC nucleotide
    (its 1-based position in the record, of which `sequence` follows `before` bases)."""
    bad = _NOT_NUCLEOTIDE.search(sequence)
    if bad:
        raise UserError(
            f"{path}: record {name!r} has a non-nucleotide character {bad.group()!r} "
            f"at position {before + bad.start() + 1}"
        )


def too_many_n(sequence: str, max_n: float) -> bool:
    """Whether more than a `max_n` share of a window's bases are N or another IUPAC code (not A, C, G
    or T): what scans, tasks and pretraining skip."""
    return len(sequence) - sum(sequence.count(b) for b in "ACGT") > max_n * len(sequence)


def check_name(path, name: str, seen: set[str] | None) -> None:
    """Contig names must be present and unique: indices and BED files address contigs by name (seen:
    those met so far; None for sequences to score, whose names are ids that may repeat)."""
    if not name:
        raise UserError(f"{path}: a record has an empty name (a '>' line with nothing after it)")
    if seen is None:
        return
    if name in seen:
        raise UserError(f"{path}: record name {name!r} appears more than once")
    seen.add(name)


def _count_headers(path) -> int:
    """The '>' lines of a FASTA (plain or compressed), read in large chunks."""
    count, last = 0, b"\n"
    with open_binary(path) as handle:
        while chunk := handle.read(_CHUNK):
            count += (last + chunk).count(b"\n>")
            last = chunk[-1:]
    return count


def read_records(path, distinct: bool = True) -> Iterator[tuple[str, str]]:
    """(name, sequence) for each record of a FASTA (plain, gzip, bgzip) or GenBank file, as written
    (case kept); validates that the file has sequence and only IUPAC nucleotides, and, if `distinct`
    (a genome's contigs), that no name repeats."""
    fmt = sniff_format(path)
    count = 0
    seen = set() if distinct else None
    try:
        if fmt == "genbank":
            with open_text(path) as handle:
                for record in genbank_records(path, handle):
                    try:
                        sequence = str(record.seq)
                    except UndefinedSequenceError:
                        raise UserError(f"{path}: GenBank record {record.id!r} has no sequence (no ORIGIN)") from None
                    check_name(path, record.id, seen)
                    check_nucleotides(path, record.id, sequence)
                    count += len(sequence) > 0
                    yield record.id, sequence
        else:
            with pysam.FastxFile(str(path)) as records:
                for record in records:
                    sequence = record.sequence or ""
                    if "\r" in sequence:  # kseq keeps the CR of a CRLF line holding nothing else
                        sequence = sequence.replace("\r", "")
                    # "> chrA": faidx and Biopython name it by its first word, where pysam leaves it unnamed.
                    name = record.name or next(iter((record.comment or "").split()), "")
                    check_name(path, name, seen)
                    _check_has_sequence(path, name, len(sequence))
                    check_nucleotides(path, name, sequence)
                    count += len(sequence) > 0
                    yield name, sequence
    except (EOFError, OSError, zlib.error) as error:
        raise corrupt(path, error) from None
    except UnicodeDecodeError:  # a ValueError too, but no damage: a letter of another encoding
        raise UserError(f"{path}: not a {fmt} file (binary content, or text that is not UTF-8"
                        f"{undecodable_at(path)})") from None
    except ValueError as error:  # pysam's report of a damaged stream, or a malformed GenBank entry
        if fmt == "fasta" and compression(path):
            raise corrupt(path, error) from None
        raise UserError(f"{path}: cannot parse {fmt}: {error}") from None
    if count == 0:
        raise UserError(f"{path}: no sequence found (empty {fmt})")


def genbank_records(path, handle) -> Iterator:
    """Biopython's GenBank records, with what it only warns of refused in one UserError each: a
    sequence of another length than its LOCUS line says (a file cut short), a protein record, an
    empty record (faidx would leave its contig out, unsaid); and a malformed entry."""
    records = SeqIO.parse(handle, "genbank")
    while True:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", "Expected sequence length", BiopythonParserWarning)
            try:
                record = next(records)
            except StopIteration:
                return
            except BiopythonParserWarning as warning:
                if not str(warning).startswith("Expected sequence length"):  # made an error by the caller's filters
                    raise
                raise UserError(f"{path}: {str(warning).rstrip('.')}: the LOCUS line and the sequence disagree (a "
                                "file cut short?)") from None
            except ValueError as error:
                raise UserError(f"{path}: not a readable GenBank file ({str(error).splitlines()[0][:160]})") from None
        if record.annotations.get("molecule_type") == "protein":
            raise UserError(f"{path}: GenBank record {record.id!r} is a protein record (LOCUS … aa), not DNA")
        _check_has_sequence(path, record.id, len(record.seq))  # a CONTIG-only record has a length, no bases
        yield record


def _write_wrapped(out, name: str, sequence: str) -> None:
    out.write(f">{name}\n".encode())
    for i in range(0, len(sequence), LINE_WIDTH):
        out.write(sequence[i : i + LINE_WIDTH].encode() + b"\n")


def _copy_fasta_stream(path, out) -> None:
    """Copy a FASTA byte stream into `out`, validating it chunk by chunk in constant memory: names,
    bases (positions counted along the record), and a sequence in every record."""
    names = set()
    name, length = None, 0  # the record being read, and its bases so far
    carry, line_start = b"", True  # whether the next block starts a line
    with open_binary(path) as source:
        while True:
            chunk = source.read(_CHUNK)
            buffer = carry + chunk
            cut = buffer.rfind(b"\n") + 1 if chunk else len(buffer)
            # A line of bases longer than a chunk (a FASTA of one line per record) goes on in pieces, so
            # memory stays at a chunk; only a header line is kept whole, so one that long is refused.
            if not cut and len(buffer) >= _CHUNK:
                if line_start and buffer.removeprefix(b"\xef\xbb\xbf")[:1] == b">":
                    raise UserError(f"{path}: a header line of over {_CHUNK >> 20} MiB: "
                                    + (CR_ALONE if b"\r" in buffer else "longer than any FASTA header (a binary or damaged file?)"))
                cut = len(buffer)
            block, carry = buffer[:cut], buffer[cut:]
            if block:
                block = block.replace(b"\r", b"")
                if name is None:  # a byte-order mark, as some Windows editors write, is no part of the header
                    block = block.removeprefix(b"\xef\xbb\xbf")
                if not names and not block.lstrip().startswith(b">"):
                    raise UserError(f"{path}: not a FASTA file (no '>' header before the sequence)")
                start = 0
                headers = [h for h in _HEADER_LINE.finditer(block) if h.start() or line_start]
                for header in [*headers, None]:
                    sequence = block[start:header.start() if header else len(block)].replace(b"\n", b"")
                    if sequence.translate(None, _NUCLEOTIDE_BYTES):
                        check_nucleotides(path, name, sequence.decode(errors="replace"), before=length)
                    length += len(sequence)
                    if header:
                        _check_has_sequence(path, name, length)
                        name, length, start = _header_name(header[0]), 0, header.end()
                        check_name(path, name, names)
                out.write(block)
                line_start = block.endswith(b"\n")
            if not chunk:
                break
    if not line_start:  # the file's last line, ended
        out.write(b"\n")
    if name is None:
        raise UserError(f"{path}: no sequence found (empty FASTA)")
    _check_has_sequence(path, name, length)


def _check_has_sequence(path, name: str | None, length: int) -> None:
    # faidx leaves a record without bases out of the index: its contig would vanish unsaid.
    if name is not None and length == 0:
        with open_binary(path) as handle:
            start = handle.read(1 << 16)
        cr = b"\r" in start and b"\n" not in start
        raise UserError(f"{path}: record {name!r} has no sequence" + (f"; {CR_ALONE}" if cr else ""))


def _header_name(header: bytes) -> str:
    words = header[1:].split()
    return words[0].decode(errors="replace") if words else ""


def write_indexed_fasta(source, out) -> dict[str, int]:
    """Convert a FASTA (plain, gzip, bgzip) or GenBank file to an indexed FASTA `out`: bgzip-compressed
    with .fai and .gzi when its name ends in .gz or .bgz, plain with .fai otherwise (the name says
    what the file is, for tools that go by it). FASTA is streamed in constant memory, validated on the
    way. Returns the contig lengths. Nothing is left at `out` if the input is bad."""
    fmt = sniff_format(source)
    bgzip = bgzip_named(out)

    def writer(tmp):
        return pysam.BGZFile(str(tmp), "wb") if bgzip else open(tmp, "wb")

    with atomic_output(out, ".fai", *([".gzi"] if bgzip else [])) as tmp:
        open(tmp, "wb").close()  # pysam crashes (SIGSEGV) on a file it cannot create: fail here first
        try:
            with writer(tmp) as sink:
                if fmt == "genbank":
                    for name, sequence in read_records(source):
                        _write_wrapped(sink, name, sequence)
                else:
                    _copy_fasta_stream(source, sink)
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise corrupt(source, error) from None
        try:
            pysam.faidx(str(tmp))
        except pysam.SamtoolsError:
            # faidx needs equal line lengths within a record; rewrap the ragged input and index again.
            log.info("%s: line lengths vary within a record, rewrapping at %d columns", source, LINE_WIDTH)
            with writer(tmp) as sink:
                for name, sequence in read_records(source):
                    _write_wrapped(sink, name, sequence)
            try:
                pysam.faidx(str(tmp))
            except pysam.SamtoolsError as error:
                raise UserError(f"{source}: cannot index the FASTA: {str(error).strip()[:200]}") from None
        lengths = fai_lengths(Path(f"{tmp}.fai"))
    return lengths


def fai_lengths(fai: Path) -> dict[str, int]:
    """Contig → length, in a FASTA index's order."""
    lengths = {}
    for line in fai.read_text().splitlines():
        name, length = line.split("\t")[:2]
        lengths[name] = int(length)
    return lengths


class _Contigs(dict):
    """Contig → upper-cased sequence of a genome read whole (a dict that can be referred to weakly)."""


READ_WHOLE_KEPT = 4
_IN_USE: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # _version → _Contigs something holds
_RECENT: OrderedDict = OrderedDict()  # the last READ_WHOLE_KEPT files used, kept after they are closed


def _read_whole(path: Path) -> _Contigs:
    """The sequences of a file faidx cannot index, read once per process while the file is unchanged
    (see _version), under whichever name: a command opens its genomes several times (each split's
    sampler, the scan's planner, every DataLoader worker, which a fork hands them to), and a human
    genome in plain gzip takes minutes to read. A file stays in memory while open, and the last
    READ_WHOLE_KEPT used stay after they are closed. Read-only."""
    version = _version(path)
    contigs = _IN_USE.get(version)
    if contigs is None:
        log.info("%s: no random access (gzip, GenBank or ragged lines): reading it into memory; "
                 "`dnabert2 download` makes an indexed bgzip copy", path)
        contigs = _IN_USE[version] = _Contigs((name, seq.upper().replace("U", "T")) for name, seq in read_records(path))
    _RECENT[version] = contigs
    _RECENT.move_to_end(version)
    while len(_RECENT) > READ_WHOLE_KEPT:
        _RECENT.popitem(last=False)
    return contigs


def _version(path: Path) -> tuple:
    """What tells a file from an edited or replaced one of the same name."""
    stat = path.stat()
    return path.resolve(), stat.st_ino, stat.st_size, stat.st_mtime_ns


def _ends_where_indexed(path: Path, fai: Path, gzi: Path | None = None) -> bool:
    """Whether a FASTA ends where its .fai's last record does: after that record's last line only
    blank lines, NUL padding or a last header without bases (which faidx drops), or nothing. A record
    of bases after it, or a file shorter than the index says, is another file's; so is a bgzip file
    (read through its .gzi) whose .gzi points into no block."""
    try:
        length, offset, bases, width = map(int, fai.read_text().splitlines()[-1].split("\t")[1:5])
    except (ValueError, IndexError, UnicodeDecodeError):
        return False  # not an index faidx wrote
    if not bases:  # a record without bases: nothing to tell by
        return True
    end = offset + length + -(-length // bases) * (width - bases) - (width - bases)  # before the last line end
    try:
        rest = _content_from(path, end, gzi)
    except (OSError, EOFError, zlib.error, struct.error):  # a .gzi pointing into no block: BadGzipFile
        return False
    if rest is None:
        return False
    rest = rest.strip(b" \t\r\n\x00")
    return not rest or (rest.startswith(b">") and b"\n" not in rest)


def _content_from(path: Path, start: int, gzi: Path | None, size: int = 1 << 16) -> bytes | None:
    """Up to `size` bytes of a file's content from `start` on, None if it ends before `start`; in a
    bgzip file, decompressed from the block its .gzi places last at or before `start`."""
    with open(path, "rb") as raw:
        if gzi is None:
            if raw.seek(0, os.SEEK_END) < start:
                return None
            raw.seek(start)
            return raw.read(size)
        table = gzi.read_bytes()  # a count, then (compressed, uncompressed) offsets of blocks
        blocks = struct.iter_unpack("<QQ", table[8:8 + 16 * struct.unpack_from("<Q", table)[0]])
        block, before = max(((c, u) for c, u in blocks if u <= start), key=lambda b: b[1], default=(0, 0))
        raw.seek(block)
        with gzip.GzipFile(fileobj=raw) as content:
            skip = start - before  # in chunks: a .gzi of a smaller file may place `start` gigabytes on
            while skip:
                if not (chunk := content.read(min(skip, _CHUNK))):
                    return None
                skip -= len(chunk)
            return content.read(size)


class NoRandomAccess(UserError):
    """A sequence file that can only be read whole."""


class Fasta:
    """Random access to a genome by contig and region; sequences come back upper-cased (soft-masked
    bases unmasked), U as T. Plain and bgzip FASTA are indexed (in place, or in a temporary folder when the
    folder is read-only). What faidx cannot index (plain gzip, ragged line lengths) and GenBank are
    read into memory instead."""

    def __init__(self, path, validate: bool = False, in_memory: bool = True):
        """validate: check every base and name now rather than in the regions fetched later.
        in_memory: False raises NoRandomAccess instead of reading a file faidx cannot index."""
        self.path = check_file(path)
        self._faidx = None
        self._memory = None
        self._tmpdir = None
        if sniff_format(self.path) == "fasta" and compression(self.path) != "gzip":
            self._faidx = self._open_indexed()
        if self._faidx is None and not in_memory:
            self.close()
            raise NoRandomAccess(f"{self.path}: no random access (gzip, GenBank or ragged lines)")
        if self._faidx is None:
            self._memory = _read_whole(self.path)
            self.lengths = {name: len(seq) for name, seq in self._memory.items()}
        else:
            self.lengths = dict(zip(self._faidx.references, self._faidx.lengths))
            seen = set()
            for name in self.lengths:  # faidx indexes a '>' with nothing after it, which no BED can name
                check_name(self.path, name, seen)
            if validate:
                for _ in read_records(self.path):
                    pass
        if not self.lengths or not any(self.lengths.values()):
            raise UserError(f"{self.path}: no sequence found (empty FASTA)")

    def _open_indexed(self) -> pysam.FastaFile | None:
        """The faidx-indexed file, building the index if needed; None if faidx cannot index it."""
        fai = Path(f"{self.path}.fai")
        gzi = Path(f"{self.path}.gzi")
        bgzf = compression(self.path) == "bgzf"
        indices = [fai, *([gzi] if bgzf else [])]
        # An index older than its FASTA (rewritten since) would read other bases, or other contigs; so
        # would a newer one of a FASTA edited or replaced with its time kept (cp -p, rsync -t) that no
        # longer ends where the file does.
        stale = all(i.exists() for i in indices) and \
            min(i.stat().st_mtime for i in indices) < self.path.stat().st_mtime
        if stale:
            log.warning("%s: its index is older than it; indexing it again", self.path)
        elif all(i.exists() for i in indices) and not _ends_where_indexed(self.path, fai, gzi if bgzf else None):
            log.warning("%s: its index describes another file (edited since, its time kept); indexing it again",
                        self.path)
            stale = True
        if stale or not all(i.exists() for i in indices):
            if not os.access(self.path.parent, os.W_OK):
                # A read-only folder: keep the index in a temporary one for this process's lifetime.
                self._tmpdir = tempfile.TemporaryDirectory(prefix="dnabert2-faidx-")
                fai = Path(self._tmpdir.name, "genome.fai")
                gzi = Path(self._tmpdir.name, "genome.gzi")
            # Built under temporary names and renamed: processes indexing one genome at once (scan
            # chunks, training ranks) never read one another's half-written index.
            for index in (fai, gzi):
                remove_abandoned(index)
            built = [temporary_name(fai), temporary_name(gzi)]
            try:
                pysam.faidx(str(self.path), "--fai-idx", str(built[0]), *(["--gzi-idx", str(built[1])] if bgzf else []))
                # faidx indexes the first of two records with one name and drops the other with a warning.
                indexed, headers = len(built[0].read_text().splitlines()), _count_headers(self.path)
                if headers != indexed:
                    for _ in read_records(self.path):  # names the duplicate, or the record without bases
                        pass
                    raise UserError(f"{self.path}: faidx indexed {indexed} of its {headers} records")
                if bgzf:
                    os.replace(built[1], gzi)
                os.replace(built[0], fai)
            except pysam.SamtoolsError:
                return None  # faidx needs equal line lengths within a record
            finally:
                for leftover in built:
                    leftover.unlink(missing_ok=True)
        try:
            return pysam.FastaFile(str(self.path), filepath_index=str(fai), filepath_index_compressed=str(gzi) if bgzf else None)
        except (OSError, ValueError) as error:
            raise UserError(f"{self.path}: cannot open FASTA: {error}") from None

    def check_region(self, contig: str, start: int = 0, end: int | None = None) -> int:
        """Raise a UserError for an unknown contig or out-of-bounds region; returns the end."""
        if contig not in self.lengths:
            raise UserError(f"{self.path}: unknown contig {contig!r} (contigs: {first_names(list(self.lengths), 10)})")
        length = self.lengths[contig]
        end = length if end is None else end
        if not 0 <= start <= end <= length:
            raise UserError(f"{self.path}: region {contig}:{start}-{end} is outside the contig (length {length})")
        return end

    def _not_read_whole(self, contig: str, start: int, end: int) -> UserError:
        return UserError(f"{self.path}: {contig}:{start + 1}-{end} read through its index is not {end - start} bases; "
                         f"{_STALE_INDEX}")

    def fetch_padded(self, contig: str, start: int, end: int) -> str:
        """contig[start:end] with N where the range runs past either end of the contig (the context a
        model reads there)."""
        length = self.lengths[contig]
        inside = self.fetch(contig, max(0, start), min(end, length)) if start < length and end > 0 else ""
        return "N" * max(0, -start) + inside + "N" * max(0, end - max(length, start))

    def fetch(self, contig: str, start: int = 0, end: int | None = None) -> str:
        """The upper-cased sequence of contig[start:end] (0-based, half-open), validated, U read as T."""
        end = self.check_region(contig, start, end)
        if self._memory is not None:
            sequence = self._memory[contig][start:end]
        else:
            try:
                sequence = self._faidx.fetch(contig, start, end).upper()
            except (ValueError, OSError) as error:
                if isinstance(error, OSError) and error.errno not in (None, 0, errno.ENOTTY):
                    raise UserError(f"{self.path}: cannot read {contig}:{start + 1}-{end}: {error.strerror}") from None
                # An index that does not describe the file (edited, or copied beside another). htslib sets
                # no error number of its own then: pysam reports the one an earlier call left (ENOTTY).
                detail = f" ({error})" if isinstance(error, ValueError) else ""
                raise UserError(f"{self.path}: cannot read {contig}:{start + 1}-{end} through its index{detail}; "
                                f"{_STALE_INDEX}") from None
            if len(sequence) != end - start:
                raise self._not_read_whole(contig, start, end)
            try:
                check_nucleotides(self.path, contig, sequence, before=start)
            except UserError:
                # Line ends or headers among the bases: the index's line widths are another file's. Looked for
                # only here, so a sound read is scanned once.
                if any(c in sequence for c in "\n\r>"):
                    raise self._not_read_whole(contig, start, end) from None
                raise
        return sequence.replace("U", "T")  # RNA given as a genome: its bases as DNA (no copy where it has none)

    def close(self) -> None:
        if self._faidx is not None:
            self._faidx.close()
        if self._tmpdir is not None:
            with held():
                self._tmpdir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
