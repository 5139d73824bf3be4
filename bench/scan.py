"""Scanning throughput: `dnabert2 scan` end to end (reading, tokenising in DataLoader workers, packed
inference, calls) in bp of window sequence per second, beside a Hugging Face
BertForSequenceClassification of the same width run the way the released code runs (tokenise in the
main process, pad each batch, classify), and the CPU tokeniser alone, all on the same windows.

    python bench/scan.py                                          # GPU: base, bf16, 400 bp windows
    python bench/scan.py --device cpu --preset tiny --contigs I   # the CPU figure

The classifier has random weights: throughput does not depend on them. The released code's figure
on an H100 (../shared/DESIGN.md) is 710 k tokens/s, about 3.3 Mbp/s of window sequence. Prints a
table; record it in BENCHMARKS.md with the device and date.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import scan_parser, tokenizer_for, warm_scan  # noqa: E402

from dnabert2.devices import autocast, resolve_device, resolve_precision  # noqa: E402
from dnabert2.model import build_model, preset, save_model  # noqa: E402
from dnabert2.sequences import Fasta  # noqa: E402
from dnabert2.tokenizer import encode  # noqa: E402


def hf_classifier(config, device, dtype):
    from transformers import BertConfig, BertForSequenceClassification

    hf = BertConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                    num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
                    intermediate_size=config.intermediate_size, max_position_embeddings=8192, num_labels=3,
                    attn_implementation="sdpa")
    return BertForSequenceClassification(hf).to(device, dtype).eval()


def windows_of(genome: Path, contigs, window: int, stride: int, limit: int) -> list[str]:
    found = []
    with Fasta(genome) as fasta:
        for contig in contigs or fasta.lengths:
            sequence = fasta.fetch(contig)
            found += [sequence[s:s + window] for s in range(0, len(sequence) - window + 1, stride)]
            if len(found) >= limit:
                break
    return found[:limit]


@torch.inference_mode()
def peer_rate(model, tokenizer, sequences: list[str], batch: int, device, precision: str) -> float:
    """Window bp/s of tokenise → pad → classify, batch by batch, as the released code scans (after one
    untimed batch, as the scan is timed after a warm-up)."""

    def classify(chunk):
        encoded = tokenizer.encode_batch(chunk)
        width = max(len(e.ids) for e in encoded)
        ids = torch.tensor([e.ids + [3] * (width - len(e.ids)) for e in encoded], device=device)
        with autocast(device, precision):
            model(input_ids=ids, attention_mask=(ids != 3).long()).logits.float().softmax(-1).cpu()

    classify(sequences[:batch])
    started = time.perf_counter()
    for i in range(0, len(sequences), batch):
        classify(sequences[i:i + batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return sum(map(len, sequences)) / (time.perf_counter() - started)


def main():
    parser = scan_parser(__doc__, workers=4)
    parser.add_argument("--stride", type=int, default=100)
    parser.add_argument("--peer-windows", type=int, default=4096, help="windows the peer classifies")
    parser.add_argument("--peer-batch", type=int, default=256)
    args = parser.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision("auto", device)
    tokenizer = tokenizer_for(Path(args.genome), args.tokenizer)
    torch.manual_seed(0)
    config = preset(args.preset, num_labels=3)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}, torch {torch.__version__}, preset {args.preset}, {precision}, {args.window} bp windows, "
          f"stride {args.stride}, both strands")
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(build_model(config, "classification"), Path(tmp) / "model", tokenizer)
        (folder / "task.json").write_text(json.dumps({"task": "splice", "window_bp": args.window,
                                                      "labels": {"0": "neither", "1": "donor", "2": "acceptor"}}))
        report = warm_scan(folder, Path(tmp) / "calls.bed", fasta=args.genome, contigs=args.contigs,
                           stride=args.stride, workers=args.workers, batch_tokens=args.batch_tokens, device=device)
    sequences = windows_of(Path(args.genome), args.contigs, args.window, args.stride, args.peer_windows)
    started = time.perf_counter()
    encode(tokenizer, sequences, args.window)  # as the scan's workers tokenise
    tokenise = sum(map(len, sequences)) / (time.perf_counter() - started)
    weights = torch.bfloat16 if precision == "bf16" else torch.float32
    peer = peer_rate(hf_classifier(config, device, weights), tokenizer, sequences, args.peer_batch, device, precision)
    print("| what | windows | window Mbp/s | tokens/s |\n|---|---:|---:|---:|")
    print(f"| dnabert2 scan, end to end ({args.workers} workers) | {report['windows']} | "
          f"{report['window_bp_per_second'] / 1e6:.2f} | {report['tokens_per_second']:,} |")
    print(f"| HF BertForSequenceClassification (SDPA), padded batches of {args.peer_batch} | {len(sequences)} | "
          f"{peer / 1e6:.2f} | |")
    print(f"| tokeniser alone, one process | {len(sequences)} | {tokenise / 1e6:.2f} | |")
    print(f"genome bp/s: {report['bp_per_second']:,} ({report['bases']:,} bp in {report['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
