"""Dense against window scanning: genome bp/s of `dnabert2 scan` with a per-base model and with a
window classifier of the same encoder (same preset, same weights), over the same contigs, in one run.
A window scan reads each base window/stride times per strand (4 by default); a dense scan once per
strand, plus its flanks. Each dense row is a core and flank length.

    python bench/dense_scan.py --device cpu --preset tiny --contigs IV      # the CPU figure
    python bench/dense_scan.py --device cpu --preset small --regions 40kb.bed
    python bench/dense_scan.py                                            # GPU: base, bf16

Random weights: throughput does not depend on them. Prints a table; record it in BENCHMARKS.md with
the device and date.
"""

import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SPLICE_LABELS, dense_splice_folder, scan_parser, tokenizer_for, warm_scan  # noqa: E402

from dnabert2.devices import resolve_device, resolve_precision  # noqa: E402
from dnabert2.model import build_model, preset, save_model  # noqa: E402


def main():
    parser = scan_parser(__doc__, workers=1)
    parser.add_argument("--regions", type=Path, help="BED of regions to scan instead")
    parser.add_argument("--dense", nargs="+", default=["3000/150", "2000/100", "2000/250"], metavar="CORE/FLANK")
    args = parser.parse_args()

    device = resolve_device(args.device)
    precision = resolve_precision("auto", device)
    tokenizer = tokenizer_for(Path(args.genome), args.tokenizer)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}, torch {torch.__version__}, preset {args.preset}, {precision}, both strands")
    torch.manual_seed(0)
    windows = build_model(preset(args.preset, num_labels=3), "classification")
    dense = build_model(preset(args.preset, num_labels=3), "dense")
    missing, _ = dense.bert.load_state_dict(windows.bert.state_dict(), strict=False)  # the same encoder
    assert not missing, missing  # only the window classifier's pooler is left over
    options = {"fasta": args.genome, "contigs": args.contigs, "regions": args.regions, "workers": args.workers,
               "batch_tokens": args.batch_tokens, "device": device}
    # Each row as soon as it is measured: a call cut short by its time limit keeps the rows before.
    print("| scan | windows | genome bp | s | tokens/s | genome bp/s | × window scan |\n"
          "|---|---:|---:|---:|---:|---:|---:|", flush=True)
    baseline = None

    def row(what, report):
        nonlocal baseline
        baseline = baseline or report["bp_per_second"]
        print(f"| {what} | {report['windows']:,} | {report['bases']:,} | {report['seconds']:.1f} | "
              f"{report['tokens_per_second']:,} | {report['bp_per_second']:,} | "
              f"{report['bp_per_second'] / baseline:.2f} |", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(windows, Path(tmp) / "windows", tokenizer)
        (folder / "task.json").write_text(json.dumps({"task": "splice", "window_bp": args.window, "labels": SPLICE_LABELS}))
        row(f"window scan, {args.window} bp windows, stride {args.window // 4}",
            warm_scan(folder, Path(tmp) / "w.bed", stride=args.window // 4, **options))
        for shape in args.dense:
            core, flank = (int(x) for x in shape.split("/"))
            folder = dense_splice_folder(dense, tokenizer, Path(tmp) / f"dense{core}", core, flank)
            row(f"dense scan, {core} bp cores, {flank} bp flanks",
                warm_scan(folder, Path(tmp) / f"d{core}_{flank}.bed", **options))

if __name__ == "__main__":
    main()
