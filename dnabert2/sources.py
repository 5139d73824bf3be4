"""Genome sources, as `dnabert2 download` and the workflow config name them, read without the network:
an archive (Ensembl species and release, UCSC assembly, NCBI accession), a remote URL, or a file here.
Imports nothing heavy: the workflow checks its config's sources with it before any job."""

import re
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from .errors import UserError

# Ensembl Genomes' divisions, beside Ensembl's vertebrates: ensemblplants:SPECIES and so on.
ENSEMBL_DIVISIONS = ("plants", "fungi", "metazoa", "protists")
_ENSEMBL = re.compile(rf"ensembl(?:{'|'.join(ENSEMBL_DIVISIONS)})?:([A-Za-z0-9_]+)(?::(\d*)(?::([^:/\s]+))?)?", re.I)
_UCSC = re.compile(r"ucsc:([A-Za-z0-9_]+)", re.I)
_NCBI = re.compile(r"ncbi:(GC[AF])_(\d{3})(\d{3})(\d{3})(?:\.(\d+))?", re.I)
REMOTE_SCHEMES = ("http", "https", "ftp")
FORMS = ("ensembl:SPECIES[:RELEASE[:ASSEMBLY]] (ensemblplants:, ensemblfungi:, ensemblmetazoa:, ensemblprotists: for "
         "Ensembl Genomes), ucsc:ASSEMBLY, ncbi:ACCESSION, an http(s)/ftp/file URL or a path")


def parse_ensembl(source: str) -> tuple[str, str | None, str | None]:
    """(species, release or None for the current one, assembly or None) of ensembl:SPECIES[:RELEASE[:ASSEMBLY]]
    (or ensemblplants: ... for a division of Ensembl Genomes)."""
    match = _ENSEMBL.fullmatch(source)
    if not match:
        raise UserError(
            f"bad Ensembl source {source!r}: expected ensembl:SPECIES[:RELEASE[:ASSEMBLY]], "
            "e.g. ensembl:homo_sapiens:112:GRCh38 or ensemblplants:arabidopsis_thaliana:60:TAIR10"
        )
    species, release, assembly = match.groups()
    return species.lower(), release or None, assembly


def parse_ucsc(source: str) -> str:
    """The assembly of ucsc:ASSEMBLY."""
    match = _UCSC.fullmatch(source)
    if not match:
        raise UserError(f"bad UCSC source {source!r}: expected ucsc:ASSEMBLY, e.g. ucsc:hg38")
    return match[1]


def parse_ncbi(source: str) -> tuple[str, int | None]:
    """(accession without version, version or None) of ncbi:GCF_000005845[.2]."""
    match = _NCBI.fullmatch(source)
    if not match:
        raise UserError(
            f"bad NCBI source {source!r}: expected ncbi:GCF_ or ncbi:GCA_ and 9 digits, "
            "with an optional version, e.g. ncbi:GCF_000005845.2"
        )
    prefix, *digits, version = match.groups()
    return f"{prefix.upper()}_{''.join(digits)}", int(version) if version else None


ARCHIVES = {"ensembl": parse_ensembl, **{f"ensembl{d}": parse_ensembl for d in ENSEMBL_DIVISIONS},
            "ucsc": parse_ucsc, "ncbi": parse_ncbi}


def archive(source: str) -> str | None:
    """The archive a source names ("ensembl", "ensemblplants", …, "ucsc", "ncbi"), its syntax checked; None
    for others."""
    name = source.split(":", 1)[0].lower()
    if name not in ARCHIVES or ":" not in source:
        return None
    ARCHIVES[name](source)
    return name


def local_path(source: str) -> Path | None:
    """The file on this machine that a source names (a path or a file:// URL), not yet checked to
    exist; None for an archive or a remote URL. A source of no known form is an error."""
    if archive(source):
        return None
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in REMOTE_SCHEMES:
        if not parts.netloc:
            raise UserError(f"bad source {source!r}: a {scheme} URL names a server")
        return None
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UserError(f"{source}: a file:// URL must name a file on this machine")
        return Path(url2pathname(parts.path))
    path = Path(source)
    # A scheme of two letters or more (a Windows drive is one), unless a file here is named so.
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", source) and not path.exists():
        raise UserError(f"unknown source {source!r}: expected {FORMS}")
    return path
