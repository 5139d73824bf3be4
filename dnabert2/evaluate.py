"""The GUE-format benchmark harness: every task folder under a directory (or one task), a model
fine-tuned and scored on each, baselines beside it (k-mer logistic regression, a small CNN), and the
results as a TSV (one row per task and method) and a Markdown table in the paper's form (tasks by
methods, MCC)."""

import json
import logging
import math
import tempfile
from pathlib import Path

import torch

from .baselines import cnn_baseline, kmer_baseline
from .errors import UserError
from .finetune import SPLITS, encode, finetune, predict, read_task, scores
from .model import load_model
from .outputs import atomic_output
from .tokenizer import load_tokenizer

log = logging.getLogger(__name__)

METRICS = ("mcc", "f1", "accuracy", "auroc", "auprc")


def find_tasks(root) -> dict[str, Path]:
    """Task name (its path under root, e.g. "prom/prom_300_all") → folder, for every folder holding
    train.csv, dev.csv and test.csv."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    tasks = {}
    for train in sorted(root.rglob("train.csv")):
        folder = train.parent
        if all((folder / f"{split}.csv").is_file() for split in SPLITS):
            tasks[str(folder.relative_to(root)) if folder != root else folder.name] = folder
    if not tasks:
        raise UserError(f"{root}: no task folders (a task folder holds train.csv, dev.csv and test.csv)")
    return tasks


def score_classifier(model_dir: Path, task: dict, batch_size: int, device: str) -> dict:
    """Test metrics of an already fine-tuned classifier."""
    model = load_model(model_dir, device=device)
    info = model.config
    if getattr(info, "num_labels", None) != int(task["train"][1].max()) + 1:
        raise UserError(f"{model_dir}: a classifier of {info.num_labels} labels, the task has "
                        f"{int(task['train'][1].max()) + 1}")
    trained = model_dir / "finetune.json"
    longest = max(len(s) for s in task["test"][0])
    max_tokens = json.loads(trained.read_text())["max_tokens"] if trained.is_file() else max(8, math.ceil(longest / 4))
    ids = encode(load_tokenizer(model_dir), task["test"][0], max_tokens)
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    return scores(task["test"][1], predict(model, ids, task["test"][1], batch_size, device, autocast))


def is_classifier(model_dir: Path) -> bool:
    """A fine-tuned classifier (ours, or saved by the released code), told from its files without loading it."""
    if (model_dir / "finetune.json").is_file():
        return True
    try:
        architectures = json.loads((model_dir / "config.json").read_text()).get("architectures") or []
    except (OSError, json.JSONDecodeError):
        return False  # load_model will say what is wrong with the folder
    return "BertForSequenceClassification" in architectures


def evaluate(model_dir, tasks: dict[str, Path], out, *, baselines=("kmer",), kmer: int = 6,
             finetune_options: dict | None = None, device="auto") -> list[dict]:
    """Score `model_dir` on every task (fine-tuning it per task unless it is a fine-tuned classifier)
    and the baselines ("kmer", "cnn") beside it; writes `out` (TSV) and its .md twin. Returns the rows."""
    unknown = sorted(set(baselines) - {"kmer", "cnn"})
    if unknown:
        raise UserError(f"unknown baseline {unknown[0]!r}; choose kmer or cnn")
    model_dir, out = Path(model_dir), Path(out)
    classifier = is_classifier(model_dir)
    options = finetune_options or {}
    method = model_dir.name if classifier else f"{model_dir.name} ({'LoRA' if options.get('lora', True) else 'full'})"
    rows = []
    for name, folder in tasks.items():
        task = read_task(folder)
        log.info("task %s: %s", name, ", ".join(f"{s} {len(task[s][1])}" for s in SPLITS))
        if classifier:
            result, spread = score_classifier(model_dir, task, 64, device), {}
        else:
            with tempfile.TemporaryDirectory(prefix="dnabert2-evaluate-") as tmp:
                metrics = finetune(model_dir, folder, Path(tmp) / "model", device=device, **options)
            result, spread = metrics["test"], metrics["test_sd"]
        rows.append({"task": name, "method": method, "n_test": len(task["test"][1]), **result,
                     **{f"{k}_sd": v for k, v in spread.items()}})
        seed = (options.get("seeds") or [0])[0]
        if "kmer" in baselines:
            rows.append({"task": name, "method": f"{kmer}-mer logistic regression", "n_test": len(task["test"][1]),
                         **kmer_baseline(task, kmer, seed=seed)})
        if "cnn" in baselines:
            rows.append({"task": name, "method": "CNN (one-hot, 2 conv layers)", "n_test": len(task["test"][1]),
                         **cnn_baseline(task, seed=seed, device=device)})
    write_tables(rows, out)
    return rows


def write_tables(rows: list[dict], out: Path) -> None:
    import pandas as pd

    table = pd.DataFrame(rows)
    with atomic_output(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    methods = list(dict.fromkeys(table["method"]))
    lines = ["| task | test examples | " + " | ".join(f"{m} MCC" for m in methods) + " |",
             "|---|---:|" + "---:|" * len(methods)]
    for task, group in table.groupby("task", sort=False):
        cells = []
        for m in methods:
            row = group[group["method"] == m]
            if row.empty:
                cells.append("")
                continue
            sd = row.iloc[0].get("mcc_sd")
            cells.append(f"{row.iloc[0]['mcc']:.3f}" + (f" ± {sd:.3f}" if isinstance(sd, float) and sd > 0 else ""))
        lines.append(f"| {task} | {group.iloc[0]['n_test']} | " + " | ".join(cells) + " |")
    with atomic_output(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
