"""Base-resolution annotation on real genomes, end to end with the commands a user runs: a dense task
from a genome and its annotation, a per-base model fine-tuned from a pretrained encoder and from a
random one of the same size, the SpliceAI-style CNN on the same task, each scanned over the task's
held-out test split and scored there by scan-eval (per-base PR-AUC and top-k accuracy, calls at the
kind's tolerance, close site pairs told apart).

    python bench/dense_real.py --genome G.fa.gz --annotation G.gff3.gz --kind splice \\
        --pretrained results/pretrain/tiny --out /tmp/bench-splice [--window-model M]

--window-model adds a window classifier's scan of the same stretch (peaks every stride) for the close
pairs. A rerun into the same --out reuses the task and models there (only scanning again), so it must
give the same settings: they are kept in --out/settings.json, and a rerun with others is refused.
Prints a Markdown table; record it in BENCHMARKS.md with the machine and date.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from dnabert2.model import build_model, load_model, save_model
from dnabert2.tokenizer import load_tokenizer


def run(*args) -> None:
    command = [sys.executable, "-m", "dnabert2", *map(str, args)]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def stamp(out: Path, settings: dict) -> None:
    """Record the settings the task and models in `out` are made with, or exit if they were made with others
    (or before settings were recorded): reused, they would not be what the table's heading says."""
    path = out / "settings.json"
    if path.exists():
        used = json.loads(path.read_text())
        changed = ", ".join(f"{key} {used.get(key)!r} (now {value!r})" for key, value in settings.items()
                            if used.get(key) != value)
        if changed:
            sys.exit(f"dense_real.py: {out} holds a run made with other settings: {changed}; give another --out or "
                     f"remove it")
    elif any(out.iterdir()):
        sys.exit(f"dense_real.py: {out} holds a run whose settings were not recorded; give another --out or remove it")
    else:
        path.write_text(json.dumps(settings, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--genome", required=True)
    parser.add_argument("--annotation", required=True)
    parser.add_argument("--kind", default="splice")
    parser.add_argument("--pretrained", required=True, type=Path, help="a pretrained model folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--core", type=int, default=2000)
    parser.add_argument("--flank", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--task-options", default="", help="more options for `tasks`, e.g. '--test-contigs IV'")
    parser.add_argument("--window-model", type=Path, help="a fine-tuned window classifier of the same kind")
    args = parser.parse_args()

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: str(Path(getattr(args, name)).resolve()) if getattr(args, name) else None
             for name in ("genome", "annotation", "pretrained", "window_model")}
    stamp(out, {"kind": args.kind, **paths, "core": args.core, "flank": args.flank, "epochs": args.epochs,
                "task_options": args.task_options})
    task = out / "task"
    if not task.is_dir():
        run("tasks", args.kind, "--dense", "--genome", args.genome, "--annotation", args.annotation, "--out", task,
            "--core", args.core, "--flank", args.flank, *args.task_options.split())
    described = json.loads((task / "task.json").read_text())
    random_init = out / "random-init-base"
    if not random_init.is_dir():
        torch.manual_seed(0)
        config = load_model(args.pretrained).config
        save_model(build_model(config, "mlm"), random_init, load_tokenizer(args.pretrained))
    models = {}
    for name, start in (("pretrained", args.pretrained), ("random init", random_init)):
        models[name] = out / name.replace(" ", "-")
        if not models[name].is_dir():
            run("finetune", "--model", start, "--data", task, "--out", models[name], "--epochs", args.epochs,
                "--batch-size", 8, "--device", "cpu")
    models["CNN"] = out / "cnn"
    if not models["CNN"].is_dir():
        run("cnn", "--data", task, "--out", models["CNN"], "--epochs", args.epochs, "--batch-size", 8, "--device",
            "cpu")
    if args.window_model:
        models["window classifier"] = args.window_model
    # The test split: whole contigs, or stretches of them (written as BED for the scan).
    where = ["--contigs", *described["contigs"]["test"]]
    if described["split"] == "positions":
        regions = out / "test.bed"
        regions.write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in described["regions"]["test"]))
        where = ["--regions", regions]
    rows = []
    for name, model in models.items():
        scan_dir = out / f"scan-{model.name}"
        scan_dir.mkdir(exist_ok=True)
        run("scan", "--model", model, "--fasta", args.genome, *where, "--out", scan_dir / "calls.bed",
            "--bigwig", scan_dir / "bigwig", "--summary", scan_dir / "scan.json", "--device", "cpu")
        run("scan-eval", "--calls", scan_dir / "calls.bed", "--annotation", args.annotation, "--summary",
            scan_dir / "scan.json", "--held-out", task, "--out", scan_dir / "eval.json")
        report = json.loads((scan_dir / "eval.json").read_text())
        summary = json.loads((scan_dir / "scan.json").read_text())
        for label, m in report["labels"].items():
            rows.append((name, label, m["sites"], m["pr_auc"], m["top_k_accuracy"], m["precision"], m["recall"],
                         f"{m['close_pairs_resolved']}/{m['close_pairs']}", summary["bp_per_second"]))
    # Cores and flanks as the task holds them; stamp() saw to it that the models used the rest.
    print(f"\n{args.kind} on {Path(args.genome).name}, test: {' '.join(described['contigs']['test'])} "
          f"({described['split']}), {described['core_bp']} bp cores, {described['flank_bp']} bp flanks, "
          f"{args.epochs} epochs")
    print("| model | label | sites | PR-AUC | top-k | precision | recall | close pairs resolved | scan bp/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join("—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
