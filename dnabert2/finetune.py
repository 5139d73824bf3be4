"""Fine-tuning for sequence classification: LoRA through peft (the default) or the whole model, on a
task folder in the GUE format ({train,dev,test}.csv with `sequence,label`).

Each seed trains from the same checkpoint, evaluates on dev every epoch, stops early when dev MCC
stops improving and keeps its best epoch; test metrics are reported per seed and as mean ± sd. The
best seed's model is saved: the LoRA adapter and the classifier head only (megabytes), or with
--merge (or full fine-tuning) a whole model folder.
"""

import json
import logging
import math
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .devices import autocast, finite, resolve_device, resolve_precision, upload
from .errors import UserError
from .hub import cached_id, model_name, model_path
from .model import ModelConfig, check_model_folder, load_model, save_model
from .model.adapters import is_adapter, with_lora
from .model.checkpoint import base_weights, save_tokenizer_files
from .optim import schedule
from .options import add_settings, changed, model_argument, progress, settings_from, settings_with
from .outputs import atomic_folder, atomic_output, check_folder
from .settings import CNN_OPTIONS, LORA_FROM, LORA_OPTIONS, FinetuneSettings
from .tasks.description import is_dense, read_description
from .tasks.gue import SPLITS, check_dev, one_class, read_task, scores, warn_shared
from .tasks.registry import KINDS
from .tokenizer import frame, load_tokenizer, token_ids, token_limit

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 30
# What to try next, by what was trained; {baseline} is the job's own (a dense task has no k-mer baseline).
ADVICE = {
    "lora": "try --full (LoRA has little to adapt in a small model), a higher --lr, more --epochs, or a larger "
            "pretrained model; {baseline} shows what the data allows",
    "full": "try a higher --lr, more --epochs, or a larger pretrained model; {baseline} shows what the data allows",
    "cnn": "try a higher --lr or more --epochs, or check that the task's windows hold annotated sites",
}




def packed_batches(ids: list[list[int]], labels: np.ndarray, batch_size: int, order, device):
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        lengths = [len(ids[i]) for i in chosen]
        # cu_seqlens stays on the CPU: the model checks it there and copies it, without a sync.
        yield {"input_ids": upload(np.fromiter((t for i in chosen for t in ids[i]), dtype=np.int64), device),
               "cu_seqlens": torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int32),
               "max_seqlen": max(lengths), "labels": upload(labels[chosen], device)}


@torch.no_grad()
def predict(model, ids, labels, batch_size, device, autocast) -> np.ndarray:
    """Class probabilities (n, K)."""
    model.eval()
    probabilities = []
    for batch in packed_batches(ids, labels, batch_size, np.arange(len(ids)), device):
        with autocast:
            logits = model(batch["input_ids"], cu_seqlens=batch["cu_seqlens"], max_seqlen=batch["max_seqlen"]).logits
        probabilities.append(finite(logits.float().softmax(-1)).cpu().numpy())
    model.train()
    return np.concatenate(probabilities)


def warn_cut(whole: list[list[int]], max_tokens: int, split: str) -> None:
    """Say how many sequences (their token ids, unframed) framing at `max_tokens` cuts short."""
    cut = sum(len(ids) + 2 > max_tokens for ids in whole)
    if cut:
        log.warning("%d of %d %s sequences are longer than %d tokens ([CLS] and [SEP] included) and lose their "
                    "ends; give a larger --max-tokens to keep them whole", cut, len(whole), split, max_tokens)


class WindowJob:
    """Sequence classification on a GUE task folder: one label per sequence, picked on dev MCC."""

    head, metric = "classification", "mcc"
    # A model that predicts one class for every dev sequence has learned nothing, whatever its metrics say.
    one_class_warning = "the selected model predicts one class for every dev sequence: it has learned nothing"
    baseline = "the k-mer baseline (dnabert2 evaluate)"

    def __init__(self, data: Path, tokenizer, max_tokens: int | None):
        self.folder = data
        self.task = read_task(data)
        check_dev(data, self.task)
        warn_shared(data, self.task)
        self.classes = int(self.task["train"][1].max()) + 1
        check_task_kind(data, self.classes)
        # From train alone: what dev and test hold must not change what is trained.
        self.max_tokens = max_tokens or token_limit(max(len(q) for q in self.task["train"][0]))
        whole = {split: token_ids(tokenizer, self.task[split][0]) for split in SPLITS}
        # Cut for training only (DNABERT-2's limit bounds its cost); dev and test are scored whole, as
        # predict and scan run the model, so the figures reported are theirs.
        self.ids = {split: frame(whole[split], self.max_tokens if split == "train" else None) for split in SPLITS}
        # The default limit (DNABERT-2's, a quarter of the length) assumes ~5 bp per token: a vocabulary
        # of shorter tokens would lose the sequences' ends, and with them the sites they hold, unsaid.
        warn_cut(whole["train"], self.max_tokens, "training")
        self.train_size = len(self.task["train"][1])

    def batches(self, split, order, batch_size, device):
        return packed_batches(self.ids[split], self.task[split][1], batch_size, order, device)

    def predict(self, model, split, batch_size, device, mixed) -> np.ndarray:
        return predict(model, self.ids[split], self.task[split][1], batch_size, device, mixed)

    def scores(self, split, probabilities) -> dict:
        return scores(self.task[split][1], probabilities)

    def one_class(self, probabilities) -> bool:
        return one_class(probabilities)


def train_one(build, job, seed, s: FinetuneSettings, lr, device, precision, progress):
    """Train one seed of the model `build()` makes; returns (model at its best dev epoch, dev scores
    per epoch, best epoch)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build().to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=s.weight_decay, fused=device.type == "cuda")
    steps = s.epochs * math.ceil(job.train_size / s.batch_size)
    scheduler = schedule(optimizer, steps, s.warmup)
    mixed = autocast(device, precision)
    history, best, best_state, waited = [], None, None, 0
    bar = tqdm(total=steps, disable=not progress, desc=f"fine-tuning (seed {seed})", unit="step")
    heard, done = time.monotonic(), 0
    for epoch in range(1, s.epochs + 1):
        for batch in job.batches("train", rng.permutation(job.train_size), s.batch_size, device):
            with mixed:
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            bar.update(1)
            value = loss.item()
            if not math.isfinite(value):
                bar.close()
                raise UserError(f"training diverged: the loss is {value} at step {done + 1} (seed {seed}); lower the "
                                f"learning rate (--lr, now {lr:g})")
            bar.set_postfix(loss=f"{value:.3f}")
            done += 1
            if not progress and time.monotonic() - heard > LOG_EVERY_SECONDS:  # a log file gets a line instead
                heard = time.monotonic()
                log.info("seed %d epoch %d: step %d of %d, loss %.4f", seed, epoch, done, steps, value)
        probabilities = job.predict(model, "dev", s.batch_size, device, mixed)
        dev = job.scores("dev", probabilities)
        score = dev[job.metric] if dev[job.metric] is not None else -1.0
        history.append({"epoch": epoch, **{f"dev_{k}": v for k, v in dev.items() if not isinstance(v, dict)},
                        "dev_one_class": job.one_class(probabilities)})
        log.info("seed %d epoch %d: dev %s %.4f", seed, epoch, job.metric, score)
        if best is None or score > best:
            best, waited = score, 0
            best_state = {n: p.detach().cpu().clone() for n, p in model.state_dict().items()}
        else:
            waited += 1
            if waited >= s.patience:
                break
    bar.close()
    model.load_state_dict(best_state)
    chosen = max(history, key=lambda h: h[f"dev_{job.metric}"] if h[f"dev_{job.metric}"] is not None else -1.0)
    return model, history, chosen["epoch"]


def open_job(data: Path, tokenizer, max_tokens: int | None):
    """The fine-tuning job of a task folder: per-base for a dense task, else per window."""
    from .bases.job import DenseJob

    if is_dense(data) and max_tokens is not None:
        raise UserError(f"{data}: a dense task, whose windows are never cut (every base needs its token); "
                        "leave out --max-tokens")
    return DenseJob(data, tokenizer) if is_dense(data) else WindowJob(data, tokenizer, max_tokens)


def finetune(model_dir, data, out, settings: FinetuneSettings | None = None, *, progress=True, **overrides) -> dict:
    """Fine-tune `model_dir` on the task folder `data` (GUE format, or a dense task) and write `out`;
    returns the metrics. Settings: a FinetuneSettings, or its fields as keywords."""
    s = settings_with(FinetuneSettings, settings, overrides)
    if str(model_dir) == "cnn" and not Path("cnn").exists():  # the workflow's name for the baseline
        raise UserError("--model cnn: the CNN baseline is not a model to fine-tune; train it with `dnabert2 cnn "
                        "--data TASK --out DIR` (the workflow's `model: cnn`)")
    model_dir, data, out = model_path(model_dir), Path(data), Path(out)
    if is_adapter(model_dir):
        raise UserError(f"{model_dir}: a LoRA adapter, which holds no whole model to train; fine-tune its base model, "
                        "or one saved with --merge")
    check_model_folder(model_dir)
    ModelConfig.load(model_dir / "config.json")  # refuses another architecture (the CNN) before reading data
    check_folder(out, s.force, inputs=[model_dir, data])
    tokenizer = load_tokenizer(model_dir)
    job = open_job(data, tokenizer, s.max_tokens)
    # Loaded once before any training: it checks the checkpoint, and its size picks the defaults.
    parameters = sum(p.numel() for p in load_model(model_dir, head=job.head, num_labels=job.classes).parameters())
    auto = s.method == "auto"
    s = replace(s, method=s.method if not auto else "lora" if parameters >= LORA_FROM else "full")
    lora_options = changed(s, LORA_OPTIONS)
    if s.method == "full" and lora_options:
        log.warning("%s go%s with LoRA's adapters, but this run fine-tunes every weight%s", ", ".join(lora_options),
                    "es" * (len(lora_options) == 1),
                    " (the choice for a model under 50 M parameters); give --lora for adapters" if auto else "")
    lr = s.lr or default_lr(s.method, parameters)
    # Read before training: weights replaced during a long run must not pass for those it trained on.
    adapter_base = base_weights(model_dir) if s.method == "lora" and not s.merge else None
    log.info("fine-tuning %s (%.1f M parameters): %s, learning rate %g", model_dir, parameters / 1e6, s.method, lr)

    def build():
        model = load_model(model_dir, head=job.head, num_labels=job.classes)
        return with_lora(model, s.lora_r, s.lora_alpha, s.lora_dropout, s.target_modules) if s.method == "lora" else model

    lora = s.method == "lora"
    lora_settings = {"r": s.lora_r, "alpha": s.lora_alpha, "dropout": s.lora_dropout,
                     "targets": list(s.target_modules)} if lora else None
    metrics, model = train_seeds(build, job, s, lr, progress, {"model": model_name(model_dir), "method": s.method},
                                 ADVICE[s.method])
    with atomic_folder(out, force=s.force, inputs=[model_dir, data]) as folder:
        _save(model, model_dir, folder, tokenizer, adapter_base, metrics, lora_settings, job)
        copy_task_description(data, folder)
    return metrics


def train_seeds(build, job, s: FinetuneSettings, lr, progress, about: dict, advice: str) -> tuple[dict, torch.nn.Module]:
    """Train every seed; returns the metrics (test mean and sd over seeds) and the best seed's model."""
    device = resolve_device(s.device)
    precision = resolve_precision(s.dtype, device)
    if len(set(s.seeds)) < len(s.seeds):
        raise UserError(f"--seeds {' '.join(map(str, s.seeds))}: a seed given twice trains the same model twice")
    runs, best_run = [], None
    for seed in s.seeds:
        model, history, epoch = train_one(build, job, seed, s, lr, device, precision, progress)
        test = job.scores("test", job.predict(model, "test", s.batch_size, device, autocast(device, precision)))
        chosen = next(h for h in history if h["epoch"] == epoch)
        run = {"seed": seed, "best_epoch": epoch, f"dev_{job.metric}": chosen[f"dev_{job.metric}"], "test": test,
               "collapsed": chosen["dev_one_class"], "history": history}
        runs.append(run)
        log.info("seed %d: test %s %s (best epoch %d)", seed, job.metric, test[job.metric], epoch)
        if best_run is None or _dev(run, job.metric) > _dev(best_run[0], job.metric):
            best_run = (run, model)
    collapsed = best_run[0]["collapsed"]
    warning = f"{job.one_class_warning}; {advice.format(baseline=job.baseline)}"
    if collapsed:
        log.warning(warning)
    metrics = {
        "task": str(job.folder), **about, "head": job.head, "num_labels": job.classes, "max_tokens": job.max_tokens,
        # What shaped training, the default learning rate resolved: the log alone said it.
        "lr": lr, "epochs": s.epochs, "batch_size": s.batch_size, "patience": s.patience, "dtype": precision,
        "seeds": list(s.seeds), "test": mean_over(run["test"] for run in runs),
        "test_sd": mean_over((run["test"] for run in runs), spread=True),
        "saved_seed": best_run[0]["seed"], "collapsed": collapsed, "runs": runs,
        **({"warning": warning} if collapsed else {}),
    }
    return metrics, best_run[1]


def _dev(run: dict, metric: str) -> float:
    """A seed's dev score for picking the best; undefined ranks last (0.0 is a score, not undefined)."""
    value = run[f"dev_{metric}"]
    return -math.inf if value is None else value


def mean_over(results, spread: bool = False) -> dict:
    """The mean (or, with spread, the sample sd, which one seed leaves undefined: None) of each number
    in the seeds' test metrics, nested dicts (per-label metrics) alike; a number undefined in any seed
    stays None, and a count every seed shares is kept as it is (no spread)."""
    results = list(results)
    out = {}
    for key, first in results[0].items():
        values = [r[key] for r in results]
        if isinstance(first, dict):
            out[key] = mean_over(values, spread)
        elif isinstance(first, int) and not isinstance(first, bool) and len(set(values)) == 1:
            if not spread:  # a count of the test split's (sites, bases), the same in every seed
                out[key] = first
        elif not isinstance(first, (int, float)) or any(v is None for v in values):
            out[key] = first if not isinstance(first, (int, float)) else None
        elif spread:
            out[key] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        else:
            out[key] = float(np.mean(values))
    return out


def _save(model, model_dir, out, tokenizer, adapter_base, metrics, lora_settings, job):
    """The adapter alone when `adapter_base` (the base weights it was trained on) is given, else the whole model."""
    adapter_only = adapter_base is not None
    if adapter_only:
        # peft's own record of the base (base_model_name_or_path, revision), which PeftConfig readers show.
        # Embeddings are never resized: peft would otherwise load the base's config (from the Hub) to see.
        model.peft_config["default"].base_model_name_or_path, model.peft_config["default"].revision = \
            cached_id(model_dir.resolve()) or (str(model_dir.resolve()), None)
        model.save_pretrained(out, save_embedding_layers=False)  # adapter_model.safetensors + adapter_config.json: LoRA weights and the head
        (out / "README.md").unlink(missing_ok=True)  # peft's model card, 200 lines of "[More Information Needed]"
        save_tokenizer_files(tokenizer, out)
    else:
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        # Named as the task names them, for Hugging Face's loaders and pipelines; those of an earlier
        # task, fine-tuned from, are not this head's (a task without names: LABEL_i).
        model.config.id2label = task_labels(job.folder, model.config.num_labels)
        save_model(model, out, tokenizer)
    info = {"base_model": model_name(model_dir.resolve()), "head": job.head, "num_labels": metrics["num_labels"],
            "max_tokens": metrics["max_tokens"], "adapter": adapter_only, "lora": lora_settings}
    if adapter_only:  # loading it onto other weights would give other answers without a word
        info["base_weights"] = adapter_base
    write_records(out, info, metrics)


def write_records(out: Path, info: dict, metrics: dict) -> None:
    """finetune.json (what the model is and how to load it) and metrics.json."""
    for name, content in (("finetune.json", info), ("metrics.json", metrics)):
        with atomic_output(out / name) as tmp:
            Path(tmp).write_text(json.dumps(content, indent=2) + "\n")


CNN_LR = 1e-3  # SpliceAI's


def train_cnn(data, out, settings: FinetuneSettings | None = None, *, progress=True, **overrides) -> dict:
    """Train the SpliceAI-style CNN baseline on the dense task `data` with the fine-tuning loop, and
    write `out`, a folder `scan` and `scan-eval` take as they take a fine-tuned model."""
    from .bases.cnn import SpliceCNN, save_cnn
    from .bases.job import DenseJob

    s = settings_with(FinetuneSettings, settings, overrides)
    data, out = Path(data), Path(out)
    check_folder(out, s.force, inputs=[data])
    if not is_dense(data):
        what = "not a dense task" if data.is_dir() else "a file, not a task folder" if data.exists() else "no such folder"
        raise UserError(f"{data}: {what} "
                        "(`dnabert2 tasks KIND --dense` builds one)")
    job = DenseJob(data, None)
    context = SpliceCNN(job.classes).context
    if job.task.flank < context:  # measured on the example: site scores moved by 3e-5 (median), 0.006 at most
        log.info("%s: flanks of %d bp, less than the CNN's %d bp of context: bases near a core's ends see less of "
                 "the genome than it reads, in training and in scans, which read the task's flanks (tasks --dense "
                 "--flank %d gives it all)", data, job.task.flank, context, context)
    lr = s.lr or CNN_LR
    metrics, model = train_seeds(lambda: SpliceCNN(job.classes), job, s, lr, progress, {"model": "cnn"},
                                 ADVICE["cnn"])
    with atomic_folder(out, force=s.force, inputs=[data]) as folder:
        save_cnn(model, folder)
        write_records(folder, {"model": "cnn", "head": job.head, "num_labels": job.classes}, metrics)
        copy_task_description(data, folder)
    return metrics


def default_lr(method: str, parameters: int) -> float:
    """LoRA's and full fine-tuning's rates for DNABERT-2-117M (the paper's); a model under LORA_FROM
    parameters, fine-tuned whole, learns only with a larger rate (measured on the bundled example: at
    3e-5 it stays at one class)."""
    if method == "lora":
        return 1e-4
    return 3e-5 if parameters >= LORA_FROM else 5e-4


def check_task_kind(data: Path, classes: int) -> None:
    """A task folder's task.json must describe train.csv's classes: the names it gives them go with the
    model, and a kind of the registry it names places each label's site in a window when scanning."""
    described = read_description(data)
    labels = described.get("labels")
    if labels is not None and len(labels) != classes:
        named = ", ".join(labels[str(i)] for i in range(len(labels)))
        raise UserError(f"{data / 'task.json'}: names {len(labels)} labels ({named}), but train.csv has {classes} "
                        "classes")
    kind = KINDS.get(described.get("task"))
    if kind is not None and len(kind.labels) != classes:
        raise UserError(f"{data / 'task.json'}: a {kind.name} task has {len(kind.labels)} labels ({', '.join(kind.labels)}), "
                        f"but train.csv has {classes} classes")


def task_labels(data: Path, classes: int) -> dict[int, str] | None:
    """The names of labels 0..classes-1 in a task folder's task.json (tasks writes them), if it names them."""
    labels = read_description(data).get("labels")
    return None if labels is None else {i: labels[str(i)] for i in range(classes)}


def copy_task_description(data: Path, out: Path) -> None:
    """Keep the task's own description (labels, window) beside the model, when the task has one."""
    if (data / "task.json").is_file():
        shutil.copyfile(data / "task.json", out / "task.json")


def add_arguments(parser) -> None:
    parser.description = (
        "Fine-tune a model folder (this project's or the released DNABERT-2) on a task folder holding train.csv, "
        "dev.csv and test.csv (sequence,label). Evaluates on dev every epoch, stops early, keeps the epoch with the "
        "best dev MCC, and writes test MCC, macro F1 (over the classes test holds), accuracy, AUROC and AUPRC (mean "
        "and sd over seeds) to OUT/metrics.json. A dense task (tasks --dense) trains a per-base head, picked by dev PR-AUC and scored by "
        "per-base PR-AUC and top-k accuracy (of scores as scans write them, × 1000 rounded: scan-eval's figures). With LoRA, OUT holds the adapter and the head only; `dnabert2.load_model(OUT)` merges "
        "them into the base model.")
    parser.add_argument("--model", required=True, type=model_argument, help="model folder to start from, or a Hugging Face Hub id (owner/name[@revision])")
    parser.add_argument("--data", required=True, type=Path,
                        help="task folder: GUE format, or a dense task (tasks --dense)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_settings(parser, FinetuneSettings)


def run(args) -> None:
    settings = settings_from(args, FinetuneSettings)
    print(result_line(args.out, finetune(args.model, args.data, args.out, settings, progress=progress(args))))


def result_line(out, metrics: dict) -> str:
    test, sd = metrics["test"], metrics["test_sd"]
    shown = [k for k, v in test.items() if isinstance(v, float)]
    return (f"{out}: test " + ", ".join(f"{k} {test[k]:.4f}" + (f" ± {sd[k]:.4f}" if sd[k] is not None else "")
                                        for k in shown)
            + f" over {len(metrics['seeds'])} seed(s)")


def add_cnn_arguments(parser) -> None:
    parser.description = (
        "Train the base-resolution baseline, a dilated residual CNN on one-hot sequence in the SpliceAI-400nt design, "
        "on a dense task (`dnabert2 tasks KIND --dense`) with the loop, early stopping and metrics of `finetune`. "
        "OUT is scanned (`scan`, `variants`, `mutagenesis`, `predict`) and its scans scored (`scan-eval`) as a per-base "
        "model's.")
    parser.add_argument("--data", required=True, type=Path, help="dense task folder")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_settings(parser, FinetuneSettings, only=CNN_OPTIONS, helps={
        "batch_size": f"dense windows per step (default {FinetuneSettings.batch_size})",
        "lr": f"learning rate (default {CNN_LR:g})",
        "patience": f"epochs without a better dev mean PR-AUC before stopping (default {FinetuneSettings.patience})"})


def run_cnn(args) -> None:
    settings = settings_from(args, FinetuneSettings)
    print(result_line(args.out, train_cnn(args.data, args.out, settings, progress=progress(args))))
