"""Genome download: resolve a SOURCE (Ensembl species/release, UCSC assembly, NCBI accession, URL or
local path) to a file and its published checksum, fetch it in constant memory with resume and
retries, verify it, and convert it to indexed FASTA (bgzip with .fai and .gzi under a .gz name).

A transfer goes to `{out}.part`; `{out}.part.json` records where those bytes came from (URL, ETag or
Last-Modified, total size), so a later run continues it only if the file on the server is unchanged
(a server that names neither has it fetched again whole).
"""

import fcntl
import ftplib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests
import urllib3
from tqdm import tqdm

from .errors import UserError
from .options import add_settings, output_file, settings_from, settings_with
from .outputs import check_outputs, made_parents
from .settings import DownloadSettings
from .sources import ENSEMBL_DIVISIONS, archive, local_path, parse_ensembl, parse_ncbi, parse_ucsc
from .sequences.fasta import check_file, write_indexed_fasta

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASES = {
    "ensembl": "https://ftp.ensembl.org/pub",
    **{f"ensembl{d}": f"https://ftp.ensemblgenomes.ebi.ac.uk/pub/{d}" for d in ENSEMBL_DIVISIONS},
    "ucsc": "https://hgdownload.soe.ucsc.edu",
    "ncbi": "https://ftp.ncbi.nlm.nih.gov",
}
_CHUNK = 1 << 20
_USER_AGENT = "dnabert2-download"

_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")
_HEX = {"md5": 32, "sha256": 64}


@dataclass(frozen=True)
class Transfer:
    """How a transfer behaves: further attempts after a failure, seconds before a silent connection
    counts as failed, the first back-off delay (doubled on each consecutive failure), progress bar."""

    retries: int = 5
    timeout: float = 60.0
    backoff: float = 1.0
    progress: bool = True


@dataclass(frozen=True)
class Checksum:
    kind: str  # "md5", "sha256" or "ensembl sum"
    expected: str  # hex digest; for "ensembl sum", "SUM BLOCKS" as BSD `sum` prints them


@dataclass(frozen=True)
class Resolved:
    """Where a SOURCE's file is, and what should be known about it before it is fetched."""

    url: str
    checksum: Checksum | None = None
    local: Path | None = None  # set for paths and file:// URLs: nothing to transfer
    missing: str | None = None  # the message for a 404 on the file itself (a better one than "HTTP 404")


class NotFound(UserError):
    """HTTP 404 or 410: retrying cannot help, but a resolver may explain it better."""


class _Transient(Exception):
    """A failure worth retrying (a 5xx answer, a short body)."""


# urllib3's own errors (a connection cut, a read timeout) reach us unwrapped from response.raw.read1.
_TRANSIENT = (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError, _Transient)


# --- Checksums --------------------------------------------------------------------------------------


def bsd_sum(chunks: Iterable[bytes]) -> tuple[int, int]:
    """The BSD `sum` of a byte stream (what `sum -r` prints, and what Ensembl's CHECKSUMS files hold):
    a 16-bit checksum rotated right before each byte is added, and the size in 1 KiB blocks."""
    checksum = size = 0
    for chunk in chunks:
        size += len(chunk)
        for byte in chunk:
            checksum = (((checksum >> 1) | ((checksum & 1) << 15)) + byte) & 0xFFFF
    return checksum, -(-size // 1024)


def bsd_sum_file(path) -> tuple[int, int]:
    """BSD `sum` of a file. The byte loop in Python runs at about 15 MB/s, too slow for the gigabyte
    genomes Ensembl publishes, so coreutils' `sum -r` does the work where it is installed."""
    blocks = -(-Path(path).stat().st_size // 1024)  # computed here: `sum` tools disagree on block size
    tool = shutil.which("sum")
    if tool:
        result = subprocess.run([tool, "-r", str(path)], capture_output=True, text=True)
        fields = result.stdout.split()
        if result.returncode == 0 and fields and fields[0].isdigit():
            return int(fields[0]), blocks
    with open(path, "rb") as handle:
        return bsd_sum(iter(lambda: handle.read(_CHUNK), b""))[0], blocks


def compute_checksum(kind: str, path) -> str:
    if kind == "ensembl sum":
        return "{} {}".format(*bsd_sum_file(path))
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, kind).hexdigest()


def verify(path, checksum: Checksum | None, label: str) -> str:
    """Check `path` against `checksum`; returns "KIND ok" or "none" when there is nothing to check."""
    if checksum is None:
        return "none"
    got = compute_checksum(checksum.kind, path)
    if got != checksum.expected:
        raise UserError(f"{label}: {checksum.kind} mismatch: expected {checksum.expected}, got {got}")
    log.info("%s: %s ok", label, checksum.kind)
    return f"{checksum.kind} ok"


def user_checksum(sha256: str | None, md5: str | None) -> Checksum | None:
    """The checksum the user gave, validated before anything is fetched."""
    given = {kind: value for kind, value in (("sha256", sha256), ("md5", md5)) if value is not None}
    if len(given) > 1:
        raise UserError("give --sha256 or --md5, not both")
    for kind, value in given.items():
        value = value.strip().lower()
        if not re.fullmatch(f"[0-9a-f]{{{_HEX[kind]}}}", value):
            raise UserError(f"--{kind} must be {_HEX[kind]} hexadecimal digits, got {value!r}")
        return Checksum(kind, value)
    return None


def md5_entry(text: str, filename: str) -> Checksum | None:
    """The md5 of `filename` in an md5sum-style list ("MD5  NAME", NCBI writes "./NAME")."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("*").removeprefix("./") == filename:
            return Checksum("md5", fields[0].lower())
    return None


def ensembl_sum_entry(text: str, filename: str) -> Checksum | None:
    """The BSD sum of `filename` in an Ensembl CHECKSUMS file ("SUM BLOCKS NAME")."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] == filename and fields[0].isdigit() and fields[1].isdigit():
            return Checksum("ensembl sum", f"{int(fields[0])} {int(fields[1])}")
    return None


# --- Building URLs (pure: no network) ----------------------------------------------------------------


def base_url(archive: str) -> str:
    """The archive's root URL; DNABERT2_{ENSEMBL,UCSC,NCBI}_URL point it to a mirror."""
    return os.environ.get(f"DNABERT2_{archive.upper()}_URL", DEFAULT_BASES[archive]).rstrip("/")


def ensembl_directory(base: str, species: str, release: str | None, division: bool = False) -> str:
    """A species' dna/ folder; the current release is current_fasta/ at Ensembl, current/fasta/ in
    Ensembl Genomes' divisions."""
    folder = f"release-{release}/fasta" if release else ("current/fasta" if division else "current_fasta")
    return f"{base}/{folder}/{species}/dna/"


def choose_ensembl_file(names: Iterable[str], species: str, assembly: str | None, directory: str) -> str:
    """The whole-genome FASTA among a dna/ folder's files: primary_assembly (no haplotypes or patches)
    where Ensembl has one, else toplevel."""
    pattern = re.compile(rf"{re.escape(species)}\.(.+)\.dna\.(primary_assembly|toplevel)\.fa\.gz", re.I)
    found: dict[tuple[str, str], str] = {}
    spelled: dict[str, str] = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            found[match[1].lower(), match[2].lower()] = name
            spelled[match[1].lower()] = match[1]
    assemblies = sorted(spelled.values())
    if not assemblies:
        raise UserError(f"{directory}: no {species} genome FASTA (*.dna.toplevel.fa.gz) in the listing")
    if assembly is None:
        if len(assemblies) > 1:
            raise UserError(f"{directory}: several assemblies ({', '.join(assemblies)}); "
                            "name one as ensembl:SPECIES:RELEASE:ASSEMBLY")
        assembly = assemblies[0]
    for kind in ("primary_assembly", "toplevel"):
        if (assembly.lower(), kind) in found:
            return found[assembly.lower(), kind]
    raise UserError(f"{directory}: no {assembly} genome for {species} (assemblies: {', '.join(assemblies)})")


def ucsc_urls(base: str, assembly: str) -> tuple[str, str]:
    """(genome FASTA, md5sum.txt) of a UCSC assembly."""
    folder = f"{base}/goldenPath/{assembly}/bigZips"
    return f"{folder}/{assembly}.fa.gz", f"{folder}/md5sum.txt"


def ncbi_directory(base: str, accession: str) -> str:
    """NCBI files assemblies under genomes/all/GCF/000/005/845/ by the accession's 9 digits."""
    prefix, digits = accession.split("_")
    return f"{base}/genomes/all/{prefix}/{digits[0:3]}/{digits[3:6]}/{digits[6:9]}/"


def choose_ncbi_folder(names: Iterable[str], accession: str, version: int | None) -> str:
    """The assembly folder ({accession}.{version}_{name}) asked for, or the latest version."""
    pattern = re.compile(rf"{re.escape(accession)}\.(\d+)_.+")
    versions = {int(match[1]): name for name in names if (match := pattern.fullmatch(name))}
    wanted = accession if version is None else f"{accession}.{version}"
    if not versions or (version is not None and version not in versions):
        known = ", ".join(f"{accession}.{v}" for v in sorted(versions))
        raise UserError(f"unknown NCBI accession: {wanted}" + (f" (available: {known})" if known else ""))
    return versions[max(versions) if version is None else version]


def ncbi_urls(directory: str, folder: str) -> tuple[str, str]:
    """(genomic FASTA, md5checksums.txt) of an NCBI assembly folder."""
    folder_url = f"{directory}{quote(folder)}"
    return f"{folder_url}/{quote(folder)}_genomic.fna.gz", f"{folder_url}/md5checksums.txt"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(value for key, value in attrs if key == "href" and value)


def listing_names(html: str) -> list[str]:
    """Entry names of a directory listing page (Apache, nginx, NCBI); folders lose their '/'.
    Sort links (?C=N;O=D), the parent folder and links elsewhere are not entries."""
    parser = _Links()
    parser.feed(html)
    names = []
    for href in parser.hrefs:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or parts.query:
            continue
        name = unquote(parts.path).removeprefix("./").rstrip("/")
        if name and "/" not in name and name not in (".", ".."):
            names.append(name)
    return names


# --- HTTP ---------------------------------------------------------------------------------------------


def shown(url: str) -> str:
    """`url` as messages and logs show it: a password and the values of the query (where signed links
    carry their token) as ***, so a log shared to ask for help gives away no credentials."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https", "ftp"):
        return url
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = "&".join(field.partition("=")[0] + ("=***" if "=" in field else "") for field in parts.query.split("&"))
    return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", parts.fragment))


def _redacted(text: str, url: str) -> str:
    """`text` with `url`, whole or as the path and query that requests' errors quote, as shown()."""
    parts, safe = urlsplit(url), urlsplit(shown(url))
    text = text.replace(url, shown(url))
    if parts.query:
        text = text.replace(f"?{parts.query}", f"?{safe.query}")
    return text


class _Redacting(logging.Filter):
    def __init__(self, urls: list[str]):
        super().__init__()
        self.urls = urls

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for url in self.urls:
            message = _redacted(message, url)
        record.msg, record.args = message, None
        return True


@contextmanager
def _redacting(*urls: str):
    """Messages and errors raised or logged in the block show `urls` as shown() does."""
    redact = _Redacting([u for u in urls if shown(u) != u])
    log.addFilter(redact)
    try:
        yield
    except UserError as error:
        message = str(error)
        for url in redact.urls:
            message = _redacted(message, url)
        raise UserError(message) from None
    finally:
        log.removeFilter(redact)


def _failed(error: BaseException) -> BaseException | None:
    """What failed, where requests wraps it in urllib3's "Max retries exceeded" (it made one try)."""
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return reason if isinstance(reason, BaseException) else None


def _one_line(error: BaseException) -> str:
    error = _failed(error) or error
    # urllib3 errors carry (connection, message) or (message, cause) and print as a tuple: the message,
    # less the connection's repr, and the cause's own (a proxy's refusal, the socket's error).
    texts = [arg for arg in error.args if isinstance(arg, str)]
    text = re.sub(r"^HTTPS?Connection\(host=[^)]*\): ", "", texts[-1]) if texts else str(error)
    causes = [arg for arg in error.args if isinstance(arg, BaseException)]
    if texts and causes:
        text += f" ({_one_line(causes[0])})"
    return " ".join(text.split())[:300] or type(error).__name__


@contextmanager
def _sole_writer(out: Path):
    """Held while a transfer writes `out`: a second download to the same --out would write into its
    .part (and each then blames what the other wrote). The lock file goes when the transfer ends."""
    lock = Path(f"{out}.lock")
    while True:
        handle = open(lock, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserError(f"{out}: another download is writing it now (it holds {lock}); wait for it to end") from None
        except OSError as error:  # NFS without its lock service, Lustre without flock: download unguarded, as before
            handle.close()
            lock.unlink(missing_ok=True)
            log.warning("%s: cannot lock %s (%s); a second download to it at once would not be refused", out, lock,
                        error.strerror)
            handle = None
            break
        try:  # taken on a lock file its holder removed as it ended: a newer one may be held
            if os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        if handle is not None:
            lock.unlink(missing_ok=True)
            handle.close()


def _chain(error: BaseException):
    """The error and those it wraps: requests wraps urllib3's, which wraps the socket's, in args,
    .reason and __cause__."""
    stack, seen = [error], set()
    while stack:
        error = stack.pop()
        if id(error) not in seen:
            seen.add(id(error))
            yield error
            stack += [e for e in (*error.args, getattr(error, "reason", None), error.__cause__)
                      if isinstance(e, BaseException)]


def _lasting(error: BaseException) -> str | None:
    """Why no retry can help a failed connection (curl and wget do not retry these either): a host name
    the resolver says does not exist, not its "temporary failure"; a certificate that fails
    verification. None when a retry might."""
    for cause in _chain(error):
        if isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_NONAME:
            if isinstance(error, requests.exceptions.ProxyError):
                return f"no such host as its proxy ({cause.strerror}); check https_proxy and http_proxy"
            return f"no such host ({cause.strerror})"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"its certificate fails verification ({cause.verify_message})"
    return None


def _check_status(url: str, response: requests.Response) -> None:
    code = response.status_code
    if code in (200, 206):
        return
    reason = f"HTTP {code} {response.reason}".strip()
    if code >= 500 or code in (408, 429):
        raise _Transient(reason)
    if code in (404, 410):
        raise NotFound(f"{url}: {reason}")
    raise UserError(f"{url}: {reason}")


def with_retries(url: str, transfer: Transfer, attempt: Callable[[], T], progress: Callable[[], int] = lambda: 0) -> T:
    """Run `attempt` until it succeeds, sleeping backoff·2^k between consecutive failures; an attempt
    that moved `progress` forward resets the count, so a long download survives a flaky link."""
    failures = 0
    while True:
        before = progress()
        try:
            return attempt()
        except _TRANSIENT as error:
            if lasting := _lasting(error):
                raise UserError(f"{url}: {lasting}") from None
            failures = 1 if progress() > before else failures + 1
            if failures > transfer.retries:
                tries = f"{failures} failed attempts" if failures > 1 else "1 failed attempt"
                raise UserError(f"{url}: {_one_line(error)} (gave up after {tries})") from None
            delay = transfer.backoff * 2 ** (failures - 1)
            log.warning("%s: %s; retrying in %.1f s", url, _one_line(error), delay)
            time.sleep(delay)
        except requests.RequestException as error:  # a malformed URL, too many redirects: no retry helps
            raise UserError(f"{url}: {_one_line(error)}") from None


def get_text(session: requests.Session, url: str, transfer: Transfer) -> str:
    """A small text file (a listing, a checksum list), with retries."""

    def attempt() -> str:
        with session.get(url, timeout=transfer.timeout) as response:
            _check_status(url, response)
            return response.text

    return with_retries(url, transfer, attempt)


def _published(session: requests.Session, transfer: Transfer, url: str, filename: str,
               entry: Callable[[str, str], Checksum | None], missing: str | None = None) -> Checksum | None:
    """The checksum a folder's checksum file `url` gives `filename`, or None (with a warning) when it
    gives none. `missing`: the error to raise when the checksum file itself does not exist."""
    try:
        text = get_text(session, url, transfer)
    except NotFound:
        if missing:
            raise UserError(f"{missing} ({url} not found)") from None
        text = ""
    checksum = entry(text, filename)
    if checksum is None:
        log.warning("%s has no checksum for %s: the download cannot be verified", url, filename)
    return checksum


# --- Resolving a SOURCE -------------------------------------------------------------------------------


def resolve_ensembl(source: str, session: requests.Session, transfer: Transfer, published: bool) -> Resolved:
    species, release, assembly = parse_ensembl(source)
    name = archive(source)
    directory = ensembl_directory(base_url(name), species, release, division=name != "ensembl")
    try:
        names = listing_names(get_text(session, directory, transfer))
    except NotFound:
        raise UserError(f"unknown Ensembl species or release: {source} ({directory} not found)") from None
    filename = choose_ensembl_file(names, species, assembly, directory)
    checksum = _published(session, transfer, f"{directory}CHECKSUMS", filename, ensembl_sum_entry) if published else None
    return Resolved(directory + quote(filename), checksum)


def resolve_ucsc(source: str, session: requests.Session, transfer: Transfer, published: bool) -> Resolved:
    assembly = parse_ucsc(source)
    url, md5_url = ucsc_urls(base_url("ucsc"), assembly)
    missing = f"unknown UCSC assembly: {assembly}"
    # Every UCSC assembly folder has md5sum.txt: without it, the assembly does not exist.
    checksum = _published(session, transfer, md5_url, url.rsplit("/", 1)[1], md5_entry, missing) if published else None
    if published and checksum is None:  # the assembly exists; older ones (ce1, hg16) ship chromosomes in archives
        missing = (f"UCSC assembly {assembly} has no {assembly}.fa.gz in {url.rsplit('/', 1)[0]}/ (an older "
                   f"assembly's chromosomes come in an archive there: unpack it and give the FASTA)")
    return Resolved(url, checksum, missing=missing)


def resolve_ncbi(source: str, session: requests.Session, transfer: Transfer, published: bool) -> Resolved:
    accession, version = parse_ncbi(source)
    directory = ncbi_directory(base_url("ncbi"), accession)
    try:
        names = listing_names(get_text(session, directory, transfer))
    except NotFound:
        raise UserError(f"unknown NCBI accession: {source.split(':', 1)[1]} ({directory} not found)") from None
    folder = choose_ncbi_folder(names, accession, version)
    url, md5_url = ncbi_urls(directory, folder)
    checksum = _published(session, transfer, md5_url, f"{folder}_genomic.fna.gz", md5_entry) if published else None
    return Resolved(url, checksum)


_RESOLVERS = {"ensembl": resolve_ensembl, **{f"ensembl{d}": resolve_ensembl for d in ENSEMBL_DIVISIONS},
              "ucsc": resolve_ucsc, "ncbi": resolve_ncbi}


def resolve(source: str, session: requests.Session, transfer: Transfer, published: bool = True) -> Resolved:
    """Turn a SOURCE into a URL or a local path; `published`: look up the archive's checksum too."""
    path = local_path(source)
    if path is not None:
        return Resolved(source, local=check_file(path))
    name = archive(source)
    return _RESOLVERS[name](source, session, transfer, published) if name else Resolved(source)


# --- Transfer -----------------------------------------------------------------------------------------


def _state_file(part: Path) -> Path:
    return Path(f"{part}.json")


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def discard_part(part: Path) -> None:
    part.unlink(missing_ok=True)
    _state_file(part).unlink(missing_ok=True)


def _progress_bar(transfer: Transfer, url: str, total: int | None, initial: int) -> tqdm:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or url
    # disable=None: tqdm turns itself off when stderr is not a terminal (Snakemake logs, CI).
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                disable=None if transfer.progress else True)


@dataclass
class _PartState:
    url_sha256: str  # a signed URL's token or a password in it stays off the disk
    validator: str | None  # a strong ETag or the Last-Modified date, for If-Range
    total: int | None


class _HttpFetch:
    """One file over HTTP(S) into `part`, continuing the bytes already there when the server's file is
    the same one (If-Range, and the total size in Content-Range)."""

    def __init__(self, session: requests.Session, url: str, part: Path, transfer: Transfer):
        self.session, self.url, self.part, self.transfer = session, url, part, transfer
        self.received, self.sized, self.reached = 0, False, 0

    def run(self) -> None:
        try:
            with_retries(self.url, self.transfer, self.attempt, progress=self._reached)
        except BaseException:
            state = self._saved()
            if state is None or state.validator is None:  # bytes no later run could continue
                discard_part(self.part)
            raise

    def _reached(self) -> int:
        """The most bytes the part has held: a server that drops connections and ignores ranges restarts
        from zero each time, and only a transfer that gets further than any before counts as progress."""
        self.reached = max(self.reached, self.part.stat().st_size if self.part.exists() else 0)
        return self.reached

    def _resumable(self) -> _PartState | None:
        if not self.part.exists():
            return None
        state = self._saved()
        if state is None or state.url_sha256 != _sha256_text(self.url):
            log.info("%s: no record that these bytes came from %s; starting again", self.part, self.url)
            discard_part(self.part)
            return None
        if state.validator is None:
            # Without an ETag or a Last-Modified date nothing tells the file from another of its size.
            log.info("%s: the server names no version of its file (ETag, Last-Modified); starting again", self.url)
            discard_part(self.part)
            return None
        return state

    def _saved(self) -> _PartState | None:
        try:
            return _PartState(**json.loads(_state_file(self.part).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def attempt(self) -> None:
        state = self._resumable()
        offset = self.part.stat().st_size if state else 0
        if state and offset and offset == state.total:
            # An earlier run received every byte, then stopped before converting.
            if self._unchanged(state):
                self.sized = True
                return
            log.info("%s changed on the server since the download: starting again", self.url)
            discard_part(self.part)
            return self.attempt()
        # Identity encoding: byte ranges must refer to the file as stored, not to a re-compressed stream.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = state.validator
        with self.session.get(self.url, headers=headers, stream=True, timeout=self.transfer.timeout) as response:
            mismatch = response.status_code == 206 and not self._continues(response, offset, state)
            if offset and (response.status_code == 416 or mismatch):
                log.info("%s changed on the server since the partial download: starting again", self.url)
                discard_part(self.part)
                return self.attempt()
            _check_status(self.url, response)
            if response.status_code == 200:
                offset = 0  # no range support, or the file changed (If-Range): the whole file came back
            elif offset:
                log.info("%s: resuming at byte %d", self.url, offset)
            total = self._total(response, offset)
            self.sized = total is not None
            self._save_state(response, total)
            with open(self.part, "ab" if offset else "wb") as sink, self._bar(total, offset) as bar:
                # read1 hands over what has arrived, so a cut connection loses nothing already received
                # (iter_content holds back a partial chunk); raw bytes, whatever Content-Encoding says.
                while chunk := response.raw.read1(_CHUNK, decode_content=False):
                    sink.write(chunk)
                    self.received += len(chunk)
                    bar.update(len(chunk))
        size = self.part.stat().st_size
        # A body can end early without an error: chunked, or a Content-Length short of the total.
        if total is not None and size != total:
            raise _Transient(f"connection closed after {size} of {total} bytes")

    def _unchanged(self, state: _PartState) -> bool:
        """Whether the server's file is still the one `part` holds whole: its last byte is asked for
        under If-Range, which a changed file answers with all of itself (read no further)."""
        headers = {"Accept-Encoding": "identity", "Range": f"bytes={state.total - 1}-", "If-Range": state.validator}
        with self.session.get(self.url, headers=headers, stream=True, timeout=self.transfer.timeout) as response:
            if response.status_code == 206:
                return self._continues(response, state.total - 1, state)
            if response.status_code == 416:
                return False
            _check_status(self.url, response)
            # A whole answer: a changed file, or a server without ranges (then the validator tells).
            return _validator(response) == state.validator

    def _bar(self, total: int | None, offset: int) -> tqdm:
        return _progress_bar(self.transfer, self.url, total, offset)

    @staticmethod
    def _continues(response: requests.Response, offset: int, state: _PartState | None) -> bool:
        """Whether a 206 carries the bytes from `offset` on of the file `state` describes: a server may
        honour Range yet ignore If-Range (some proxies do), so its validator is compared too (RFC 9110
        joins parts only under one strong validator)."""
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if not match or int(match[1]) != offset:
            return False
        if state is None:
            return True
        return _validator(response) == state.validator and (state.total is None or match[2] == "*"
                                                             or int(match[2]) == state.total)

    @staticmethod
    def _total(response: requests.Response, offset: int) -> int | None:
        if response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            return int(match[2]) if match and match[2] != "*" else None
        length = response.headers.get("Content-Length")
        return int(length) + offset if length and length.isdigit() else None

    def _save_state(self, response: requests.Response, total: int | None) -> None:
        state = _PartState(_sha256_text(self.url), _validator(response), total)
        _state_file(self.part).write_text(json.dumps(asdict(state)))


def _validator(response: requests.Response) -> str | None:
    """What identifies the server's file for If-Range: a strong ETag, else the Last-Modified date."""
    etag = response.headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")


class _FtpFetch:
    """One file over FTP into `part`, every attempt from byte zero (without a validator, bytes of an
    earlier attempt could be another file's). A transfer is whole only when the server says so (226):
    a data connection closed early ends in 426, which urllib's FTP client would not report."""

    def __init__(self, url: str, part: Path, transfer: Transfer):
        self.url, self.part, self.transfer = url, part, transfer
        self.received, self.sized = 0, False

    def run(self) -> None:
        if urllib.request.getproxies().get("ftp"):
            log.warning("%s: ftp_proxy is set, but FTP downloads connect directly (an https:// URL of the file "
                        "goes through https_proxy)", self.url)
        try:
            with_retries(self.url, self.transfer, self.attempt)
        except BaseException:
            discard_part(self.part)  # bytes no later attempt continues
            raise

    def attempt(self) -> None:
        discard_part(self.part)
        parts = urlsplit(self.url)
        # RFC 1738: each segment a folder to enter, escapes undone within it; ";type=i" is binary, as here.
        *folders, name = (unquote(s) for s in re.sub(r";type=[aid]$", "", parts.path).lstrip("/").split("/"))
        try:
            with ftplib.FTP(timeout=self.transfer.timeout) as ftp:
                ftp.connect(parts.hostname, parts.port or ftplib.FTP_PORT)
                ftp.login(unquote(parts.username or "anonymous"), unquote(parts.password or "anonymous@"))
                for folder in folders:
                    if folder:
                        ftp.cwd(folder)
                ftp.voidcmd("TYPE I")  # SIZE counts bytes only in binary mode
                total = self._size(ftp, name)
                self.sized = total is not None
                with open(self.part, "wb") as sink, _progress_bar(self.transfer, self.url, total, 0) as bar:
                    def write(chunk: bytes) -> None:
                        sink.write(chunk)
                        self.received += len(chunk)
                        bar.update(len(chunk))

                    ftp.retrbinary(f"RETR {name}", write, blocksize=_CHUNK)
        except ftplib.error_perm as error:  # 550 no such file, 530 login refused: retrying cannot help
            raise UserError(f"{self.url}: {_one_line(error)}") from None
        except (TimeoutError, ConnectionError, socket.gaierror, EOFError, ftplib.Error) as error:
            raise _Transient(_one_line(error)) from error  # 426 aborted, 421 too many users, a cut connection
        if total is not None and self.part.stat().st_size != total:
            raise _Transient(f"connection closed after {self.part.stat().st_size} of {total} bytes")

    @staticmethod
    def _size(ftp: ftplib.FTP, name: str) -> int | None:
        """The file's size (SIZE, RFC 3659), None where the server does not answer it."""
        try:
            return ftp.size(name)
        except ftplib.error_perm:  # 502 not implemented; a missing file fails at RETR, said there
            return None


def fetch(session: requests.Session, url: str, part: Path, transfer: Transfer, missing: str | None = None) -> bool:
    """Download `url` into `part` (continuing what an interrupted run left there); returns whether the
    server told the file's length, without which a transfer cut short looks whole."""
    ftp = urlsplit(url).scheme.lower() == "ftp"
    fetcher = _FtpFetch(url, part, transfer) if ftp else _HttpFetch(session, url, part, transfer)
    start = time.monotonic()
    try:
        fetcher.run()
    except NotFound as error:
        raise UserError(missing or str(error)) from None
    except OSError as error:  # requests' and urllib's errors were dealt with inside: this is the disk
        raise UserError(f"{part}: cannot write: {error.strerror or error}") from None
    seconds = max(time.monotonic() - start, 1e-9)
    log.info("%s: %d bytes in %.1f s (%.1f MB/s)", url, fetcher.received, seconds, fetcher.received / seconds / 1e6)
    return fetcher.sized


# --- The command --------------------------------------------------------------------------------------


def _convert(data: Path, out: Path, label: str) -> dict[str, int]:
    """Indexed FASTA at `out`; errors name the source, not the temporary file."""
    try:
        return write_indexed_fasta(data, out)
    except UserError as error:
        message = str(error)
        raise UserError(label + message[len(str(data)):] if message.startswith(str(data)) else message) from None


def download(source: str, out, settings: DownloadSettings | None = None, *, progress: bool = True,
             backoff: float = 1.0, **overrides) -> dict:
    """Fetch a genome SOURCE (ensembl:SPECIES[:RELEASE[:ASSEMBLY]], ucsc:ASSEMBLY, ncbi:ACCESSION, an
    http/https/ftp/file URL or a path) to `out` as indexed FASTA (bgzip with .fai and .gzi when `out`
    ends in .gz or .bgz, plain with .fai otherwise), verified against
    the user's checksum or else the archive's published one. `backoff`: first retry delay, seconds.
    Settings: a DownloadSettings, or its fields as keywords. Returns {"url", "contigs", "bases",
    "checksum"} for logging; raises UserError on bad input."""
    s = settings_with(DownloadSettings, settings, overrides)
    sha256, md5, retries, timeout = s.sha256, s.md5, s.retries, s.timeout
    out = Path(out)
    transfer = Transfer(retries=retries, timeout=timeout, backoff=backoff, progress=progress)
    wanted = user_checksum(sha256, md5)
    with _redacting(source), requests.Session() as session:
        session.headers["User-Agent"] = _USER_AGENT
        resolved = resolve(source, session, transfer, published=wanted is None)
        checksum = wanted or resolved.checksum
        if resolved.local is not None:
            verdict = verify(resolved.local, checksum, source)
            lengths = _convert(resolved.local, out, source)
        else:
            part = Path(f"{out}.part")
            # A folder made for --out goes again on failure, unless it keeps bytes to resume from.
            with made_parents(out), _sole_writer(out):
                if not fetch(session, resolved.url, part, transfer, resolved.missing) and checksum is None:
                    log.warning("%s: the server gave no length and there is no checksum, so a transfer cut short "
                                "cannot be told from a whole file; give --sha256 or --md5 to verify it", resolved.url)
                try:
                    verdict = verify(part, checksum, resolved.url)
                    lengths = _convert(part, out, resolved.url)
                except UserError:
                    discard_part(part)  # bytes that fail verification or are no genome must not be resumed
                    raise
                discard_part(part)
    summary = {"url": shown(resolved.url), "contigs": len(lengths), "bases": sum(lengths.values()), "checksum": verdict}
    log.info("%s: %d contigs, %d bases, checksum %s", out, summary["contigs"], summary["bases"], verdict)
    return summary


def add_arguments(parser) -> None:
    parser.description = ("Fetch a genome, verify its checksum and write it indexed for random access (bgzip with .fai "
                          "and .gzi under a .gz name). Interrupted HTTP(S) transfers resume (FTP ones start again); "
                          "nothing partial is left at --out. An existing --out is fetched again and replaced, with its "
                          "indices, only once the new one is whole.")
    parser.add_argument("source", metavar="SOURCE",
                        help="ensembl:SPECIES[:RELEASE[:ASSEMBLY]] (ensemblplants:, ensemblfungi:, ensemblmetazoa:, "
                        "ensemblprotists: for Ensembl Genomes) | ucsc:ASSEMBLY | ncbi:ACCESSION | http(s)/ftp/file "
                        "URL | local FASTA or GenBank path (plain, gzip or bgzip)")
    parser.add_argument("--out", required=True, type=output_file,
                        help="output FASTA: bgzip-compressed with .fai and .gzi when named .gz or .bgz (e.g. genome.fa.gz), "
                        "else plain with .fai")
    add_settings(parser, DownloadSettings)


def run(args) -> None:
    check_outputs([args.out], [local_path(args.source)])  # file:///x/g.fa.gz is the file /x/g.fa.gz
    report = download(args.source, args.out, settings_from(args, DownloadSettings), progress=not args.quiet)
    log.info("wrote %s: %s", args.out, json.dumps(report))
