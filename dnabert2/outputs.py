"""Output files and folders appear whole or not at all: everything is written under a temporary name
first, then renamed, with the permissions the user's umask gives."""

import csv
import errno
import glob
import io
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import NamedTuple

from .errors import UserError
from .stops import held

log = logging.getLogger(__name__)


STDOUT = "-"  # samtools' and bedtools' name for standard output


def _origin() -> str:
    """This machine, and its process-ID namespace where it has them: on a filesystem that several nodes
    or containers share, only a process of one's own machine and namespace is known to be gone."""
    try:
        space = f"-{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # no /proc (macOS): one namespace
        space = ""
    return socket.gethostname().replace("/", "_") + space


ORIGIN = _origin()


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process, so a rename onto `path` is atomic."""
    return path.with_name(f".{path.name}.{ORIGIN}.{os.getpid()}.tmp")


def remove_abandoned(target: Path) -> None:
    """The temporary files or folder of `target` (and of its indices) that a process of this machine
    and namespace, now gone, left: killed by SIGKILL (the OOM killer, a scheduler past its grace time),
    it removed none, and they can be gigabytes that no later run's name would ever replace."""
    prefix = f".{target.name}.{ORIGIN}."
    pattern = glob.escape(prefix)
    for leftover in [*target.parent.glob(f"{pattern}*.tmp"), *target.parent.glob(f"{pattern}*.tmp.*")]:
        pid = leftover.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _running(int(pid)):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            try:
                leftover.unlink(missing_ok=True)
            except OSError:  # not ours to remove: it stays, as it would have
                pass


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether it could be sent
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        pass
    return True


# The indices htslib finds beside a file by its name.
INDICES = (".tbi", ".csi", ".fai", ".gzi", ".bai", ".crai")


def check_outputs(outputs, inputs=()) -> None:
    """Refuse, before any work, outputs that are directories, that would overwrite an input or each
    other, or whose folder cannot be made; so a command that fails on them fails before writing any."""
    seen = set()
    for out in map(Path, filter(None, outputs)):
        if str(out) == STDOUT:  # a file of that name would surprise
            raise UserError("-: this output is a file, written whole or not at all; give a file name, not standard "
                            "output (scan, scan-gather and predict write their --out there)")
        try:
            os.stat(out)
        except OSError as error:  # Path.resolve() reports a loop in some Python versions, not all
            if error.errno == errno.ELOOP:
                raise UserError(f"{out}: a loop of symbolic links; give a file name for the output") from None
        if out.resolve() in seen:
            raise UserError(f"{out}: given for two outputs")
        # An output there would break the index htslib finds beside a file, or be replaced by one.
        if (owner := _index_owner(out, [*outputs, *inputs])) is not None:
            raise UserError(f"{out}: the name of {owner}'s index; give the output another name")
        seen.add(out.resolve())
        if out.is_dir():
            raise UserError(f"{out}: is a directory; give a file name for the output")
        # Every output replaces or removes the indices beside its name and its link's target
        # (atomic_output); a folder there would stop it only once the work is done.
        for index in (Path(f"{beside}{suffix}") for beside in {out, Path(os.path.realpath(out))} for suffix in INDICES):
            if index.is_dir() and not index.is_symlink():
                raise UserError(f"{index}: a directory where {out}'s index goes; move it away")
        if out.exists() and not out.is_file():  # renaming onto /dev/stdout or /dev/null would replace it
            raise UserError(f"{out}: not a regular file (a device, pipe or socket); outputs are files, written whole "
                            "or not at all")
        # Renaming onto the file a command's output or messages are redirected to would drop what `>>` had
        # put there and the messages meant for it.
        if out.exists() and _is_standard_stream(out):
            raise UserError(f"{out}: this command's standard output or error is written to it; give the output "
                            "another file")
        check_writable(out)
        for source in map(Path, filter(None, inputs)):
            if out.exists() and source.exists() and out.samefile(source):
                raise UserError(f"{out}: the output would overwrite the input {source}")


def files_in(*folders) -> list[Path]:
    """The files in those of `folders` that are folders on disk (a model's, a task's): inputs that an
    output named among them would overwrite."""
    return [file for folder in map(Path, filter(None, folders)) if folder.is_dir()
            for file in folder.iterdir() if file.is_file()]


def _index_owner(out: Path, files) -> Path | None:
    """The file among `files` whose index htslib would look for at `out`, if any: its name and the
    index's suffix (g.fa.gz.fai), or, for an alignment file, its name with the suffix swapped (s.bai)."""
    for path in map(Path, filter(None, files)):
        for suffix in INDICES:
            swapped = path.with_suffix(suffix) if path.suffix in (".bam", ".cram") else None
            for index in (Path(f"{path}{suffix}"), swapped):
                if index is not None and (os.path.abspath(index) == os.path.abspath(out) or
                                          (index.exists() and out.exists() and index.samefile(out))):
                    return path
    return None


def _is_standard_stream(path: Path) -> bool:
    streams = []
    for fd in (1, 2):
        try:
            streams.append(os.fstat(fd))
        except OSError:  # closed
            pass
    return any(os.path.samestat(path.stat(), stream) for stream in streams)


def missing_parents(path) -> list[Path]:
    """The folders above `path` that do not exist yet, outermost first; refused when a file stands
    where one of them must go. Checking makes nothing, so a command refused later leaves no folder."""
    missing = []
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{path}: cannot create the folder {Path(path).parent}: a file is in the way ({folder})")
    return missing[::-1]


def check_writable(path) -> None:
    """Refuse, before any work, an output whose folder (or the nearest one above it that exists, where
    the folders it needs are made) takes no new file: found at the end, an hour's training was lost.
    Tried by writing, as permissions do not tell (a read-only mount, an immutable folder, root)."""
    missing_parents(path)
    folder = Path(os.path.realpath(path)).parent  # a link's target's: the new file is renamed there
    while not folder.exists():
        folder = folder.parent
    try:
        handle, probe = tempfile.mkstemp(prefix=".dnabert2-", dir=folder)
    except OSError as error:
        raise UserError(f"{path}: cannot write in {folder} ({error.strerror})") from None
    os.close(handle)
    os.unlink(probe)


@contextmanager
def made_parents(path):
    """Make the folders above `path` for the block (it gets their list); if it fails, remove those it
    made (when empty)."""
    missing = missing_parents(path)
    for folder in missing:
        folder.mkdir(exist_ok=True)
    try:
        yield missing
    except BaseException:
        _remove_empty(missing)
        raise


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:  # something else was written there meanwhile: it stays
            break


@contextmanager
def atomic_output(path, *suffixes: str):
    """Yield a temporary path; when the block succeeds, rename it (and `path`+suffix companions,
    such as ".fai" and ".gzi" indices written beside it) onto `path`, or onto the file a symbolic link
    there points to (the link stays, as a shell's > keeps it, and gains links to the companions, where
    htslib looks for them). On failure nothing is left."""
    path = Path(path)
    check_outputs([path])
    target = Path(os.path.realpath(path))
    group = _group.get()
    if group is not None and any(target == output.path for output in group):  # their temporary names are one
        raise UserError(f"{path}: written twice by one command")
    remove_abandoned(target)
    tmp = temporary_name(target)
    # Indices first, the main file last: a reader that sees the main file sees its indices too.
    moves = [*((Path(f"{tmp}{s}"), Path(f"{target}{s}")) for s in suffixes), (tmp, target)]

    def publish():
        with _named(path, tmp):
            # An index an earlier output left here would be read for this one (tabix, samtools faidx).
            for stale in set(INDICES) - set(suffixes):
                for beside in (target, path):  # beside a link's name too, where htslib looks
                    Path(f"{beside}{stale}").unlink(missing_ok=True)
            for src, dst in moves:
                share(src)
                os.replace(src, dst)
            for s in suffixes:
                _link(Path(f"{path}{s}"), Path(f"{target}{s}"))

    def discard():
        for src, _ in moves:
            src.unlink(missing_ok=True)

    with made_parents(target) as made:
        try:
            with _named(path, tmp):
                yield tmp
        except BaseException:
            discard()
            raise
        _publish(_Pending(target, publish, discard, made))


def _link(link: Path, to: Path) -> None:
    """A symbolic link at `link` to `to`, replacing what is there, unless `link` already leads to it."""
    if os.path.realpath(link) == str(to):
        return
    tmp = temporary_name(link)
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(os.path.relpath(to, os.path.realpath(link.parent)))  # relative, as folders get moved
    os.replace(tmp, link)


@contextmanager
def _named(path: Path, tmp: Path):
    """An OSError of the temporary file as one of `path`: the user knows the output, not its temporary name."""
    try:
        yield
    except OSError as error:
        if str(error.filename or "").startswith(str(tmp)):
            raise UserError(f"{path}: cannot write it: {error.strerror or error}") from None
        raise


class _Pending(NamedTuple):
    """An output written under its temporary name: publish() puts it in place, discard() removes what
    is left of it; `made` are the folders made for it."""
    path: Path
    publish: Callable[[], None]
    discard: Callable[[], None]
    made: list[Path]


# The outputs written_together's block has written so far (None outside one); a context variable, so
# that threads (and asyncio tasks) each have their own.
_group: ContextVar[list[_Pending] | None] = ContextVar("written_together", default=None)


@contextmanager
def written_together():
    """Outputs written in the block are put in place together when it ends, or none of them: a run
    stopped or failing part-way leaves no output of its own, nor a folder it made for one, beside an
    earlier run's others (a scan's summary beside older calls, gathered as if they were its own). Code
    in the block must not read back an output it wrote there: it is not in place yet."""
    if _group.get() is not None:  # inside another such block, which puts them in place
        yield
        return
    group: list[_Pending] = []
    token = _group.set(group)
    published = False
    try:
        yield
        with held():
            for output in group:
                output.publish()
        published = True
    finally:
        _group.reset(token)
        for output in group:
            output.discard()
        if not published:
            for output in reversed(group):
                _remove_empty(output.made)


def _publish(output: _Pending) -> None:
    """Put an output in place now, whole even if a stop is asked for meanwhile, or with the others of
    written_together's block."""
    group = _group.get()
    if group is not None:
        group.append(output)
        return
    try:
        with held():
            output.publish()
    finally:
        output.discard()


@contextmanager
def scratch_folder(prefix: str):
    """A temporary folder (under $TMPDIR) for the block, removed after it even when a stop is asked for
    while it is being removed: a genome's copy must not stay behind."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        with held():
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def standard_output(path):
    """`path`, or for STDOUT a temporary file (plain, so plain text) that is copied to standard output
    once the block succeeds: a command that fails writes nothing there, as it leaves no file. What
    the block prints goes to standard error meanwhile, so standard output holds the output alone."""
    if str(path) != STDOUT:
        yield path
        return
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (AttributeError, OSError):  # closed (sys.stdout None, or no descriptor 1)
        raise UserError("-: standard output is closed; give --out a file name") from None
    try:
        with scratch_folder("dnabert2-stdout-") as folder:
            # Descriptor 1 itself, not only sys.stdout: what libraries or child processes write there
            # must not land in the output either.
            os.dup2(2, 1)
            try:
                yield folder / "stdout"
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
            try:
                with open(folder / "stdout", "rb") as handle:
                    shutil.copyfileobj(handle, sys.stdout.buffer)
                sys.stdout.flush()
            except BrokenPipeError:  # the reader stopped early (| head): end as a shell's tools do
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing left to flush at exit
                raise SystemExit(128 + signal.SIGPIPE) from None
    finally:
        os.close(saved)


def bgzip_named(path) -> bool:
    """Whether an output's name asks for bgzip compression (.gz or .bgz, in any case): bgzip is what
    any gzip reader takes and what tabix and faidx index, so every compressed output is bgzip."""
    return Path(path).suffix.lower() in (".gz", ".bgz")


@contextmanager
def atomic_text(path):
    """atomic_output open for writing text: bgzip-compressed when `path` is named so (bgzip_named),
    plain otherwise, so the file is what its name says."""
    with atomic_output(path) as tmp:
        if bgzip_named(path):
            import pysam

            handle = io.TextIOWrapper(pysam.BGZFile(str(tmp), "wb"), newline="")
        else:
            handle = open(tmp, "w", newline="")
        with handle:
            yield handle


def write_json(path, data: dict) -> None:
    """A JSON report, bgzip-compressed where it is named .gz, as every text output."""
    with atomic_text(path) as handle:
        handle.write(json.dumps(data, indent=2) + "\n")


class TabSeparated:
    """Tab-separated rows as cut, awk and bedtools read them: every field as it is (CSV quoting would
    turn an id holding a quote into another id), and a field holding a tab or a line break, which no
    such row can keep, refused."""

    def __init__(self, handle):
        self.writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, quotechar=None)

    def writerow(self, row) -> None:
        try:
            self.writer.writerow(row)
        except csv.Error:
            field = next(f for f in map(str, row) if any(c in f for c in "\t\r\n"))
            raise UserError(f"{field!r} holds a tab or a line break, which a field of a tab-separated file cannot "
                            "keep") from None

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def tabix_suffix(longest: int) -> str:
    """The index tabix writes for positions up to `longest`: .tbi below 2^29, else .csi (`tabix -C`, as
    bcftools writes by default), which a contig longer than 512 Mbp (wheat's, axolotl's) needs."""
    return ".csi" if longest >= 2**29 else ".tbi"


def write_bed_rows(path, rows) -> int:
    """Sorted BED rows, bgzip-compressed with a tabix index (tabix_suffix) beside them when the name
    ends in .gz or .bgz, as genome browsers, bedtools and `tabix` read them; returns the number written."""
    rows = list(rows)
    compressed = bgzip_named(path)
    index = tabix_suffix(max((row[2] for row in rows), default=0))
    with atomic_output(path, *([index] if compressed else [])) as tmp:
        plain = Path(f"{tmp}.bed") if compressed else tmp
        try:
            with open(plain, "w", newline="") as handle:
                TabSeparated(handle).writerows(rows)
            if compressed:
                _bgzip_and_index(plain, tmp, index)
        finally:  # a run stopped while writing it left the plain BED beside the output
            if compressed:
                plain.unlink(missing_ok=True)
    return len(rows)


def _bgzip_and_index(plain: Path, out: Path, index: str) -> None:
    """bgzip `plain` into `out`, with its index (.tbi or .csi) beside it (pysam, as `bgzip` and `tabix -p
    bed` do)."""
    import pysam

    named = Path(f"{out}.bed.gz")  # tabix reads a compressed file by its .gz name
    try:
        pysam.tabix_compress(str(plain), str(named), force=True)
        pysam.tabix_index(str(named), preset="bed", force=True, csi=index == ".csi")
        named.replace(out)
        Path(f"{named}{index}").replace(f"{out}{index}")
    finally:
        for leftover in (named, Path(f"{named}{index}")):
            leftover.unlink(missing_ok=True)


# Formats a table's name could be mistaken for (x.csv, x.svg for a --plot), which whoever reads it would expect.
OTHER_FORMATS = {".csv", ".json", ".bed", ".bedgraph", ".vcf", ".bcf", ".gff", ".gff3", ".gtf", ".fa", ".fasta",
                 ".fna", ".bam", ".sam", ".cram", ".npy", ".npz", ".parquet", ".bw", ".bigwig", ".svg", ".png",
                 ".pdf", ".html"}


def check_table_name(path, option: str) -> None:
    """A tab-separated table's name: refused where its suffix names another format."""
    if path is not None and plain_suffix(path) in OTHER_FORMATS:
        raise UserError(f"{path}: {option} writes a tab-separated table; give it a .tsv name (.tsv.gz for bgzip)")


def plain_suffix(path) -> str:
    """The suffix that names a file's format, under a compression suffix and in lower case: .csv for
    windows.csv.gz and for WINDOWS.CSV."""
    path = Path(path)
    return (path.with_suffix("").suffix if bgzip_named(path) else path.suffix).lower()


def share(path: Path) -> None:
    """Give a finished output (a file, or a folder and all it holds) the permissions a plain open() or
    mkdir would, from the user's umask: libraries that write through mkstemp or mkdtemp (safetensors,
    tempfile) leave 0600 and 0700, which colleagues on a shared cluster cannot read."""
    mask = os.umask(0o022)
    os.umask(mask)
    path = Path(path)
    for item in [path, *(path.rglob("*") if path.is_dir() else ())]:
        os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def check_folder(path: Path, force: bool, carry: tuple[str, ...] = (), inputs=()) -> None:
    """An output folder may be new or empty; one that already holds files (other than those named in
    `carry`) is refused unless `force`, so a run never mixes its files with an earlier run's. It may
    never be the working folder, one above it, or one holding an input: replacing it would take them."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder")
    check_writable(path)
    whole = path.resolve()
    if whole == Path.cwd().resolve() or whole in Path.cwd().resolve().parents:
        raise UserError(f"{path}: is the working folder or holds it; give the output a folder of its own")
    for source in map(Path, filter(None, inputs)):
        if source.resolve() == whole or whole in source.resolve().parents:
            raise UserError(f"{path}: holds the input {source}; give the output a folder of its own")
    earlier = sorted(p.name for p in path.iterdir() if p.name not in carry) if path.is_dir() else []
    if earlier and not force:
        shown = ", ".join(earlier[:4]) + (", …" if len(earlier) > 4 else "")
        raise UserError(f"{path}: already holds {shown} from an earlier run; give --force to replace it with "
                        "this run's output, or another --out")


@contextmanager
def atomic_folder(path, *, force: bool = False, carry: tuple[str, ...] = (), inputs=()):
    """Yield an empty temporary folder beside `path`; when the block succeeds it replaces `path`, so the
    folder holds exactly what this run wrote, and the entries named in `carry`, moved over from the
    folder it replaces. A folder holding other files is refused unless `force`; on failure nothing
    changes."""
    path = Path(path).resolve()
    check_folder(path, force, carry, inputs)
    with made_parents(path) as made:
        remove_abandoned(path)
        tmp = temporary_name(path)
        shutil.rmtree(tmp, ignore_errors=True)  # a process gone whose ID this one now has
        tmp.mkdir(mode=0o700)

        def publish():
            share(tmp)
            if path.exists():
                _replace_folder(path, tmp, carry)
            else:
                os.replace(tmp, path)

        def discard():
            shutil.rmtree(tmp, ignore_errors=True)

        try:
            yield tmp
        except BaseException:
            discard()
            raise
        _publish(_Pending(path, publish, discard, made))


def _replace_folder(path: Path, new: Path, carry: tuple[str, ...]) -> None:
    old = Path(f"{temporary_name(path)}.old")  # beside `new`, which has the temporary name itself
    os.replace(path, old)
    os.replace(new, path)
    # Carried entries move only once the new folder stands: a failure before leaves them in place.
    for name in carry:
        if (old / name).exists():
            os.replace(old / name, path / name)
    shutil.rmtree(old, ignore_errors=True)
    if old.exists():
        log.warning("%s: could not remove all of the folder it replaced (%s)", path, old)
