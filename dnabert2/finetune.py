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
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .devices import resolve_device
from .errors import UserError
from .model import load_model, save_model
from .optim import schedule
from .outputs import atomic_output
from .tokenizer import load_tokenizer

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
LORA_TARGETS = ("Wqkv", "dense", "gated_layers", "wo")
# LoRA goes into the encoder layers only; "dense" elsewhere is the pooler, trained whole with the head.
LAYER_MODULES = {"Wqkv": "attention.self.Wqkv", "dense": "attention.output.dense", "gated_layers": "mlp.gated_layers",
                 "wo": "mlp.wo"}


def read_split(path: Path) -> tuple[list[str], np.ndarray]:
    """Sequences (upper-case) and integer labels of one GUE CSV, checked."""
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{path}: no such file (a task folder holds train.csv, dev.csv and test.csv)")
    try:
        table = pd.read_csv(path, dtype={"sequence": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a CSV table ({str(error).splitlines()[0]})") from None
    missing = [c for c in ("sequence", "label") if c not in table.columns]
    if missing:
        raise UserError(f"{path}: no {' or '.join(missing)} column (GUE CSVs have sequence,label)")
    if table.empty:
        raise UserError(f"{path}: no rows")
    sequences = table["sequence"].str.upper()
    bad = sequences.str.contains("[^ACGTN]", regex=True)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        found = sorted(set(sequences[row]) - set("ACGTN"))
        raise UserError(f"{path}: line {row + 2}: characters other than ACGTN ({''.join(found)[:10]})")
    labels = pd.to_numeric(table["label"], errors="coerce")
    if labels.isna().any() or (labels != labels.round()).any():
        row = int(np.flatnonzero((labels.isna() | (labels != labels.round())).to_numpy())[0])
        raise UserError(f"{path}: line {row + 2}: label {table['label'][row]!r} is not an integer")
    return sequences.tolist(), labels.to_numpy(dtype=np.int64)


def read_task(folder) -> dict:
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


def encode(tokenizer, sequences: list[str], max_tokens: int) -> list[list[int]]:
    """[CLS] … [SEP] ids, cut to max_tokens."""
    return [[1, *e.ids[: max_tokens - 2], 2] for e in tokenizer.encode_batch(sequences, add_special_tokens=False)]


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


def scores(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """MCC, macro F1, accuracy, AUROC and AUPRC (one-vs-rest macro averages for more than two classes)."""
    from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, matthews_corrcoef,
                                 roc_auc_score)

    predicted = probabilities.argmax(1)
    classes = probabilities.shape[1]
    result = {"mcc": matthews_corrcoef(labels, predicted), "f1": f1_score(labels, predicted, average="macro"),
              "accuracy": accuracy_score(labels, predicted)}
    present = len(set(labels.tolist())) > 1
    if classes == 2:
        result["auroc"] = roc_auc_score(labels, probabilities[:, 1]) if present else float("nan")
        result["auprc"] = average_precision_score(labels, probabilities[:, 1]) if present else float("nan")
    else:
        onehot = np.eye(classes)[labels]
        result["auroc"] = roc_auc_score(onehot, probabilities, average="macro") if present else float("nan")
        result["auprc"] = average_precision_score(onehot, probabilities, average="macro")
    return {k: float(v) for k, v in result.items()}


def with_lora(model, r: int, alpha: int, dropout: float, targets):
    from peft import LoraConfig, get_peft_model

    unknown = sorted(set(targets) - set(LAYER_MODULES))
    if unknown:
        raise UserError(f"LoRA target modules {unknown} do not exist in the model; choose from {', '.join(LAYER_MODULES)}")
    pattern = r"bert\.encoder\.layer\.\d+\.(" + "|".join(LAYER_MODULES[t].replace(".", r"\.") for t in targets) + ")"
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=pattern,
                        modules_to_save=["classifier", "pooler"], bias="none")
    return get_peft_model(model, config)


def train_one(model_dir, task, ids, classes, seed, *, lora, r, alpha, lora_dropout, targets, epochs, batch_size, lr,
              weight_decay, warmup, patience, device, autocast, progress):
    """Train one seed; returns (model at its best dev epoch, dev MCC per epoch, best epoch)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = load_model(model_dir, head="classification", num_labels=classes)
    if lora:
        model = with_lora(model, r, alpha, lora_dropout, targets)
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay, fused=device.type == "cuda")
    labels = task["train"][1]
    steps = epochs * math.ceil(len(labels) / batch_size)
    scheduler = schedule(optimizer, steps, warmup)
    history, best, best_state, waited = [], -2.0, None, 0
    bar = tqdm(total=steps, disable=not progress, desc=f"fine-tuning (seed {seed})", unit="step")
    for epoch in range(1, epochs + 1):
        for batch in packed_batches(ids["train"], labels, batch_size, rng.permutation(len(labels)), device):
            with autocast:
                loss = model(batch["input_ids"], cu_seqlens=batch["cu_seqlens"], max_seqlen=batch["max_seqlen"],
                             labels=batch["labels"]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        dev = scores(task["dev"][1], predict(model, ids["dev"], task["dev"][1], batch_size, device, autocast))
        history.append({"epoch": epoch, **{f"dev_{k}": v for k, v in dev.items()}})
        log.info("seed %d epoch %d: dev MCC %.4f", seed, epoch, dev["mcc"])
        if dev["mcc"] > best:
            best, waited = dev["mcc"], 0
            best_state = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
        else:
            waited += 1
            if waited >= patience:
                break
    bar.close()
    model.load_state_dict(best_state, strict=False)
    return model, history, max(history, key=lambda h: h["dev_mcc"])["epoch"]


def finetune(model_dir, data, out, *, lora=True, r=8, alpha=16, lora_dropout=0.05, targets=LORA_TARGETS, epochs=5,
             batch_size=32, lr=None, weight_decay=0.01, warmup=0.1, max_tokens=None, patience=3, seeds=(0,),
             merge=False, device="auto", dtype=None, progress=True) -> dict:
    """Fine-tune `model_dir` on the task folder `data` and write `out`; returns the metrics."""
    model_dir, data, out = Path(model_dir), Path(data), Path(out)
    device = resolve_device(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=(dtype or ("bf16" if device.type == "cuda" else "fp32")) == "bf16")
    task = read_task(data)
    classes = int(task["train"][1].max()) + 1
    load_model(model_dir, head="classification", num_labels=classes)  # checks the checkpoint before any training
    tokenizer = load_tokenizer(model_dir)
    longest = max(len(s) for split in SPLITS for s in task[split][0])
    max_tokens = max_tokens or max(8, math.ceil(longest / 4))  # DNABERT-2's rule: a quarter of the bp length
    ids = {split: encode(tokenizer, task[split][0], max_tokens) for split in SPLITS}
    lr = lr or (1e-4 if lora else 3e-5)
    runs, best_run = [], None
    for seed in seeds:
        model, history, epoch = train_one(model_dir, task, ids, classes, seed, lora=lora, r=r, alpha=alpha,
                                          lora_dropout=lora_dropout, targets=targets, epochs=epochs,
                                          batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup,
                                          patience=patience, device=device, autocast=autocast, progress=progress)
        test = scores(task["test"][1], predict(model, ids["test"], task["test"][1], batch_size, device, autocast))
        run = {"seed": seed, "best_epoch": epoch, "dev_mcc": max(h["dev_mcc"] for h in history), "test": test,
               "history": history}
        runs.append(run)
        log.info("seed %d: test MCC %.4f (best epoch %d)", seed, test["mcc"], epoch)
        if best_run is None or run["dev_mcc"] > best_run[0]["dev_mcc"]:
            best_run = (run, model)
    names = runs[0]["test"].keys()
    metrics = {
        "task": str(data), "model": str(model_dir), "method": "lora" if lora else "full", "num_labels": classes,
        "max_tokens": max_tokens, "seeds": list(seeds),
        "test": {k: float(np.mean([run["test"][k] for run in runs])) for k in names},
        "test_sd": {k: float(np.std([run["test"][k] for run in runs], ddof=1)) if len(runs) > 1 else 0.0 for k in names},
        "saved_seed": best_run[0]["seed"], "runs": runs,
    }
    _save(best_run[1], model_dir, out, tokenizer, lora and not merge, metrics,
          {"r": r, "alpha": alpha, "dropout": lora_dropout, "targets": list(targets)} if lora else None)
    copy_task_description(data, out)
    return metrics


def _save(model, model_dir, out, tokenizer, adapter_only, metrics, lora_settings):
    out.mkdir(parents=True, exist_ok=True)
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


def load_adapter(folder: Path, head=None, **options):
    """A LoRA fine-tuning folder as a model: its base model with the adapter and head merged in."""
    from peft import PeftModel

    info = json.loads((folder / "finetune.json").read_text())
    base = Path(info["base_model"])
    if not base.is_dir():
        raise UserError(f"{folder}: its base model {base} is not there any more (finetune.json names it)")
    model = load_model(base, head="classification", num_labels=info["num_labels"], device="cpu")
    merged = PeftModel.from_pretrained(model, folder).merge_and_unload()
    if head not in (None, "classification"):
        raise UserError(f"{folder}: a fine-tuned classifier; head {head!r} is not available from it")
    return merged.to(resolve_device(options.get("device", "cpu")), options.get("dtype")).eval()


def copy_task_description(data: Path, out: Path) -> None:
    """Keep the task's own description (labels, window) beside the model, when the task has one."""
    if (data / "task.json").is_file():
        shutil.copyfile(data / "task.json", out / "task.json")
