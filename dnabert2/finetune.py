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

from .devices import autocast, resolve_device, resolve_precision
from .errors import UserError
from .model import load_model, save_model
from .model.adapters import with_lora
from .optim import schedule
from .options import add_settings, progress, settings_from, settings_with
from .outputs import atomic_folder, atomic_output, check_folder
from .settings import LORA_FROM, FinetuneSettings
from .tasks.gue import SPLITS, read_task, scores
from .tasks.registry import KINDS
from .tokenizer import encode, load_tokenizer, token_limit

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 30
# A model that predicts one class for every dev sequence has learned nothing, whatever its metrics say.
COLLAPSED = "the selected model predicts one class for every dev sequence: it has learned nothing"
ADVICE = ("try --full (LoRA has little to adapt in a small model), a higher --lr, more --epochs, or a larger "
          "pretrained model; the k-mer baseline (dnabert2 evaluate) shows what the data allows")




def packed_batches(ids: list[list[int]], labels: np.ndarray, batch_size: int, order, device):
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        lengths = [len(ids[i]) for i in chosen]
        yield {"input_ids": torch.tensor([t for i in chosen for t in ids[i]], device=device),
               "cu_seqlens": torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int32, device=device),
               "max_seqlen": max(lengths), "labels": torch.as_tensor(labels[chosen], device=device)}


@torch.no_grad()
def predict(model, ids, labels, batch_size, device, autocast) -> np.ndarray:
    """Class probabilities (n, K)."""
    model.eval()
    probabilities = []
    for batch in packed_batches(ids, labels, batch_size, np.arange(len(ids)), device):
        with autocast:
            logits = model(batch["input_ids"], cu_seqlens=batch["cu_seqlens"], max_seqlen=batch["max_seqlen"]).logits
        probabilities.append(logits.float().softmax(-1).cpu().numpy())
    model.train()
    return np.concatenate(probabilities)


def train_one(model_dir, task, ids, classes, seed, s: FinetuneSettings, lr, device, precision, progress):
    """Train one seed; returns (model at its best dev epoch, dev MCC per epoch, best epoch)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = load_model(model_dir, head="classification", num_labels=classes)
    if s.method == "lora":
        model = with_lora(model, s.lora_r, s.lora_alpha, s.lora_dropout, s.target_modules)
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=s.weight_decay, fused=device.type == "cuda")
    labels = task["train"][1]
    steps = s.epochs * math.ceil(len(labels) / s.batch_size)
    scheduler = schedule(optimizer, steps, s.warmup)
    mixed = autocast(device, precision)
    history, best, best_state, waited = [], -2.0, None, 0
    bar = tqdm(total=steps, disable=not progress, desc=f"fine-tuning (seed {seed})", unit="step")
    heard, done = time.monotonic(), 0
    for epoch in range(1, s.epochs + 1):
        for batch in packed_batches(ids["train"], labels, s.batch_size, rng.permutation(len(labels)), device):
            with mixed:
                loss = model(batch["input_ids"], cu_seqlens=batch["cu_seqlens"], max_seqlen=batch["max_seqlen"],
                             labels=batch["labels"]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            done += 1
            if not progress and time.monotonic() - heard > LOG_EVERY_SECONDS:  # a log file gets a line instead
                heard = time.monotonic()
                log.info("seed %d epoch %d: step %d of %d, loss %.4f", seed, epoch, done, steps, loss.item())
        probabilities = predict(model, ids["dev"], task["dev"][1], s.batch_size, device, mixed)
        dev = scores(task["dev"][1], probabilities)
        history.append({"epoch": epoch, **{f"dev_{k}": v for k, v in dev.items()},
                        "dev_classes_predicted": len(np.unique(probabilities.argmax(1)))})
        log.info("seed %d epoch %d: dev MCC %.4f", seed, epoch, dev["mcc"])
        if dev["mcc"] > best:
            best, waited = dev["mcc"], 0
            best_state = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
        else:
            waited += 1
            if waited >= s.patience:
                break
    bar.close()
    model.load_state_dict(best_state, strict=False)
    return model, history, max(history, key=lambda h: h["dev_mcc"])["epoch"]


def finetune(model_dir, data, out, settings: FinetuneSettings | None = None, *, progress=True, **overrides) -> dict:
    """Fine-tune `model_dir` on the task folder `data` and write `out`; returns the metrics.
    Settings: a FinetuneSettings, or its fields as keywords."""
    s = settings_with(FinetuneSettings, settings, overrides)
    model_dir, data, out = Path(model_dir), Path(data), Path(out)
    check_folder(out, s.force, inputs=[model_dir, data])
    device = resolve_device(s.device)
    precision = resolve_precision(s.dtype, device)
    task = read_task(data)
    classes = int(task["train"][1].max()) + 1
    check_task_kind(data, classes)
    # Loaded once before any training: it checks the checkpoint, and its size picks the defaults.
    parameters = sum(p.numel() for p in load_model(model_dir, head="classification", num_labels=classes).parameters())
    s = replace(s, method=s.method if s.method != "auto" else "lora" if parameters >= LORA_FROM else "full")
    lr = s.lr or default_lr(s.method, parameters)
    log.info("fine-tuning %s (%.1f M parameters): %s, learning rate %g", model_dir, parameters / 1e6, s.method, lr)
    tokenizer = load_tokenizer(model_dir)
    max_tokens = s.max_tokens or token_limit(max(len(q) for split in SPLITS for q in task[split][0]))
    ids = {split: encode(tokenizer, task[split][0], max_tokens) for split in SPLITS}
    runs, best_run = [], None
    for seed in s.seeds:
        model, history, epoch = train_one(model_dir, task, ids, classes, seed, s, lr, device, precision, progress)
        test = scores(task["test"][1], predict(model, ids["test"], task["test"][1], s.batch_size, device,
                                               autocast(device, precision)))
        chosen = next(h for h in history if h["epoch"] == epoch)
        run = {"seed": seed, "best_epoch": epoch, "dev_mcc": chosen["dev_mcc"], "test": test,
               "collapsed": chosen["dev_classes_predicted"] == 1, "history": history}
        runs.append(run)
        log.info("seed %d: test MCC %.4f (best epoch %d)", seed, test["mcc"], epoch)
        if best_run is None or run["dev_mcc"] > best_run[0]["dev_mcc"]:
            best_run = (run, model)
    names = runs[0]["test"].keys()
    collapsed = best_run[0]["collapsed"]
    if collapsed:
        log.warning(COLLAPSED + "; " + ADVICE)
    metrics = {
        "task": str(data), "model": str(model_dir), "method": s.method, "num_labels": classes,
        "max_tokens": max_tokens, "seeds": list(s.seeds),
        "test": {k: float(np.mean([run["test"][k] for run in runs])) for k in names},
        "test_sd": {k: float(np.std([run["test"][k] for run in runs], ddof=1)) if len(runs) > 1 else 0.0
                    for k in names},
        "saved_seed": best_run[0]["seed"], "collapsed": collapsed, "runs": runs,
        **({"warning": f"{COLLAPSED}; {ADVICE}"} if collapsed else {}),
    }
    lora = s.method == "lora"
    with atomic_folder(out, force=s.force, inputs=[model_dir, data]) as folder:
        _save(best_run[1], model_dir, folder, tokenizer, lora and not s.merge, metrics,
              {"r": s.lora_r, "alpha": s.lora_alpha, "dropout": s.lora_dropout, "targets": list(s.target_modules)}
              if lora else None)
        copy_task_description(data, folder)
    return metrics


def _save(model, model_dir, out, tokenizer, adapter_only, metrics, lora_settings):
    if adapter_only:
        model.save_pretrained(out)  # adapter_model.safetensors + adapter_config.json: LoRA weights and the head
        with atomic_output(out / "tokenizer.json") as tmp:
            tokenizer.save(str(tmp))
    else:
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        save_model(model, out, tokenizer)
    info = {"base_model": str(model_dir.resolve()), "num_labels": metrics["num_labels"],
            "max_tokens": metrics["max_tokens"], "adapter": adapter_only, "lora": lora_settings}
    for name, content in (("finetune.json", info), ("metrics.json", metrics)):
        with atomic_output(out / name) as tmp:
            Path(tmp).write_text(json.dumps(content, indent=2) + "\n")


def default_lr(method: str, parameters: int) -> float:
    """LoRA's and full fine-tuning's rates for DNABERT-2-117M (the paper's); a model under LORA_FROM
    parameters, fine-tuned whole, learns only with a larger rate (measured on the bundled example: at
    3e-5 it stays at one class)."""
    if method == "lora":
        return 1e-4
    return 3e-5 if parameters >= LORA_FROM else 5e-4


def check_task_kind(data: Path, classes: int) -> None:
    """A task folder whose task.json names a kind of the registry must have that kind's labels:
    scanning reads the kind to place each label's site in a window."""
    described = data / "task.json"
    try:
        kind = KINDS.get(json.loads(described.read_text()).get("task")) if described.is_file() else None
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        raise UserError(f"{described}: not a task description (JSON with a \"task\" key)") from None
    if kind is not None and len(kind.labels) != classes:
        raise UserError(f"{described}: a {kind.name} task has {len(kind.labels)} labels ({', '.join(kind.labels)}), "
                        f"but train.csv has {classes} classes")


def copy_task_description(data: Path, out: Path) -> None:
    """Keep the task's own description (labels, window) beside the model, when the task has one."""
    if (data / "task.json").is_file():
        shutil.copyfile(data / "task.json", out / "task.json")


def add_arguments(parser) -> None:
    parser.description = (
        "Fine-tune a model folder (this project's or the released DNABERT-2) on a task folder holding train.csv, "
        "dev.csv and test.csv (sequence,label). Evaluates on dev every epoch, stops early, keeps the epoch with the "
        "best dev MCC, and writes test MCC, macro F1, accuracy, AUROC and AUPRC (mean and sd over seeds) to "
        "OUT/metrics.json. With LoRA, OUT holds the adapter and the head only; `dnabert2.load_model(OUT)` merges "
        "them into the base model.")
    parser.add_argument("--model", required=True, type=Path, help="model folder to start from")
    parser.add_argument("--data", required=True, type=Path, help="task folder (GUE format)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_settings(parser, FinetuneSettings)


def run(args) -> None:
    settings = settings_from(args, FinetuneSettings)
    metrics = finetune(args.model, args.data, args.out, settings, progress=progress(args))
    test, sd = metrics["test"], metrics["test_sd"]
    print(f"{args.out}: test " + ", ".join(f"{k} {test[k]:.4f} ± {sd[k]:.4f}" for k in test)
          + f" over {len(settings.seeds)} seed(s)")
