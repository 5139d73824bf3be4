"""The masked-LM pretraining loop: one process, or one per GPU under torchrun (DDP), the same code.

Each step's global batch (batch_size windows) is split over the ranks; each rank packs its share into
micro-batches of at most max_tokens tokens and accumulates gradients over them. The loss is the mean
over every scored token of the global batch, so the split (ranks, micro-batches) does not change the
update.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..devices import resolve_device
from ..errors import UserError
from ..model import build_model, check_tokenizer, load_model, preset, save_model
from ..optim import schedule
from ..tokenizer import load_tokenizer
from .checkpoints import (check_same_run, checkpoints, load_checkpoint, remove_partial, rng_state, save_checkpoint,
                          set_rng_state)
from .data import EVAL, TRAIN, PretrainSteps, WindowSampler, WindowSpec, eval_batches

log = logging.getLogger(__name__)

# Dense bf16 peak of the GPUs MFU is reported for (TFLOP/s, from the vendors' data sheets; the
# H100 figure is the SXM part's, the PCIe part's is 756).
PEAK_TFLOPS = {"H100 PCIe": 756, "H100": 989, "H200": 989, "A100": 312, "L40S": 362, "A10": 125}


def init_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device) from torchrun's environment; a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    resolved = resolve_device(device)
    if world > 1:
        if resolved.type == "cuda":
            resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(resolved)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    return rank, world, resolved


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sums over ranks (the identity in a single process)."""
    if not dist.is_initialized():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf * 1e12 for key, tf in PEAK_TFLOPS.items() if key in name), None)


def flops_per_token(model, mean_length: float, mask_rate: float = 0.15) -> float:
    """Training FLOPs per token: 6 per encoder weight (forward and backward) outside the embedding
    table, attention's 12 · layers · hidden · sequence length, and the MLM head (transform and the
    tied vocabulary projection), which runs on the scored tokens only."""
    config = model.config
    encoder = sum(p.numel() for n, p in model.named_parameters() if n.startswith("bert.encoder."))
    head = config.hidden_size * (config.hidden_size + config.vocab_size)
    return 6 * encoder + 12 * config.num_hidden_layers * config.hidden_size * mean_length + 6 * head * mask_rate


def optimiser(model, lr, betas, eps, weight_decay, device):
    """AdamW, with no weight decay on biases and LayerNorm weights (as in BERT); fused on a GPU."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=device.type == "cuda")


@torch.no_grad()
def evaluate(model, batches, device, autocast) -> dict:
    """Masked-LM loss, accuracy and perplexity over the held-out batches, per scored token."""
    model.eval()
    loss, correct, scored = 0.0, 0, 0
    for batch in batches:
        labels = batch["labels"].to(device)
        with autocast:
            out = model.forward_packed(batch["input_ids"].to(device), batch["cu_seqlens"].to(device),
                                       batch["max_seqlen"], labels)
        wanted = labels[labels != -100]
        loss += out.loss.item() * len(wanted)
        correct += (out.logits.argmax(-1) == wanted).sum().item()
        scored += len(wanted)
    model.train()
    return {"eval_loss": loss / scored, "eval_accuracy": correct / scored, "eval_perplexity": math.exp(loss / scored)}


def fingerprint(tokenizer) -> str:
    return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()[:16]


def _step_of(line: str) -> int | None:
    """The step of a metrics line, or None for a line cut off by a kill."""
    if not line.endswith("\n"):
        return None
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


class Metrics:
    """metrics.jsonl beside the checkpoints (it survives a failed Snakemake job), copied to the model
    folder at the end; optionally mirrored to TensorBoard."""

    def __init__(self, folder: Path, resume_step: int, tensorboard: bool):
        self.path = folder / "metrics.jsonl"
        # Rows past the checkpoint came from the interrupted run; the resumed run writes them again.
        self.kept = []
        if resume_step and self.path.exists():
            self.kept = [line for line in self.path.read_text().splitlines(keepends=True)
                         if _step_of(line) is not None and _step_of(line) <= resume_step]
        self.started = False
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise UserError("--tensorboard needs the tensorboard package (pip install tensorboard)") from None
            # purge_step drops the points an interrupted run logged past the checkpoint.
            self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=resume_step + 1)

    def write(self, row: dict) -> None:
        if not self.started:  # nothing is written before the first step succeeds
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(self.kept))
            self.started = True
        with open(self.path, "a") as out:
            out.write(json.dumps(row) + "\n")
        if self.writer:
            for key, value in row.items():
                if key != "step":
                    self.writer.add_scalar(key, value, row["step"])


def pretrain(genomes, tokenizer, out, *, model_preset="tiny", init=None, steps=1000, batch_size=256,
             window_tokens=128, window_bp=None, max_tokens=32768, weights=None, max_n=0.05, heldout_contigs=(),
             eval_every=None, eval_windows=256, lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-5,
             warmup=0.06, clip=1.0, mask_rate=0.15, dropout=None, seed=0, checkpoint_every=None,
             checkpoint_dir=None, keep=2, resume=False, device="auto", dtype=None, workers=2, compile=False,
             tensorboard=False, log_every=10, progress=True) -> dict:
    """Pretrain a DNABERT-2 masked-LM and write it to `out` in the Hugging Face layout; returns the
    last metrics row."""
    out = Path(out)
    folder = Path(checkpoint_dir) if checkpoint_dir else out / "checkpoints"
    rank, world, device = init_distributed(device)
    tokenizer_path = tokenizer
    tokenizer = load_tokenizer(tokenizer)
    window = WindowSpec(tokens=window_tokens if window_bp is None else None, bp=window_bp)
    if dropout is not None and not 0 <= dropout < 1:
        raise UserError(f"dropout must be in [0, 1), not {dropout}")

    torch.manual_seed(seed)
    if init:
        model = load_model(init, head="mlm")
        check_tokenizer(tokenizer, model.config, Path(init), source=str(tokenizer_path))
    else:
        model = build_model(preset(model_preset, vocab_size=tokenizer.get_vocab_size()), "mlm")
    if dropout is not None:
        model.config.hidden_dropout_prob = dropout
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = dropout
    model.train()

    for name, value, low, high in (("weight decay", weight_decay, 0, None), ("clip", clip, 0, None),
                                   ("beta1", betas[0], 0, 1), ("beta2", betas[1], 0, 1)):
        if value < low or (high is not None and value >= high):
            raise UserError(f"{name} must be {'in [0, 1)' if high else 'zero or more'}, not {value}")
    genomes = [str(Path(g).resolve()) for g in genomes]
    sampler = WindowSampler(genomes, weights, window.draw_bp, heldout_contigs, TRAIN, max_n)
    data = PretrainSteps(sampler, tokenizer, window, batch_size, max_tokens, seed, rank, world, mask_rate)
    # Every rank checks the held-out contigs, so a bad name stops them all with one message.
    held_sampler = WindowSampler(genomes, weights, window.draw_bp, heldout_contigs, EVAL, max_n) if heldout_contigs else None
    held_out = eval_batches(held_sampler, data, eval_windows) if held_sampler and rank == 0 else []
    # What shapes the run: a resume must find the same (the world size too, as RNG states are per rank).
    settings = {"genomes": genomes, "genome_contigs": [sampler.fingerprint(i) for i in range(len(genomes))],
                "weights": weights, "tokenizer": fingerprint(tokenizer), "model": model.config.to_dict(),
                "init": str(init) if init else None, "window": [window_tokens, window_bp, data.limit],
                "max_n": max_n, "heldout_contigs": sorted(heldout_contigs), "eval_windows": eval_windows,
                "batch_size": batch_size, "world": world, "mask_rate": mask_rate, "steps": steps, "lr": lr,
                "betas": list(betas), "eps": eps, "weight_decay": weight_decay, "warmup": warmup, "clip": clip,
                "seed": seed}
    settings = json.loads(json.dumps(settings))  # as it reads back from a checkpoint

    model.to(device)
    optimizer = optimiser(model, lr, betas, eps, weight_decay, device)
    scheduler = schedule(optimizer, steps, warmup)
    start = 0
    if rank == 0:
        remove_partial(folder)
    found = checkpoints(folder)
    if found and not resume:
        raise UserError(f"{folder} already holds checkpoints; pass --resume to continue that run, or remove them")
    if found:
        state = load_checkpoint(found[-1])
        check_same_run(state["settings"], settings, found[-1])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"][rank])
        start = state["step"]
        log.info("resuming from %s (step %d of %d)", found[-1], start, steps)
    else:
        torch.manual_seed(seed + rank)  # dropout differs between ranks, as it would between micro-batches
    if rank == 0:
        metrics = Metrics(folder, start, tensorboard)

    net = torch.compile(model, dynamic=True) if compile else model
    if world > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=(dtype or (
        "bf16" if device.type == "cuda" else "fp32")) == "bf16")
    # The loader gets its own generator: seeding workers from the global one would shift the dropout
    # draws of a resumed run against an uninterrupted one.
    loader = torch.utils.data.DataLoader(data, batch_size=None, sampler=range(start + 1, steps + 1), num_workers=workers,
                                         pin_memory=device.type == "cuda", prefetch_factor=4 if workers else None,
                                         generator=torch.Generator().manual_seed(seed))
    peak = peak_flops(device)
    bar = tqdm(total=steps, initial=start, unit="step", disable=not progress or rank != 0, desc="pretraining")
    window_started, window_tokens_seen, row = time.perf_counter(), 0, {}
    for step, micro_batches in zip(range(start + 1, steps + 1), _batches(loader)):
        scored = [int((b["labels"] != -100).sum()) for b in micro_batches]
        total_scored, = all_sum([float(sum(scored))], device)
        lr_used = optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=device)  # on the device: no sync per micro-batch
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or world == 1 else net.no_sync()
            with sync, autocast:
                output = net(batch["input_ids"].to(device, non_blocking=True), labels=batch["labels"].to(device),
                             cu_seqlens=batch["cu_seqlens"].to(device), max_seqlen=batch["max_seqlen"])
                # DDP averages gradients over ranks; scaling by world / (scored tokens of the whole
                # step) makes the update the gradient of the mean loss over every scored token.
                (output.loss * scored[i] * world / total_scored).backward()
            loss_sum += output.loss.detach() * scored[i]
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item() if clip else None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        tokens = sum(len(b["input_ids"]) for b in micro_batches)
        loss, tokens = all_sum([loss_sum.item(), float(tokens)], device)
        window_tokens_seen += tokens
        bar.update(1)
        save_now = (checkpoint_every and step % checkpoint_every == 0) or step == steps
        rng_states = _gather_rng_states(world) if save_now else None
        if rank != 0:
            continue
        row = {"step": step, "loss": loss / total_scored, "lr": lr_used}
        if grad_norm is not None:
            row["grad_norm"] = grad_norm
        if step % log_every == 0 or step == steps:
            elapsed = time.perf_counter() - window_started
            row["tokens_per_s"] = window_tokens_seen / elapsed
            if peak:
                # tokens/s counts every rank's tokens, so the peak is every rank's GPU.
                row["mfu"] = row["tokens_per_s"] * flops_per_token(model, tokens / batch_size, mask_rate) / (peak * world)
            window_started, window_tokens_seen = time.perf_counter(), 0
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,.0f}")
            if not progress:  # a log file (Snakemake, SLURM) gets a line instead of a bar
                log.info("step %d/%d: loss %.4f, lr %.3g, %.0f tokens/s", step, steps, row["loss"], row["lr"],
                         row["tokens_per_s"])
        if held_out and ((eval_every and step % eval_every == 0) or step == steps):
            row.update(evaluate(model, held_out, device, autocast))
        metrics.write(row)
        if save_now:
            save_checkpoint(folder, step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                           "scheduler": scheduler.state_dict(), "rng": rng_states,
                                           "settings": settings}, keep)
    bar.close()
    if world > 1:
        dist.barrier()
    if rank == 0:
        save_model(model, out, tokenizer)
        if metrics.path.exists():
            shutil.copyfile(metrics.path, out / "metrics.jsonl")
    if world > 1:
        dist.destroy_process_group()
    return row


def _batches(loader):
    """The loader's items; a UserError raised in a worker comes back as its own one-line message
    (the DataLoader wraps it with the worker's traceback)."""
    try:
        yield from loader
    except UserError as error:
        raise UserError(str(error).strip().splitlines()[-1].split("UserError: ", 1)[-1]) from None


def _gather_rng_states(world: int) -> list[dict]:
    """Every rank's RNG states, indexed by rank (dropout draws differ between ranks)."""
    if world == 1:
        return [rng_state()]
    states = [None] * world
    dist.all_gather_object(states, rng_state())
    return states
