"""Task folders in the GUE format: {train,dev,test}.csv with a `sequence,label` header, read with
checks, written atomically, found under a GUE download's layout."""

import csv
import itertools
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..options import folder_name
from ..outputs import atomic_folder, atomic_output, atomic_text
from ..sequences.fasta import IUPAC, undecodable_at
from ..sequences.inputs import check_header

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
COLUMNS = ("sequence", "label")


def read_split(path: Path) -> tuple[list[str], np.ndarray]:
    """Sequences (upper-case, RNA's U as T) and integer labels of one GUE CSV, checked."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{path}: no such file (a task folder holds train.csv, dev.csv and test.csv)")
    try:
        table = pd.read_csv(path, dtype={"sequence": str, "label": str}, keep_default_na=False)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a CSV table (text that is not UTF-8{undecodable_at(path)})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UserError(f"{path}: not a CSV table ({str(error).splitlines()[0]})") from None
    with open(path, newline="", encoding="utf-8-sig") as handle:  # the first line pandas reads: blank ones skipped
        check_header(path, next((row for row in csv.reader(handle) if row), []), COLUMNS)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path}: no {' or '.join(missing)} column (GUE CSVs have sequence,label)")
    if table.empty:
        raise UserError(f"{path}: no rows")
    table = table.reset_index(drop=True)  # rows with a name the header does not (R's row names) became its index
    sequences = table["sequence"].str.upper().str.replace("U", "T")
    empty = (sequences.str.len() == 0).to_numpy()
    if empty.any():
        raise UserError(f"{path}: line {_line(path, empty)}: an empty sequence")
    bad = sequences.str.contains(f"[^{IUPAC}]", regex=True).to_numpy()
    if bad.any():
        found = sorted(set(sequences[bad].iloc[0]) - set(IUPAC))
        raise UserError(f"{path}: line {_line(path, bad)}: characters that are no nucleotide ({''.join(found)[:10]})")
    labels = pd.to_numeric(table["label"], errors="coerce")
    bad = (labels.isna() | (labels != labels.round()) | (labels.abs() > 2**31)).to_numpy()  # a class number, not 1e30
    if bad.any():
        raise UserError(f"{path}: line {_line(path, bad)}: label {table['label'][bad].iloc[0].strip()!r} is not a "
                        f"class number")
    return sequences.tolist(), labels.to_numpy(dtype=np.int64)


def _line(path: Path, rows: np.ndarray) -> int:
    """The line of the file that holds the first of `rows` (a mask over the table's rows): pandas
    skips blank lines, the header's included."""
    row = int(np.flatnonzero(rows)[0])
    with open(path, encoding="utf-8-sig") as lines:
        filled = (number for number, line in enumerate(lines, 1) if line.strip())
        return next(itertools.islice(filled, row + 1, None))


def read_task(folder) -> dict:
    """split → (sequences, labels) of a task folder; labels must be 0..K-1, all of them in train."""
    folder = Path(folder)
    task = {split: read_split(folder / f"{split}.csv") for split in SPLITS}
    classes = sorted(set(task["train"][1].tolist()))
    if len(classes) < 2:
        raise UserError(f"{folder}/train.csv: a single class ({classes[0]}); classification needs two or more")
    if classes != list(range(len(classes))):
        raise UserError(f"{folder}/train.csv: labels must be 0..K-1, found {classes}")
    for split in ("dev", "test"):
        extra = sorted(set(task[split][1].tolist()) - set(classes))
        if extra:
            raise UserError(f"{folder}/{split}.csv: labels {extra} do not occur in train.csv")
    return task


def check_dev(folder, task: dict) -> None:
    """Refuse, for training, a dev split of one class: its MCC is 0 at every epoch, so the first would be
    kept whatever the later ones learned."""
    dev = sorted(set(task["dev"][1].tolist()))
    if len(dev) < 2:
        raise UserError(f"{folder}/dev.csv: a single class ({dev[0]}); dev MCC, which picks the epoch and the seed, "
                        "needs two or more")


def warn_shared(folder, task: dict) -> None:
    """Warn of dev or test sequences that train holds too (read_split made case and U alike): a model
    scored on them is scored on what it learned from, as GUE-style sets deduplicated within a split only
    can hold."""
    learned = set(task["train"][0])
    for split in ("dev", "test"):
        shared = sum(sequence in learned for sequence in task[split][0])
        if shared:
            log.warning("%s/%s.csv: %d of its %d sequences are also in train.csv; a model trained on it is scored "
                        "on them as on sequences it has seen", folder, split, shared, len(task[split][0]))


def write_csv(path: Path, rows) -> None:
    """A GUE-format CSV: a sequence,label header, then one row per example."""
    with atomic_text(path) as handle:
        table = csv.writer(handle, lineterminator="\n")
        table.writerow(COLUMNS)
        table.writerows(rows)


def write_task_folder(out, examples: dict[str, list], write_split, description: dict, rng, *, force: bool,
                      inputs) -> None:
    """A task folder written whole or not at all: each split's examples in a seeded order, written by
    write_split(path, rows), and task.json."""
    with atomic_folder(out, force=force, inputs=inputs) as folder:
        for split, rows in examples.items():
            write_split(folder / f"{split}.csv", [rows[i] for i in rng.permutation(len(rows))])
        with atomic_output(folder / "task.json") as tmp:
            Path(tmp).write_text(json.dumps(description, indent=2) + "\n")


def deduplicate(examples: dict, order=("test", "dev", "train")) -> dict:
    """Each sequence once, in the first split of `order` that holds it: a test sequence also in train
    is one the model has seen. A sequence with two labels is dropped: it cannot be learned."""
    labels = {}
    for rows in examples.values():
        for sequence, label in rows:
            labels.setdefault(sequence, set()).add(label)
    seen, result = set(), {}
    for split in order:
        result[split] = []
        for sequence, label in examples[split]:
            if sequence not in seen and len(labels[sequence]) == 1:
                seen.add(sequence)
                result[split].append((sequence, label))
    return {split: result[split] for split in examples}


def random_split(pairs: list, folder, seed: int = 0, fractions=(0.8, 0.1)) -> Path:
    """A GUE task folder from labelled (sequence, label) pairs that have no contigs to split by: a
    seeded random train/dev/test split (80/10/10 by default) of the distinct sequences."""
    folder = Path(folder)
    unique = deduplicate({"all": pairs}, order=("all",))["all"]
    if len(unique) < len(pairs):
        log.info("%d of %d examples left out: repeated, or one sequence under two labels", len(pairs) - len(unique),
                 len(pairs))
    pairs = unique
    order = np.random.default_rng(seed).permutation(len(pairs))
    train, dev = (int(f * len(order)) for f in (fractions[0], fractions[0] + fractions[1]))
    for split, chosen in zip(SPLITS, (order[:train], order[train:dev], order[dev:])):
        write_csv(folder / f"{split}.csv", [pairs[i] for i in chosen])
    return folder


def find_tasks(root) -> dict[str, Path]:
    """Task name (its path under root, e.g. "prom/prom_300_all") → folder, for every folder holding
    train.csv, dev.csv and test.csv, linked folders included; one holding some of them is left out
    with a warning (a table lacking a task should say why)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    tasks, seen = {}, set()
    for here, folders, files in os.walk(root, followlinks=True):
        if os.path.realpath(here) in seen:  # a link back up the tree
            folders.clear()
            continue
        seen.add(os.path.realpath(here))
        folders.sort()
        held = [split for split in SPLITS if f"{split}.csv" in files]
        if held and len(held) < len(SPLITS):
            missing = [f"{split}.csv" for split in SPLITS if split not in held]
            log.warning("%s: no %s, so no task: left out", here, " and no ".join(missing))
        elif held:
            folder = Path(here)
            tasks[str(folder.relative_to(root)) if folder != root else folder_name(folder)] = folder
    tasks = dict(sorted(tasks.items()))
    if not tasks:
        raise UserError(f"{root}: no task folders (a task folder holds train.csv, dev.csv and test.csv)")
    return tasks


def one_class(probabilities: np.ndarray) -> bool:
    """Whether a classifier predicts one class for every sequence: it has learned nothing then,
    whatever its metrics say."""
    return len(np.unique(probabilities.argmax(1))) == 1


def scores(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Test metrics of a task: MCC, macro F1, accuracy, AUROC and AUPRC (one-vs-rest macro averages
    for more than two classes); AUROC and AUPRC are None (JSON null) where a class has no example, and
    MCC where all are of one class."""
    from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, matthews_corrcoef,
                                 roc_auc_score)

    predicted = probabilities.argmax(1)
    classes = probabilities.shape[1]
    # Macro F1 over the classes test holds, for every model alike (not those a model happens to predict).
    held = sorted(set(labels.tolist()))
    # MCC needs two classes in the truth: with one, it is 0 whatever the model does.
    result = {"mcc": matthews_corrcoef(labels, predicted) if len(held) > 1 else None,
              "f1": f1_score(labels, predicted, labels=held, average="macro"),
              "accuracy": accuracy_score(labels, predicted), "auroc": None, "auprc": None}
    if len(set(labels.tolist())) == classes:
        ranked = (labels, probabilities[:, 1]) if classes == 2 else (np.eye(classes)[labels], probabilities)
        result["auroc"] = roc_auc_score(*ranked, average="macro")
        result["auprc"] = average_precision_score(*ranked, average="macro")
    return {k: None if v is None else float(v) for k, v in result.items()}
