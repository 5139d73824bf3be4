"""`dnabert2 download` against a local HTTP server: real phage genomes, resume, retries, checksums,
bad payloads, the Ensembl/UCSC/NCBI layouts, and URL building offline."""

import errno
import fcntl
import gzip
import hashlib
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pysam
import pytest
import requests
from Bio import SeqIO

from conftest import GENOMES
from dnabert2 import download as dl
from dnabert2 import sources
from dnabert2.errors import UserError
from dnabert2.sequences.fasta import compression
from http_server import FileServer, write_file

REPO = Path(__file__).resolve().parents[1]
LAMBDA_GZ = GENOMES / "lambda_phage_bowtie2_example.fa.gz"
PHIX_GBK = GENOMES / "phiX174_NC_001422.gbk.gz"


# --- Fixtures and checks ------------------------------------------------------------------------------


def fasta_records(path) -> dict[str, str]:
    with pysam.FastxFile(str(path)) as records:
        return {record.name: record.sequence for record in records}


@pytest.fixture(scope="session")
def lambda_genome() -> dict[str, str]:
    return fasta_records(LAMBDA_GZ)


@pytest.fixture(scope="session")
def phix_genome() -> dict[str, str]:
    with gzip.open(PHIX_GBK, "rt") as handle:
        return {record.id: str(record.seq) for record in SeqIO.parse(handle, "genbank")}


@pytest.fixture(scope="session")
def phix_fasta_gz(phix_genome) -> bytes:
    text = "".join(f">{name}\n{sequence}\n" for name, sequence in phix_genome.items())
    return gzip.compress(text.encode())


@pytest.fixture
def server(tmp_path):
    with FileServer(tmp_path / "www") as running:
        running.root.mkdir(exist_ok=True)
        yield running


def publish(server: FileServer, path: str, data: bytes) -> str:
    write_file(server.root / path.lstrip("/"), data)
    return server.url(path)


def get(source, out, **options) -> dict:
    return dl.download(str(source), out, progress=False, backoff=0, **options)


def assert_genome(out: Path, expected: dict[str, str]) -> None:
    assert Path(f"{out}.fai").is_file() and Path(f"{out}.gzi").is_file()
    with pysam.FastaFile(str(out)) as fasta:
        assert dict(zip(fasta.references, fasta.lengths)) == {name: len(seq) for name, seq in expected.items()}
        for name, sequence in expected.items():
            assert fasta.fetch(name) == sequence
    assert not Path(f"{out}.part").exists() and not Path(f"{out}.part.json").exists()


def assert_nothing_left(out: Path) -> None:
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(out.name) or p.name.startswith(f".{out.name}")]
    assert leftovers == []


# --- Plain URLs ---------------------------------------------------------------------------------------


def test_url_download_gives_indexed_bgzip_fasta(server, tmp_path, lambda_genome):
    url = publish(server, "/files/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    out = tmp_path / "out" / "genome.fa.gz"
    summary = get(url, out)
    assert_genome(out, lambda_genome)
    assert compression(out) == "bgzf"
    assert summary == {"url": url, "contigs": 1, "bases": 48502, "checksum": "none"}


def test_cut_connection_is_resumed_with_a_range_request(server, tmp_path, lambda_genome):
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.cut_after["/lambda.fa.gz"] = 5000
    out = tmp_path / "genome.fa.gz"
    get(url, out)
    first, second = server.requests_for("/lambda.fa.gz")
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=5000-" and second.headers["If-Range"]
    assert second.status == 206
    assert_genome(out, lambda_genome)


def test_part_file_of_an_interrupted_run_is_continued(server, tmp_path, lambda_genome):
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.cut_after["/lambda.fa.gz"] = 7000
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match="gave up"):
        get(url, out, retries=0)
    assert Path(f"{out}.part").stat().st_size == 7000
    assert not out.exists()

    get(url, out)
    resumed = server.requests_for("/lambda.fa.gz")[-1]
    assert resumed.headers["Range"] == "bytes=7000-" and resumed.status == 206
    assert_genome(out, lambda_genome)


def test_part_file_that_no_run_could_continue_is_not_left_behind(server, tmp_path):
    """A server that names no version of its file (no ETag, no Last-Modified): a later run would
    start again, so the bytes of a failed one are deleted (they stayed, a genome's worth)."""
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.cut_after["/lambda.fa.gz"] = 7000
    server.faults.no_validators.add("/lambda.fa.gz")
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match="gave up"):
        get(url, out, retries=0)
    assert_nothing_left(out)


def test_part_file_is_not_continued_when_the_server_file_changed(server, tmp_path, phix_genome, phix_fasta_gz):
    url = publish(server, "/genome.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.cut_after["/genome.fa.gz"] = 3000
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError):
        get(url, out, retries=0)

    write_file(server.root / "genome.fa.gz", phix_fasta_gz, mtime=1_000_000)
    get(url, out)
    again = server.requests_for("/genome.fa.gz")[-1]
    assert again.headers["Range"] == "bytes=3000-"
    assert again.status == 200  # If-Range did not match: the whole new file came back
    assert_genome(out, phix_genome)


def test_bytes_of_a_server_that_names_no_version_of_its_file_are_not_continued(server, tmp_path, phix_genome,
                                                                              phix_fasta_gz):
    """Without ETag or Last-Modified, a retry or a rerun cannot tell the file from another of its size:
    it starts again rather than join two files' bytes."""
    url = publish(server, "/genome.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.no_validators.add("/genome.fa.gz")
    server.faults.cut_after["/genome.fa.gz"] = 3000
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError):
        get(url, out, retries=0)
    write_file(server.root / "genome.fa.gz", phix_fasta_gz)
    server.faults.cut_after["/genome.fa.gz"] = 1000
    get(url, out)
    assert ["Range" in r.headers for r in server.requests_for("/genome.fa.gz")] == [False, False, False]
    assert_genome(out, phix_genome)


def test_a_range_of_another_version_of_the_file_is_not_joined(server, tmp_path):
    """A server (or proxy) that honours Range but not If-Range answers 206 with the bytes of the file
    that replaced the one the part holds (of the same size): their ETags differ."""
    old, new = (f">chr1\n{bases * 1000}\n".encode() for bases in ("ACGT", "TTGA"))
    url = publish(server, "/genome.fa", old)
    server.faults.cut_after["/genome.fa"] = 1000
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError):
        get(url, out, retries=0)
    write_file(server.root / "genome.fa", new, mtime=1_000_000)
    server.faults.no_if_range.add("/genome.fa")
    get(url, out)
    resumed, restarted = server.requests_for("/genome.fa")[1:]
    assert resumed.headers["Range"] == "bytes=1000-" and resumed.status == 206
    assert "Range" not in restarted.headers and restarted.status == 200
    assert_genome(out, {"chr1": "TTGA" * 1000})


def test_stray_part_file_is_not_trusted(server, tmp_path, lambda_genome):
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    out = tmp_path / "genome.fa.gz"
    Path(f"{out}.part").write_bytes(b"bytes from who knows where")
    get(url, out)
    assert "Range" not in server.requests_for("/lambda.fa.gz")[0].headers
    assert_genome(out, lambda_genome)


def write_part_state(server, out: Path, url: str, data: bytes, total: int) -> None:
    """What an interrupted run leaves: the bytes so far and where they came from (the validator the
    server gives)."""
    with requests.get(url, timeout=5) as response:
        Path(f"{out}.part").write_bytes(data)
        Path(f"{out}.part.json").write_text(json.dumps({"url_sha256": hashlib.sha256(url.encode()).hexdigest(),
                                                        "validator": response.headers["ETag"], "total": total}))
    server.requests.clear()


def test_part_file_is_not_continued_when_the_total_size_changed(server, tmp_path, lambda_genome):
    data = LAMBDA_GZ.read_bytes()
    url = publish(server, "/lambda.fa.gz", data)
    out = tmp_path / "genome.fa.gz"
    write_part_state(server, out, url, data[:3000], total=len(data) + 1)
    get(url, out)
    resumed, restarted = server.requests_for("/lambda.fa.gz")
    assert resumed.headers["Range"] == "bytes=3000-" and resumed.status == 206
    assert "Range" not in restarted.headers and restarted.status == 200
    assert_genome(out, lambda_genome)


def test_complete_part_file_is_checked_by_its_last_byte_not_fetched_again(server, tmp_path, lambda_genome):
    data = LAMBDA_GZ.read_bytes()
    url = publish(server, "/lambda.fa.gz", data)
    out = tmp_path / "genome.fa.gz"
    write_part_state(server, out, url, data, total=len(data))
    get(url, out)
    (checked,) = server.requests_for("/lambda.fa.gz")
    assert checked.headers["Range"] == f"bytes={len(data) - 1}-" and checked.status == 206
    assert_genome(out, lambda_genome)


def test_complete_part_file_of_a_file_changed_since_is_fetched_anew(server, tmp_path):
    """The server's file changes (same size) before the rerun: If-Range brings the new one whole."""
    old, new = (f">chr1\n{bases * 250}\n".encode() for bases in ("ACGT", "TTGA"))
    url = publish(server, "/genome.fa", old)
    out = tmp_path / "genome.fa.gz"
    write_part_state(server, out, url, old, len(old))
    write_file(server.root / "genome.fa", new, mtime=1_000_000)
    get(url, out)
    assert [r.status for r in server.requests_for("/genome.fa")] == [200, 200]
    assert_genome(out, {"chr1": "TTGA" * 250})


def test_a_complete_part_file_is_kept_by_a_server_without_ranges_whose_file_is_the_same(server, tmp_path,
                                                                                      lambda_genome):
    data = LAMBDA_GZ.read_bytes()
    url = publish(server, "/lambda.fa.gz", data)
    out = tmp_path / "genome.fa.gz"
    write_part_state(server, out, url, data, len(data))
    server.faults.no_ranges.add("/lambda.fa.gz")
    get(url, out)
    assert [r.status for r in server.requests_for("/lambda.fa.gz")] == [200]  # its body left unread
    assert_genome(out, lambda_genome)


def test_a_server_that_cuts_every_transfer_and_ignores_ranges_runs_out_of_retries(server, tmp_path):
    """Cuts at varying points: only a transfer that gets further than every one before is progress."""
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.cut_always["/lambda.fa.gz"] = [1000, 3000, 2000, 2500]
    server.faults.no_ranges.add("/lambda.fa.gz")
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match=r"gave up after 4 failed attempts"):
        get(url, out, retries=3)
    assert len(server.requests_for("/lambda.fa.gz")) == 5 and not out.exists()


def test_a_transfer_of_unknown_length_without_checksum_is_named_unverifiable(server, tmp_path, lambda_genome, caplog):
    data = LAMBDA_GZ.read_bytes()
    url = publish(server, "/lambda.fa.gz", data)
    server.faults.no_length.add("/lambda.fa.gz")
    get(url, tmp_path / "a.fa.gz")
    assert_genome(tmp_path / "a.fa.gz", lambda_genome)
    assert "no length and there is no checksum" in caplog.text
    caplog.clear()
    get(url, tmp_path / "b.fa.gz", sha256=hashlib.sha256(data).hexdigest())
    assert "no length" not in caplog.text


def test_server_errors_are_retried(server, tmp_path, lambda_genome):
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.statuses["/lambda.fa.gz"] = [503, 502]
    out = tmp_path / "genome.fa.gz"
    get(url, out)
    assert [r.status for r in server.requests_for("/lambda.fa.gz")] == [503, 502, 200]
    assert_genome(out, lambda_genome)


def test_retries_run_out(server, tmp_path):
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.statuses["/lambda.fa.gz"] = [503] * 10
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match=r"HTTP 503 Service Unavailable \(gave up after 3 failed attempts\)"):
        get(url, out, retries=2)
    assert len(server.requests_for("/lambda.fa.gz")) == 3
    assert not out.exists()


@pytest.mark.parametrize("status, reason", [(404, "Not Found"), (403, "Forbidden")])
def test_client_errors_fail_at_once(server, tmp_path, status, reason):
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.statuses["/lambda.fa.gz"] = [status]
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match=f"^{url}: HTTP {status} {reason}$"):
        get(url, out)
    assert len(server.requests_for("/lambda.fa.gz")) == 1
    assert_nothing_left(out)


def test_unreachable_server_fails_after_retries(tmp_path):
    with FileServer(tmp_path) as stopped:
        url = stopped.url("/x.fa.gz")
    with pytest.raises(UserError, match=f"^{url}: Failed to establish a new connection: .*Connection refused "
                                        r"\(gave up after 2 failed attempts\)$"):
        get(url, tmp_path / "genome.fa.gz", retries=1, timeout=2)
    with pytest.raises(UserError, match=r"Connection refused \(gave up after 1 failed attempt\)$"):
        get(url, tmp_path / "genome.fa.gz", retries=0, timeout=2)


@pytest.mark.parametrize("errno, retried", [(socket.EAI_NONAME, False), (socket.EAI_AGAIN, True)])
@pytest.mark.parametrize("url, proxy", [("https://genomes.example.org/lambda.fa.gz", None),
                                        ("ftp://genomes.example.org/lambda.fa.gz", None),
                                        ("https://genomes.example.net/lambda.fa.gz", "http://proxy.example.org:3128")])
def test_a_host_name_that_does_not_exist_is_not_retried(tmp_path, monkeypatch, errno, retried, url, proxy):
    """As curl and wget: the resolver's "no such name" is final, its "temporary failure" is not; for
    FTP and for a proxy's name too."""
    asked = []

    def resolver(host, *args, **kwargs):
        asked.append(host)
        raise socket.gaierror(errno, os.strerror(errno) if errno > 0 else "resolver says")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    if proxy:
        monkeypatch.setenv("https_proxy", proxy)
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError) as error:
        get(url, out, retries=2)
    assert asked == ["proxy.example.org" if proxy else "genomes.example.org"] * (3 if retried else 1)
    final = "no such host as its proxy (resolver says); check https_proxy" if proxy else "no such host (resolver says)"
    assert str(error.value).startswith(f"{url}: ")
    assert ("(gave up after 3 failed attempts)" if retried else final) in str(error.value)
    assert_nothing_left(out)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the server's certificate")
def test_a_certificate_that_fails_verification_is_not_retried(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", tmp_path / "key.pem", "-out", tmp_path / "cert.pem"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with FileServer(tmp_path / "www", tls=context) as server:
        server.root.mkdir()
        url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
        out = tmp_path / "genome.fa.gz"
        with pytest.raises(UserError, match=f"^{url}: its certificate fails verification \\(self-signed certificate\\)$"):
            get(url, out, retries=3)
    assert_nothing_left(out)


def test_a_second_download_to_the_same_out_is_refused_while_the_first_writes(server, tmp_path, lambda_genome):
    """Both would write the one .part, and each blame what the other wrote."""
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    out = tmp_path / "genome.fa.gz"
    with open(f"{out}.lock", "a") as held:  # as the first download holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(UserError, match=f"^{out}: another download is writing it now"):
            get(url, out)
        assert not out.exists() and not Path(f"{out}.part").exists()
    get(url, out)
    assert_genome(out, lambda_genome)
    assert not Path(f"{out}.lock").exists()


def test_a_file_system_without_locks_downloads_unguarded(server, tmp_path, lambda_genome, monkeypatch, caplog):
    """NFS without its lock service, Lustre without flock: downloads worked there before the lock."""
    def no_locks(*args):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    out = tmp_path / "new" / "genome.fa.gz"
    get(url, out)
    assert_genome(out, lambda_genome)
    assert not Path(f"{out}.lock").exists()
    assert f"{out}: cannot lock {out}.lock (No locks available)" in caplog.text
    server.faults.statuses["/lambda.fa.gz"] = [404]
    with pytest.raises(UserError):
        get(url, tmp_path / "other" / "genome.fa.gz")
    assert not (tmp_path / "other").exists()  # the folder made for it, gone again


# --- Checksums ------------------------------------------------------------------------------------------


def test_user_checksums_are_verified(server, tmp_path, lambda_genome):
    data = LAMBDA_GZ.read_bytes()
    url = publish(server, "/lambda.fa.gz", data)
    out = tmp_path / "genome.fa.gz"
    assert get(url, out, sha256=hashlib.sha256(data).hexdigest())["checksum"] == "sha256 ok"
    assert get(url, out, md5=hashlib.md5(data).hexdigest().upper())["checksum"] == "md5 ok"
    assert_genome(out, lambda_genome)


def test_wrong_user_checksum_leaves_nothing(server, tmp_path):
    data = LAMBDA_GZ.read_bytes()
    url = publish(server, "/lambda.fa.gz", data)
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError) as error:
        get(url, out, sha256="0" * 64)
    assert str(error.value) == f"{url}: sha256 mismatch: expected {'0' * 64}, got {hashlib.sha256(data).hexdigest()}"
    assert_nothing_left(out)


@pytest.mark.parametrize("options, message", [
    ({"sha256": "abc"}, "--sha256 must be 64 hexadecimal digits"),
    ({"sha256": ""}, "--sha256 must be 64 hexadecimal digits, got ''"),  # "$UNSET", no checksum at all
    ({"md5": "z" * 32}, "--md5 must be 32 hexadecimal digits"),
    ({"md5": "0" * 32, "sha256": "0" * 64}, "not both"),
])
def test_malformed_user_checksum_fails_before_any_request(server, tmp_path, options, message):
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    with pytest.raises(UserError, match=message):
        get(url, tmp_path / "genome.fa.gz", **options)
    assert server.requests == []


# --- Payloads that are not a genome -------------------------------------------------------------------


def test_truncated_gzip_is_rejected(server, tmp_path):
    data = LAMBDA_GZ.read_bytes()
    url = publish(server, "/lambda.fa.gz", data[: len(data) // 2])
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match=f"^{url}: truncated or corrupt compressed file"):
        get(url, out)
    assert_nothing_left(out)


def test_html_page_is_rejected(server, tmp_path):
    url = publish(server, "/genome.fa.gz", b"<!DOCTYPE html>\n<html><body>Please log in</body></html>\n")
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match=f"^{url}: not a FASTA or GenBank file"):
        get(url, out)
    assert_nothing_left(out)


# --- Local files ----------------------------------------------------------------------------------------


def test_genbank_path_is_converted(tmp_path, phix_genome):
    out = tmp_path / "phix.fa.gz"
    summary = get(PHIX_GBK, out)
    assert_genome(out, phix_genome)
    assert summary["contigs"] == 1 and summary["bases"] == 5386


def test_file_url_is_converted_and_verified(tmp_path, lambda_genome):
    url = LAMBDA_GZ.as_uri()
    out = tmp_path / "genome.fa.gz"
    summary = get(url, out, md5=hashlib.md5(LAMBDA_GZ.read_bytes()).hexdigest())
    assert summary["checksum"] == "md5 ok" and summary["url"] == url
    assert_genome(out, lambda_genome)


def test_local_file_with_wrong_checksum_is_kept_and_nothing_written(tmp_path):
    source = tmp_path / "mine.fa.gz"
    shutil.copy(LAMBDA_GZ, source)
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match="md5 mismatch"):
        get(source, out, md5="0" * 32)
    assert source.read_bytes() == LAMBDA_GZ.read_bytes()
    assert_nothing_left(out)


@pytest.mark.parametrize("source, message", [
    ("missing.fa.gz", "no such file"),
    ("file:///nonexistent/genome.fa", "no such file"),
    ("ensmbl:homo_sapiens", "unknown source"),
])
def test_bad_local_sources(tmp_path, source, message):
    with pytest.raises(UserError, match=message):
        get(source, tmp_path / "genome.fa.gz")


# --- Ensembl, UCSC, NCBI end to end --------------------------------------------------------------------


def write_checksums(folder: Path) -> None:
    """CHECKSUMS as Ensembl makes it: `sum` (BSD algorithm) of every file in the folder."""
    lines = []
    for path in sorted(folder.iterdir()):
        checksum, blocks = subprocess.run(["sum", "-r", path.name], cwd=folder, capture_output=True, text=True, check=True).stdout.split()[:2]
        lines.append(f"{checksum} {blocks} {path.name}\n")
    (folder / "CHECKSUMS").write_text("".join(lines))


@pytest.fixture
def ensembl(server, monkeypatch, phix_fasta_gz):
    release = server.root / "pub/release-112/fasta/homo_sapiens/dna"
    write_file(release / "Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz", LAMBDA_GZ.read_bytes())
    write_file(release / "Homo_sapiens.GRCh38.dna.toplevel.fa.gz", phix_fasta_gz)
    write_file(release / "Homo_sapiens.GRCh38.dna_sm.primary_assembly.fa.gz", phix_fasta_gz)
    write_checksums(release)
    current = server.root / "pub/current_fasta/homo_sapiens/dna"
    write_file(current / "Homo_sapiens.T2T-CHM13v2.0.dna.toplevel.fa.gz", phix_fasta_gz)
    write_checksums(current)
    mouse = server.root / "pub/release-112/fasta/mus_musculus/dna"
    write_file(mouse / "Mus_musculus.GRCm39.dna.toplevel.fa.gz", LAMBDA_GZ.read_bytes())
    (mouse / "CHECKSUMS").write_text("12345 48 Mus_musculus.GRCm39.dna.toplevel.fa.gz\n")
    monkeypatch.setenv("DNABERT2_ENSEMBL_URL", server.url("/pub/"))
    return server


@pytest.mark.skipif(shutil.which("sum") is None, reason="needs coreutils `sum` to write CHECKSUMS")
def test_ensembl_release_prefers_primary_assembly(ensembl, tmp_path, lambda_genome):
    out = tmp_path / "genome.fa.gz"
    summary = get("ensembl:homo_sapiens:112:GRCh38", out)
    assert summary["url"] == ensembl.url("/pub/release-112/fasta/homo_sapiens/dna/Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz")
    assert summary["checksum"] == "ensembl sum ok"
    assert_genome(out, lambda_genome)


@pytest.mark.skipif(shutil.which("sum") is None, reason="needs coreutils `sum` to write CHECKSUMS")
def test_ensembl_current_release_takes_assembly_from_listing(ensembl, tmp_path, phix_genome):
    out = tmp_path / "genome.fa.gz"
    summary = get("ensembl:Homo_sapiens", out)
    assert summary["url"].endswith("/pub/current_fasta/homo_sapiens/dna/Homo_sapiens.T2T-CHM13v2.0.dna.toplevel.fa.gz")
    assert summary["checksum"] == "ensembl sum ok"
    assert_genome(out, phix_genome)


@pytest.mark.skipif(shutil.which("sum") is None, reason="needs coreutils `sum` to write CHECKSUMS")
def test_ensembl_genomes_divisions_have_their_own_root_and_current_folder(server, monkeypatch, tmp_path,
                                                                           phix_fasta_gz, phix_genome):
    """ensemblplants:… reads Ensembl Plants (ftp.ensemblgenomes.ebi.ac.uk/pub/plants), whose current
    release is current/fasta/, not Ensembl's current_fasta/."""
    assert dl.base_url("ensemblplants") == "https://ftp.ensemblgenomes.ebi.ac.uk/pub/plants"
    for folder in ("release-60/fasta", "current/fasta"):
        dna = server.root / f"pub/plants/{folder}/arabidopsis_thaliana/dna"
        write_file(dna / "Arabidopsis_thaliana.TAIR10.dna.toplevel.fa.gz", phix_fasta_gz)
        write_checksums(dna)
    monkeypatch.setenv("DNABERT2_ENSEMBLPLANTS_URL", server.url("/pub/plants/"))
    for source, folder in (("ensemblplants:arabidopsis_thaliana:60:TAIR10", "release-60/fasta"),
                           ("ensemblplants:arabidopsis_thaliana", "current/fasta")):
        out = tmp_path / folder.replace("/", "_") / "genome.fa.gz"
        summary = get(source, out)
        assert summary["url"] == server.url(f"/pub/plants/{folder}/arabidopsis_thaliana/dna/"
                                            "Arabidopsis_thaliana.TAIR10.dna.toplevel.fa.gz")
        assert summary["checksum"] == "ensembl sum ok"
        assert_genome(out, phix_genome)
    assert sources.archive("ensemblfungi:saccharomyces_cerevisiae:60") == "ensemblfungi"
    with pytest.raises(UserError, match="unknown source"):
        sources.local_path("ensemblfoo:x")


def test_ensembl_wrong_published_checksum(ensembl, tmp_path):
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match=r"ensembl sum mismatch: expected 12345 48, got \d+ 16$"):
        get("ensembl:mus_musculus:112", out)
    assert_nothing_left(out)


@pytest.mark.parametrize("source, message", [
    ("ensembl:unicorn:112", "^unknown Ensembl species or release: ensembl:unicorn:112"),
    ("ensembl:homo_sapiens:999", "^unknown Ensembl species or release"),
    ("ensembl:homo_sapiens:112:GRCh37", r"no GRCh37 genome for homo_sapiens \(assemblies: GRCh38\)"),
    ("ensembl:homo sapiens", "bad Ensembl source"),
])
def test_ensembl_errors(ensembl, tmp_path, source, message):
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match=message) as error:
        get(source, out)
    assert "\n" not in str(error.value)
    assert_nothing_left(out)


@pytest.fixture
def ucsc(server, monkeypatch):
    data = LAMBDA_GZ.read_bytes()
    folder = server.root / "goldenPath/lamb1/bigZips"
    write_file(folder / "lamb1.fa.gz", data)
    (folder / "md5sum.txt").write_text(f"{'f' * 32}  lamb1.2bit\n{hashlib.md5(data).hexdigest()}  lamb1.fa.gz\n")
    bad = server.root / "goldenPath/lamb2/bigZips"
    write_file(bad / "lamb2.fa.gz", data)
    (bad / "md5sum.txt").write_text(f"{'0' * 32}  lamb2.fa.gz\n")
    old = server.root / "goldenPath/lamb0/bigZips"  # as UCSC's ce1 and hg16: chromosomes in an archive
    write_file(old / "chromFa.zip", b"PK")
    (old / "md5sum.txt").write_text(f"{'0' * 32}  chromFa.zip\n")
    monkeypatch.setenv("DNABERT2_UCSC_URL", server.url(""))
    return server


def test_ucsc_assembly_verified_with_md5sum_txt(ucsc, tmp_path, lambda_genome):
    out = tmp_path / "genome.fa.gz"
    summary = get("ucsc:lamb1", out)
    assert summary["url"] == ucsc.url("/goldenPath/lamb1/bigZips/lamb1.fa.gz")
    assert summary["checksum"] == "md5 ok"
    assert_genome(out, lambda_genome)


def test_ucsc_wrong_published_md5(ucsc, tmp_path):
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match=f"md5 mismatch: expected {'0' * 32}, got {hashlib.md5(LAMBDA_GZ.read_bytes()).hexdigest()}"):
        get("ucsc:lamb2", out)
    assert_nothing_left(out)


@pytest.mark.parametrize("options", [{}, {"md5": "0" * 32}])
def test_ucsc_unknown_assembly(ucsc, tmp_path, options):
    out = tmp_path / "genome.fa.gz"
    with pytest.raises(UserError, match="^unknown UCSC assembly: hg99"):
        get("ucsc:hg99", out, **options)
    assert_nothing_left(out)
    with pytest.raises(UserError, match=r"^UCSC assembly lamb0 has no lamb0.fa.gz in .*/lamb0/bigZips/ \(an older"):
        get("ucsc:lamb0", out)
    assert_nothing_left(out)


@pytest.fixture
def ncbi(server, monkeypatch, phix_fasta_gz):
    directory = server.root / "genomes/all/GCF/000/005/845"
    for folder, data in [("GCF_000005845.1_ASM584v1", phix_fasta_gz), ("GCF_000005845.2_ASM584v2", LAMBDA_GZ.read_bytes())]:
        write_file(directory / folder / f"{folder}_genomic.fna.gz", data)
        (directory / folder / "md5checksums.txt").write_text(
            f"{'a' * 32}  ./README.txt\n{hashlib.md5(data).hexdigest()}  ./{folder}_genomic.fna.gz\n"
        )
    monkeypatch.setenv("DNABERT2_NCBI_URL", server.url("/"))
    return server


def test_ncbi_latest_version(ncbi, tmp_path, lambda_genome):
    out = tmp_path / "genome.fa.gz"
    summary = get("ncbi:GCF_000005845", out)
    assert summary["url"] == ncbi.url("/genomes/all/GCF/000/005/845/GCF_000005845.2_ASM584v2/GCF_000005845.2_ASM584v2_genomic.fna.gz")
    assert summary["checksum"] == "md5 ok"
    assert_genome(out, lambda_genome)


def test_ncbi_given_version(ncbi, tmp_path, phix_genome):
    out = tmp_path / "genome.fa.gz"
    assert get("ncbi:GCF_000005845.1", out)["checksum"] == "md5 ok"
    assert_genome(out, phix_genome)


@pytest.mark.parametrize("source, message", [
    ("ncbi:GCF_000005845.3", r"unknown NCBI accession: GCF_000005845.3 \(available: GCF_000005845.1, GCF_000005845.2\)"),
    ("ncbi:GCA_000001405.29", "unknown NCBI accession: GCA_000001405.29"),
])
def test_ncbi_unknown_accession(ncbi, tmp_path, source, message):
    with pytest.raises(UserError, match=message):
        get(source, tmp_path / "genome.fa.gz")


@pytest.mark.parametrize("source", ["ncbi:GCF_12345", "ncbi:GCX_000005845.2", "ncbi:GCF_000005845.v2", "ncbi:"])
def test_ncbi_malformed_accession_fails_before_any_request(ncbi, tmp_path, source):
    with pytest.raises(UserError, match="bad NCBI source"):
        get(source, tmp_path / "genome.fa.gz")
    assert ncbi.requests == []


# --- FTP (urllib's client, replaced: there is no FTP server in the test environment) -------------------


def test_ftp_url_and_a_transfer_the_server_aborts(tmp_path, lambda_genome):
    """A transfer aborted mid-file (426, its data connection closed early) is retried, not taken whole;
    a missing file (550) is said at once, not retried."""
    pytest.importorskip("pyftpdlib")
    from ftp_server import FtpServer

    (tmp_path / "pub" / "a genome").mkdir(parents=True)
    (tmp_path / "pub" / "a genome" / "lambda.fa.gz").write_bytes(LAMBDA_GZ.read_bytes())
    path = "/pub/a genome/lambda.fa.gz"
    with FtpServer(tmp_path) as server:
        server.cut_after[path] = 5000
        out = tmp_path / "out" / "genome.fa.gz"
        # RFC 1738's form: escapes within a segment, and the binary type code.
        get(server.url("/pub/a%20genome/lambda.fa.gz;type=i"), out)
        assert server.retrieved == [path] * 2
        assert_genome(out, lambda_genome)
        with pytest.raises(UserError, match="550"):
            get(server.url("/pub/missing.fa.gz"), tmp_path / "missing.fa.gz")
        assert server.retrieved[2:] == ["/pub/missing.fa.gz"]
        assert_nothing_left(tmp_path / "missing.fa.gz")
        # Given up on: no bytes are left behind, since FTP transfers start again.
        server.cut_after[path] = 5000
        with pytest.raises(UserError, match="gave up"):
            get(server.url("/pub/a%20genome/lambda.fa.gz"), tmp_path / "cut.fa.gz", retries=0)
        assert_nothing_left(tmp_path / "cut.fa.gz")


# --- Command line -----------------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "dnabert2", "download", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_download(server, tmp_path, lambda_genome):
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    out = tmp_path / "genome.fa.gz"
    result = run_cli(url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert_genome(out, lambda_genome)


def test_cli_error_is_one_line(server, tmp_path):
    out = tmp_path / "new" / "folder" / "genome.fa.gz"
    result = run_cli(server.url("/missing.fa.gz"), "--out", str(out))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("dnabert2") and "error" in line]
    assert len(errors) == 1 and "HTTP 404 Not Found" in errors[0]
    assert not (tmp_path / "new").exists()  # nothing, not even the folders made for it


@pytest.mark.parametrize("index", [".fai", ".gzi", ".tbi"])
def test_a_folder_at_an_index_name_is_refused_before_the_transfer(server, tmp_path, index):
    """Renaming the new .fai onto a folder failed once the genome was fetched, naming the genome; and a
    folder at a stale index's name (.tbi) cannot be removed."""
    url = publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    out = tmp_path / "out" / "genome.fa.gz"
    Path(f"{out}{index}").mkdir(parents=True)
    result = run_cli(url, "--out", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"genome.fa.gz{index}: a directory where {out}'s index goes" in result.stderr
    assert server.requests == [] and [p.name for p in out.parent.iterdir()] == [f"genome.fa.gz{index}"]
    # Named by a link, the genome and its indices go where the link points.
    link = tmp_path / "link.fa.gz"
    link.symlink_to(out)
    result = run_cli(url, "--out", str(link))
    assert result.returncode == 1 and f"{out}{index}: a directory where {link}'s index goes" in result.stderr
    assert server.requests == []


def test_a_file_url_may_not_overwrite_the_file_it_names(tmp_path):
    source = tmp_path / "in.fa.gz"
    shutil.copy(LAMBDA_GZ, source)
    result = run_cli(source.as_uri(), "--out", str(source))
    assert result.returncode == 1 and "would overwrite the input" in result.stderr
    assert source.read_bytes() == LAMBDA_GZ.read_bytes() and not Path(f"{source}.fai").exists()


def test_credentials_in_a_url_stay_out_of_logs_and_errors(server, tmp_path, lambda_genome):
    """Signed links carry their token in the query, some servers a password in the URL: logs and
    errors name the file with those shown as ***, so a shared log gives no access away."""
    publish(server, "/lambda.fa.gz", LAMBDA_GZ.read_bytes())
    server.faults.statuses["/lambda.fa.gz"] = [503]
    signed = server.url("/lambda.fa.gz?X-Token=s3cr3tT0ken&expires=99").replace("//", "//reader:hunter2@", 1)
    out = tmp_path / "genome.fa.gz"
    result = run_cli(signed, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert_genome(out, lambda_genome)
    assert "retrying" in result.stderr and "X-Token=***&expires=***" in result.stderr and "reader:***@" in result.stderr
    server.faults.statuses["/lambda.fa.gz"] = [403]
    failed = run_cli(signed, "--out", str(tmp_path / "again.fa.gz"))
    assert failed.returncode == 1 and "HTTP 403" in failed.stderr and "X-Token=***" in failed.stderr
    server.faults.cut_after["/lambda.fa.gz"] = 3000  # what a cut transfer keeps, to resume from, is on disk
    cut = run_cli(signed, "--out", str(tmp_path / "cut.fa.gz"), "--retries", "0")
    assert cut.returncode == 1 and Path(tmp_path / "cut.fa.gz.part").stat().st_size == 3000
    kept = Path(tmp_path / "cut.fa.gz.part.json").read_text()
    for secret in ("s3cr3tT0ken", "hunter2"):
        assert secret not in result.stderr + failed.stderr + cut.stderr + kept
    resumed = run_cli(signed, "--out", str(tmp_path / "cut.fa.gz"))
    assert resumed.returncode == 0 and "resuming at byte 3000" in resumed.stderr, resumed.stderr
    assert_genome(tmp_path / "cut.fa.gz", lambda_genome)


# --- Offline: URL building, listings, checksum files, BSD sum ------------------------------------------


def test_base_urls_default_and_from_environment(monkeypatch):
    for name in ("ENSEMBL", "UCSC", "NCBI"):
        monkeypatch.delenv(f"DNABERT2_{name}_URL", raising=False)
    assert dl.base_url("ensembl") == "https://ftp.ensembl.org/pub"
    assert dl.base_url("ucsc") == "https://hgdownload.soe.ucsc.edu"
    assert dl.base_url("ncbi") == "https://ftp.ncbi.nlm.nih.gov"
    monkeypatch.setenv("DNABERT2_NCBI_URL", "http://mirror.example.org/ncbi/")
    assert dl.base_url("ncbi") == "http://mirror.example.org/ncbi"


def test_ensembl_urls():
    base = "https://ftp.ensembl.org/pub"
    assert sources.parse_ensembl("ensembl:Homo_sapiens:112:GRCh38") == ("homo_sapiens", "112", "GRCh38")
    assert sources.parse_ensembl("ensembl:danio_rerio") == ("danio_rerio", None, None)
    assert sources.parse_ensembl("ensembl:danio_rerio::GRCz11") == ("danio_rerio", None, "GRCz11")
    assert dl.ensembl_directory(base, "homo_sapiens", "112") == f"{base}/release-112/fasta/homo_sapiens/dna/"
    assert dl.ensembl_directory(base, "homo_sapiens", None) == f"{base}/current_fasta/homo_sapiens/dna/"
    for bad in ("ensembl:", "ensembl:homo_sapiens:latest", "ensembl:homo_sapiens:112:GRCh38:x"):
        with pytest.raises(UserError, match="bad Ensembl source"):
            sources.parse_ensembl(bad)


def test_sources_are_told_apart_without_the_network(tmp_path):
    for remote in ("ensembl:danio_rerio", "ucsc:hg38", "ncbi:GCF_000005845.2", "https://h/g.fa", "FTP://h/g.fa"):
        assert sources.local_path(remote) is None, remote
    assert sources.local_path("file:///data/my%20genome.fa") == Path("/data/my genome.fa")
    assert sources.local_path("C:/data/g.fa") == Path("C:/data/g.fa")  # a drive letter is no scheme
    (tmp_path / "odd:name.fa").write_text(">a\nACGT\n")
    assert sources.local_path(str(tmp_path / "odd:name.fa")) == tmp_path / "odd:name.fa"
    for bad, words in (("s3://b/g.fa", "unknown source"), ("ucsc:", "bad UCSC source"), ("https:g.fa", "names a server"),
                       ("file://otherhost/g.fa", "on this machine")):
        with pytest.raises(UserError, match=words):
            sources.local_path(bad)


def test_choose_ensembl_file():
    names = ["CHECKSUMS", "README", "Homo_sapiens.GRCh38.dna.alt.fa.gz", "Homo_sapiens.GRCh38.dna.chromosome.1.fa.gz",
             "Homo_sapiens.GRCh38.dna_sm.primary_assembly.fa.gz", "Homo_sapiens.GRCh38.dna.toplevel.fa.gz",
             "Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz"]
    assert dl.choose_ensembl_file(names, "homo_sapiens", None, "d") == "Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz"
    assert dl.choose_ensembl_file(names, "homo_sapiens", "grch38", "d") == "Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz"
    pig = ["Sus_scrofa.Sscrofa11.1.dna.toplevel.fa.gz", "Sus_scrofa.Sscrofa11.1.dna_rm.toplevel.fa.gz"]
    assert dl.choose_ensembl_file(pig, "sus_scrofa", None, "d") == "Sus_scrofa.Sscrofa11.1.dna.toplevel.fa.gz"
    with pytest.raises(UserError, match=r"no GRCh37 genome for homo_sapiens \(assemblies: GRCh38\)"):
        dl.choose_ensembl_file(names, "homo_sapiens", "GRCh37", "d")
    with pytest.raises(UserError, match="several assemblies"):
        dl.choose_ensembl_file(["X_y.A1.dna.toplevel.fa.gz", "X_y.B2.dna.toplevel.fa.gz"], "x_y", None, "d")
    with pytest.raises(UserError, match="no homo_sapiens genome FASTA"):
        dl.choose_ensembl_file(["README"], "homo_sapiens", None, "d")


def test_ucsc_urls():
    assert sources.parse_ucsc("UCSC:hg38") == "hg38"  # the prefix in any case, as ensembl: and ncbi:
    assert dl.ucsc_urls("https://hgdownload.soe.ucsc.edu", "hg38") == (
        "https://hgdownload.soe.ucsc.edu/goldenPath/hg38/bigZips/hg38.fa.gz",
        "https://hgdownload.soe.ucsc.edu/goldenPath/hg38/bigZips/md5sum.txt",
    )


def test_ncbi_urls():
    base = "https://ftp.ncbi.nlm.nih.gov"
    assert sources.parse_ncbi("ncbi:GCF_000005845.2") == ("GCF_000005845", 2)
    assert sources.parse_ncbi("ncbi:gca_000001405") == ("GCA_000001405", None)
    directory = dl.ncbi_directory(base, "GCF_000005845")
    assert directory == f"{base}/genomes/all/GCF/000/005/845/"
    names = ["GCF_000005845.1_ASM584v1", "GCF_000005845.2_ASM584v2", "GCF_000005845.10_X", "GCF_000005846.3_Y"]
    assert dl.choose_ncbi_folder(names, "GCF_000005845", None) == "GCF_000005845.10_X"
    assert dl.choose_ncbi_folder(names, "GCF_000005845", 2) == "GCF_000005845.2_ASM584v2"
    assert dl.ncbi_urls(directory, "GCF_000005845.2_ASM584v2") == (
        f"{directory}GCF_000005845.2_ASM584v2/GCF_000005845.2_ASM584v2_genomic.fna.gz",
        f"{directory}GCF_000005845.2_ASM584v2/md5checksums.txt",
    )


def test_listing_names_from_an_apache_index():
    page = """<html><head><title>Index of /pub/release-112/fasta/homo_sapiens/dna</title></head><body>
    <table><tr><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th></tr>
    <tr><td><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/pub/release-112/fasta/homo_sapiens/">Parent Directory</a></td></tr>
    <tr><td><a href="CHECKSUMS">CHECKSUMS</a></td></tr>
    <tr><td><a href="Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz">Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz</a></td></tr>
    <tr><td><a href="GCF_000005845.2_ASM584v2/">GCF_000005845.2_ASM584v2/</a></td></tr>
    <tr><td><a href="https://www.ensembl.org">elsewhere</a><a href="../">up</a><a href="My%20File.txt">x</a></td></tr>
    </table></body></html>"""
    assert dl.listing_names(page) == [
        "CHECKSUMS", "Homo_sapiens.GRCh38.dna.primary_assembly.fa.gz", "GCF_000005845.2_ASM584v2", "My File.txt",
    ]


def test_checksum_file_entries():
    md5sum = "0123456789abcdef0123456789ABCDEF  hg38.fa.gz\nffffffffffffffffffffffffffffffff  hg38.2bit\n"
    assert dl.md5_entry(md5sum, "hg38.fa.gz") == dl.Checksum("md5", "0123456789abcdef0123456789abcdef")
    ncbi = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  ./X_genomic.fna.gz\n"
    assert dl.md5_entry(ncbi, "X_genomic.fna.gz") == dl.Checksum("md5", "a" * 32)
    assert dl.md5_entry(ncbi, "Y_genomic.fna.gz") is None
    sums = "05432 48 A.dna.toplevel.fa.gz\n17 1 A.dna.alt.fa.gz\n"
    assert dl.ensembl_sum_entry(sums, "A.dna.toplevel.fa.gz") == dl.Checksum("ensembl sum", "5432 48")
    assert dl.ensembl_sum_entry(sums, "B.fa.gz") is None


def _bsd_sum_cases() -> dict[str, bytes]:
    rng = random.Random(7)
    return {
        "empty": b"",
        "one byte": b"a",
        "1024 bytes": bytes(range(256)) * 4,
        "1025 high bytes": b"\xff" * 1025,
        "random 70 kB": rng.randbytes(70_001),
        "lambda.fa.gz": LAMBDA_GZ.read_bytes(),
    }


def test_bsd_sum_known_values():
    assert dl.bsd_sum([b""]) == (0, 0)
    assert dl.bsd_sum([b"a"]) == (97, 1)
    assert dl.bsd_sum([bytes(range(256)) * 5]) == (2560, 2)  # `sum -r` prints "02560     2"


@pytest.mark.skipif(shutil.which("sum") is None, reason="needs coreutils `sum`")
@pytest.mark.parametrize("case", list(_bsd_sum_cases()))
def test_bsd_sum_matches_coreutils(tmp_path, monkeypatch, case):
    data = _bsd_sum_cases()[case]
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    checksum, blocks = subprocess.run(["sum", "-r", str(path)], capture_output=True, text=True, check=True).stdout.split()[:2]
    expected = (int(checksum), int(blocks))
    assert dl.bsd_sum([data]) == expected
    assert dl.bsd_sum([data[:333], data[333:]]) == expected  # chunking does not matter
    assert dl.bsd_sum_file(path) == expected
    monkeypatch.setattr(shutil, "which", lambda name: None)  # the pure-Python path
    assert dl.bsd_sum_file(path) == expected
