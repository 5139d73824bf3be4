"""The GUE-format benchmark harness: every task folder under a directory (or one task), a model
fine-tuned and scored on each, baselines beside it (k-mer logistic regression, a small CNN), and the
results as a TSV (one row per task and method) and a Markdown table in the paper's form (tasks by
methods, MCC)."""

import logging
from pathlib import Path

from .baselines import cnn_baseline, kmer_baseline
from .devices import autocast, resolve_device, resolve_precision
from .errors import UserError
from .finetune import check_task_kind, finetune, predict
from .hub import cached_id, model_path
from .model import classifier_head, is_classifier, load_model
from .options import add_settings, changed, folder_name, model_argument, output_file, settings_from
from .outputs import (atomic_output, atomic_text, bgzip_named, check_outputs, files_in, scratch_folder,
                      written_together)
from .settings import TRAINING_OPTIONS, EvaluateSettings, FinetuneSettings
from .tasks.description import is_dense, read_description
from .tasks.gue import SPLITS, check_dev, find_tasks, one_class, read_task, scores, warn_shared
from .tokenizer import frame, load_tokenizer, token_ids

log = logging.getLogger(__name__)


def score_classifier(model, model_dir: Path, task: dict, batch_size: int, device) -> dict:
    """Test metrics of the fine-tuned classifier `model` (loaded from `model_dir`) on whole sequences,
    as `finetune` reports them and `predict` gives them."""
    ids = frame(token_ids(load_tokenizer(model_dir), task["test"][0]))
    mixed = autocast(device, resolve_precision("auto", device))
    probabilities = predict(model, ids, task["test"][1], batch_size, device, mixed)
    return {**scores(task["test"][1], probabilities), "collapsed": one_class(probabilities)}


def evaluate(model_dir, tasks: dict[str, Path], out, settings: EvaluateSettings | None = None,
             training: FinetuneSettings | None = None) -> list[dict]:
    """Score `model_dir` on every task (fine-tuning it per task with `training`, unless it is a
    fine-tuned classifier) and the baselines beside it; writes `out` (TSV) and its .md twin. Returns
    the rows."""
    settings, training = settings or EvaluateSettings(), training or FinetuneSettings()
    if "none" in settings.baseline and len(settings.baseline) > 1:
        raise UserError(f"--baseline {' '.join(settings.baseline)}: none means no baseline, and stands alone")
    baselines = [b for b in settings.baseline if b != "none"]
    unknown = sorted(set(baselines) - {"kmer", "cnn"})
    if unknown:
        raise UserError(f"unknown baseline {unknown[0]!r}; choose kmer or cnn")
    model_dir, out = model_path(model_dir), Path(out)
    classifier = None
    if is_classifier(model_dir):
        if classifier_head(model_dir) == "dense":
            raise UserError(f"{model_dir}: a per-base model; `evaluate` scores window classifiers on window tasks "
                            "(a per-base model's scans are scored by `scan-eval`)")
        device = resolve_device(training.device)
        classifier = load_model(model_dir, head="classification", device=device, trained=True)
        # --device serves the baselines too, and so does --seeds' first seed.
        ignored = [flag for flag in changed(training, TRAINING_OPTIONS) if flag != "--device"
                   and (flag != "--seeds" or len(training.seeds) > 1)]
        if ignored:
            log.warning("%s is a fine-tuned classifier, scored as it is: %s shape training, and none is trained "
                        "here (its test sequences are scored whole, as finetune scores them)", model_dir,
                        ", ".join(ignored))
    check_tasks(tasks, None if classifier is None else classifier.config.num_labels, model_dir,
                settings.kmer if "kmer" in baselines else None)
    # A Hub model's folder is named by its commit: the table names it owner/name.
    hub = cached_id(model_dir)
    shown = hub[0] if hub else folder_name(model_dir)
    rows = []
    for name, folder in tasks.items():
        task = read_task(folder)
        log.info("task %s: %s", name, ", ".join(f"{s} {len(task[s][1])}" for s in SPLITS))
        if classifier is not None:
            method = shown
            result, spread = score_classifier(classifier, model_dir, task, 64, device), {}
        else:
            with scratch_folder("dnabert2-evaluate-") as tmp:
                metrics = finetune(model_dir, folder, tmp / "model", training, progress=False)
            method = f"{shown} ({'LoRA' if metrics['method'] == 'lora' else 'full'})"
            # The cell is a mean over seeds: marked if any seed's model predicts one class, saying how many.
            collapsed = sum(run["collapsed"] for run in metrics["runs"])
            result = {**metrics["test"], "collapsed": collapsed > 0,
                      **({"one_class_seeds": collapsed, "seeds": len(metrics["runs"])} if len(metrics["runs"]) > 1
                         else {})}
            spread = metrics["test_sd"] if len(metrics["runs"]) > 1 else {}
        scored = [{"task": name, "method": method, "n_test": len(task["test"][1]), **result,
                   **{f"{k}_sd": v for k, v in spread.items()}}]
        seed = training.seeds[0]
        if "kmer" in baselines:
            scored.append({"task": name, "method": f"{settings.kmer}-mer logistic regression",
                           "n_test": len(task["test"][1]), **kmer_baseline(task, settings.kmer, seed=seed)})
        if "cnn" in baselines:
            scored.append({"task": name, "method": "CNN (one-hot, 2 conv layers)", "n_test": len(task["test"][1]),
                           **cnn_baseline(task, seed=seed, device=training.device)})
        for row in scored:
            if row["collapsed"]:
                of_seeds = _of_seeds(row)
                log.warning("task %s: %s predicts one class for every sequence%s: %s learned nothing", name,
                            row["method"], of_seeds, "those models" if of_seeds else "it has")
        rows += scored
    write_tables(rows, out)
    return rows


def check_tasks(tasks: dict[str, Path], labels: int | None, model_dir: Path, kmer: int | None = None) -> None:
    """Refuse, before any fine-tuning, a folder that is no window task, (`labels`: those of a fine-tuned
    classifier) has other labels, or (`kmer`: the k-mer baseline's k) has no training sequence that
    long: found late, it would throw away the tasks before it."""
    for folder in tasks.values():
        if is_dense(folder):
            raise UserError(f"{folder}: a dense task; evaluate scores window tasks. Scan a per-base model with "
                            "`dnabert2 scan` and score it with `dnabert2 scan-eval` (the CNN baseline: `dnabert2 cnn`)")
        task = read_task(folder)
        classes = int(task["train"][1].max()) + 1
        check_task_kind(folder, classes)
        if labels is None:  # each task is fine-tuned, picking its epoch on dev (and told of shared sequences)
            check_dev(folder, task)
        else:
            warn_shared(folder, task)
        if labels is not None and labels != classes:
            raise UserError(f"{model_dir}: a classifier of {labels} labels, the task {folder} has {classes}")
        learnt, asked = read_description(model_dir).get("task"), read_description(folder).get("task")
        if labels is not None and learnt and asked and learnt != asked:
            log.warning("%s: a classifier of %s, scored on %s, a %s task", model_dir, learnt, folder, asked)
        longest = max(len(sequence) for sequence in task["train"][0])
        if kmer is not None and longest < kmer:
            raise UserError(f"{folder}: its training sequences are at most {longest} bp, too short for the k-mers of "
                            f"--kmer {kmer}; give a smaller --kmer, or --baseline none")


def write_tables(rows: list[dict], out: Path) -> None:
    import pandas as pd

    table = pd.DataFrame(rows)
    methods = list(dict.fromkeys(table["method"]))
    marked = False  # whether a cell says "(one class)", which a note then explains
    lines = ["| task | test examples | " + " | ".join(f"{m} MCC" for m in methods) + " |",
             "|---|---:|" + "---:|" * len(methods)]
    for task, group in table.groupby("task", sort=False):
        cells = []
        for m in methods:
            row = group[group["method"] == m]
            if row.empty:
                cells.append("")
                continue
            sd, mcc = row.iloc[0].get("mcc_sd"), row.iloc[0]["mcc"]
            if pd.isna(mcc):  # a test split of one class
                cells.append("undefined")
                continue
            one_class = _collapsed(row.iloc[0].get("collapsed"))
            marked |= one_class
            cells.append(f"{mcc:.3f}" + (f" ± {sd:.3f}" if isinstance(sd, float) and sd > 0 else "")
                         + (f" (one class{_of_seeds(row.iloc[0])})" if one_class else ""))
        lines.append(f"| {task} | {group.iloc[0]['n_test']} | " + " | ".join(cells) + " |")
    if marked:
        lines.append("\n(one class): the model (of several seeds: that many of their models) predicts one class for "
                     "every sequence (fine-tuned here: of the dev split, at the epoch kept; scored as given, and the "
                     "baselines: of the test split); it has learned nothing.")
    if table["mcc"].isna().any():
        lines.append("\nundefined: the task's test split holds one class, where MCC is 0 whatever a model does.")
    with written_together():  # the table and its Markdown twin, or neither
        with atomic_text(out) as handle:
            # Counts stay integers where a baseline's row leaves them empty (pandas made them 2.0000).
            counts = {count: "Int64" for count in ("one_class_seeds", "seeds") if count in table}
            table.astype(counts).to_csv(handle, sep="\t", index=False, float_format="%.4f")
        with atomic_output(markdown_of(out)) as tmp:
            Path(tmp).write_text("\n".join(lines) + "\n")


def markdown_of(table) -> Path:
    """The Markdown twin of a results table: results.md beside results.tsv (or results.tsv.gz)."""
    table = Path(table)
    return (table.with_suffix("") if bgzip_named(table) else table).with_suffix(".md")


def _of_seeds(row) -> str:
    """How many of a fine-tuned row's seeds predict one class, where it has several."""
    seeds = row.get("seeds")
    if seeds is None or seeds != seeds:  # a row of one seed, or a baseline's (NaN in a table of both)
        return ""
    return f" in {int(row['one_class_seeds'])} of {int(seeds)} seeds"


def _collapsed(value) -> bool:
    """A table cell of the collapsed column: True, False, or empty for a baseline."""
    return bool(value == True)  # noqa: E712 (numpy's True is not Python's; NaN is neither)


def add_arguments(parser) -> None:
    parser.description = (
        "For every task folder under --gue (GUE layout: EMP/, prom/, splice/, tf/, virus/ ...; any folder holding "
        "train.csv, dev.csv and test.csv) or the one --data task: fine-tune the model (--lora, --full, or by default "
        "LoRA from 50 M parameters and every weight below; a model that is already a fine-tuned classifier is scored "
        "as it is) and score it on test, beside the --baseline methods (by default a k-mer logistic-regression "
        "baseline; --baseline kmer cnn adds a small CNN). Writes a TSV (one row per task and method: "
        "MCC, F1 (a macro average over the classes test holds), accuracy, AUROC, AUPRC (of class 1 against 0, over "
        "more classes one-vs-rest macro averages; empty where test lacks a class); with several --seeds, the mean "
        "and _sd of each, and one_class_seeds of seeds: how many predict one class) and a Markdown table of MCC beside it (OUT with .md for its suffix).")
    parser.add_argument("--model", required=True, type=model_argument,
                        help="model folder (pretrained, or a fine-tuned classifier),"
                        " or a Hugging Face Hub id (owner/name[@revision])")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--gue", type=Path, metavar="DIR", help="a folder of task folders (the GUE layout)")
    where.add_argument("--data", type=Path, metavar="DIR", help="one task folder")
    parser.add_argument("--out", required=True, type=output_file,
                        help="results table (TSV); the Markdown table goes beside it")
    add_settings(parser, EvaluateSettings)
    add_settings(parser, FinetuneSettings, only=TRAINING_OPTIONS)


def run(args) -> None:
    tasks = find_tasks(args.gue) if args.gue else {folder_name(args.data): args.data}
    check_outputs([args.out, markdown_of(args.out)], files_in(*tasks.values(), args.model))
    rows = evaluate(args.model, tasks, args.out, settings_from(args, EvaluateSettings),
                    settings_from(args, FinetuneSettings))
    print(markdown_of(args.out).read_text(), end="")
    log.info("wrote %d rows to %s", len(rows), args.out)
