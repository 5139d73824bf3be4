"""Download memory benchmark: `dnabert2 download` of the E. coli K-12 genome and of a 16× larger
genome (16 renamed copies) from a local HTTP server, with the peak resident memory of each run.
Streaming transfer, checksum and bgzip conversion should keep the peak flat as the genome grows.

    python bench/download_memory.py [--genome FASTA.gz] [--copies 16]

Prints a table; figures go to BENCHMARKS.md with the machine and date."""

import argparse
import gzip
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's HTTP server

from http_server import FileServer  # noqa: E402

ECOLI = ROOT.parent / "shared" / "data" / "genomes" / "ecoli_k12_mg1655.fna.gz"


def write_copies(source: Path, target: Path, copies: int) -> None:
    """`copies` records, each the source's sequence under a new name, as one gzip file."""
    with gzip.open(source, "rb") as handle:
        header, _, body = handle.read().partition(b"\n")
    name = header[1:].split()[0]
    with gzip.open(target, "wb", compresslevel=6) as out:
        for copy in range(1, copies + 1):
            out.write(b">" + name + b"_copy%d" % copy + header[len(name) + 1 :] + b"\n" + body)


def measure(url: str, out: Path, sha256: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one `python -m dnabert2 download` child process."""
    command = [sys.executable, "-m", "dnabert2", "download", url, "--out", str(out), "--sha256", sha256]
    with tempfile.TemporaryFile() as stderr:  # a file, not a pipe: a full pipe would stall the child
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        # wait4 gives this child's own rusage: RUSAGE_CHILDREN would be the maximum over all children so far.
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            sys.exit(f"download of {url} failed:\n{stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genome", type=Path, default=ECOLI, help="gzip FASTA with one record (default: E. coli K-12)")
    parser.add_argument("--copies", type=int, default=16, help="copies in the large genome (default 16)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dnabert2-bench-") as tmp, FileServer(Path(tmp, "www")) as server:
        server.root.mkdir()
        files = {"1×": server.root / "genome.fa.gz", f"{args.copies}×": server.root / f"genome_x{args.copies}.fa.gz"}
        files["1×"].write_bytes(args.genome.read_bytes())
        write_copies(args.genome, files[f"{args.copies}×"], args.copies)

        print(f"# {platform.node()} {platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
        print("| genome | records | bases | gzip bytes | bgzip bytes | seconds | peak RSS (MiB) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, path in files.items():
            data = path.read_bytes()
            out = Path(tmp, f"out_{path.name}")
            seconds, peak = measure(server.url("/" + path.name), out, hashlib.sha256(data).hexdigest())
            lengths = [int(line.split("\t")[1]) for line in Path(f"{out}.fai").read_text().splitlines()]
            print(f"| {args.genome.name} {label} | {len(lengths)} | {sum(lengths):,} | {len(data):,} | "
                  f"{out.stat().st_size:,} | {seconds:.1f} | {peak:.0f} |")


if __name__ == "__main__":
    main()
