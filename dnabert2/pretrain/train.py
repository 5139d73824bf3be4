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

from ..devices import autocast, compiled, data_workers, resolve_device, resolve_precision, watched
from ..errors import UserError, first_names
from ..hub import model_path
from ..model import SAVED_FILES, build_model, check_tokenizer, load_model, preset, save_model
from ..model.checkpoint import base_weights, sha256_of
from ..optim import schedule
from ..options import add_settings, model_argument, progress, settings_from, settings_with
from ..outputs import atomic_folder, check_folder, check_writable
from ..sequences import check_distinct
from ..settings import PretrainSettings, window_over_batch
from ..tokenizer import load_tokenizer
from .checkpoints import (DamagedCheckpoint, check_same_run, checkpoints, load_checkpoint, remove_partial, rng_state,
                          save_checkpoint, set_rng_state)
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


GLOO_PEER_LOST = ("closed by peer", "reset by peer", "Broken pipe")


def peer_lost(error: RuntimeError) -> bool:
    """A collective that failed because another rank left it (stopped by its own error, or killed):
    NCCL's errors are DistErrors, gloo's plain RuntimeErrors that say so: closed or reset by the peer,
    as the survivor was reading or writing when it went."""
    return isinstance(error, dist.DistError) or any(words in str(error) for words in GLOO_PEER_LOST)


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """Sums over ranks (the identity in a single process), on the device: no wait for the host."""
    if dist.is_initialized():
        dist.all_reduce(values)
    return values


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
            out = model.forward_packed(batch["input_ids"].to(device), batch["cu_seqlens"], batch["max_seqlen"], labels)
        wanted = labels[labels != -100]
        loss += out.loss.item() * len(wanted)
        correct += (out.logits.argmax(-1) == wanted).sum().item()
        scored += len(wanted)
    model.train()
    return {"eval_loss": loss / scored, "eval_accuracy": correct / scored, "eval_perplexity": math.exp(loss / scored)}


def fingerprint(tokenizer) -> str:
    return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()[:16]


def rules_fingerprint(tokenizer) -> str:
    """The BPE merges in their order, beyond the vocabulary: a vocab learnt again can hold the same
    tokens with its merges in another order, and cut every window differently. As pairs, whatever
    form the tokenizers release writes them in ("A T" or ["A", "T"]), so that an upgrade between a
    stopped run and its resume is not taken for another tokenizer (and its checkpoints removed)."""
    merges = json.loads(tokenizer.to_str())["model"].get("merges") or []
    pairs = [merge.split(" ", 1) if isinstance(merge, str) else list(merge) for merge in merges]
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]


def _step_of(line: str) -> int | None:
    """The step of a metrics line, or None for a line cut off by a kill."""
    if not line.endswith("\n"):
        return None
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def summary_writer():
    """TensorBoard's SummaryWriter, or a UserError where tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package (pip install tensorboard)") from None
    return SummaryWriter


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
            # purge_step drops the points an interrupted run logged past the checkpoint.
            self.writer = summary_writer()(str(folder / "tensorboard"), purge_step=resume_step + 1)

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


def checkpoints_inside(folder: Path, out: Path) -> tuple[str, ...]:
    """The entry of the output folder holding the checkpoints, if they are inside it: they are this
    run's state, not an earlier run's output, and the finished model folder carries them over."""
    folder, out = folder.resolve(), out.resolve()
    if folder == out:
        raise UserError(f"{folder}: the checkpoint folder cannot be the output folder itself")
    return (folder.relative_to(out).parts[0],) if out in folder.parents else ()


def comparable(settings: dict) -> dict:
    """A run's recorded settings as a resume compares them: the model's type is a name for the files
    (it changed from bert to dnabert2), not a setting of the run; and the genomes and the --init model
    are known by their contents (genome_contigs, genome_sha256, init_sha256), not by their paths, which
    change when data moves to another node; nor is --batch-tokens, a memory bound a requeue onto
    another GPU may need to change, nor --eval-windows, which draws no training window (resume_from
    warns of both); with --window-bp, --window-tokens is unused, and the token limit (--batch-tokens)
    counts only where it cuts windows. The model's fields are compared one by one, so a refusal
    names the field that changed."""
    skipped = ("genomes", "model", "init", "batch_tokens", "eval_windows")
    compared = {**{k: v for k, v in settings.items() if k not in skipped},
                **{f"model.{k}": v for k, v in settings.get("model", {}).items() if k != "model_type"}}
    _, bp, limit = settings.get("window") or (None, None, None)
    if bp is not None:  # a window of bp bases holds at most bp tokens besides [CLS] and [SEP]
        compared["window"] = [None, bp, limit if limit < bp + 2 else None]
    return compared


def check_settings(s: PretrainSettings) -> None:
    """Settings the option types cannot check alone."""
    if problem := window_over_batch(s.window_tokens, s.window_bp, s.batch_tokens):
        raise UserError(problem)
    if s.mask_rate == 0:
        raise UserError("--mask-rate 0 masks no token: there would be nothing to learn")
    if s.eval_every and not s.heldout_contigs:
        raise UserError(f"--eval-every {s.eval_every}: evaluations run on --heldout-contigs; name some")
    if s.dropout is not None and not 0 <= s.dropout < 1:
        raise UserError(f"dropout must be in [0, 1), not {s.dropout}")
    for name, value, low, high in (("weight decay", s.weight_decay, 0, None), ("clip", s.clip, 0, None),
                                   ("beta1", s.adam_betas[0], 0, 1), ("beta2", s.adam_betas[1], 0, 1)):
        if not math.isfinite(value) or value < low or (high is not None and value >= high):
            raise UserError(f"{name} must be {'in [0, 1)' if high else 'zero or more'}, not {value}")
    if s.tensorboard:  # now, not when the first metrics are written (after --force removed checkpoints)
        summary_writer()


def initial_model(s: PretrainSettings, tokenizer_path):
    """The masked LM to start from, a preset initialised afresh or a model folder (--init), and the
    tokenizer it reads."""
    torch.manual_seed(s.seed)
    # --init is read first: a folder of another architecture (the CNN) is named so, not by its lack of a tokenizer
    model = load_model(s.init, head="mlm") if s.init else None
    tokenizer = load_tokenizer(tokenizer_path)
    if model is not None:
        check_tokenizer(tokenizer, model.config, model_path(s.init), source=str(tokenizer_path))
    else:
        model = build_model(preset(s.preset, vocab_size=tokenizer.get_vocab_size()), "mlm")
    if s.dropout is not None:
        model.config.hidden_dropout_prob = s.dropout
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = s.dropout
    return model.train(), tokenizer


def training_data(s: PretrainSettings, window: WindowSpec, genomes: list[str], tokenizer, rank: int, world: int):
    """The steps' packed batches, the held-out batches (for rank 0; others get none) and the run's settings as a
    checkpoint records them (a resume must find the same, the world size too: RNG states are per rank)."""
    sampler = WindowSampler(genomes, s.weights, window.draw_bp, s.heldout_contigs, TRAIN, s.max_n)
    # A genome mostly N is told now, not at step 1: after --force has removed an earlier run's checkpoints.
    sampler.check_windows(s.seed)
    init_sha256 = base_weights(model_path(s.init))["sha256"] if s.init else None
    data = PretrainSteps(sampler, tokenizer, window, s.batch_size, s.batch_tokens, s.seed, rank, world, s.mask_rate,
                         salt=(int(init_sha256[:16], 16),) if s.init else ())
    # Every rank checks the held-out contigs, so a bad name stops them all with one message.
    held = WindowSampler(genomes, s.weights, window.draw_bp, s.heldout_contigs, EVAL, s.max_n) \
        if s.heldout_contigs else None
    # Built on every rank, used on rank 0: held-out contigs mostly N stop every rank with one message
    # (rank 0 alone stopped, and the others in a traceback of the collective it left).
    held_out = eval_batches(held, data, s.eval_windows) if held else []
    if rank == 0:  # a fragmented assembly can leave much of itself out
        for what, drawn in (("training", sampler), ("evaluation", held)):
            for path, short, lengths in zip(genomes, drawn.short, drawn.lengths) if drawn else ():
                if short:
                    log.warning("%s: %d contig(s) shorter than a window (%d bp) give no %s windows: %s (%.2g%% of "
                                "the genome's bases)", path, len(short), window.draw_bp, what, first_names(list(short)),
                                100 * sum(short.values()) / sum(lengths.values()))
    recorded = {"genomes": genomes, "genome_contigs": [sampler.fingerprint(i) for i in range(len(genomes))],
                # The files' bytes: a genome masked otherwise (Ensembl's dna_sm for dna_rm) keeps its contigs.
                "genome_sha256": [sha256_of(Path(g)) for g in genomes],
                "weights": s.weights, "tokenizer": fingerprint(tokenizer),
                # Beside the vocabulary's, so that checkpoints written before it was recorded still resume.
                "tokenizer_rules": rules_fingerprint(tokenizer),
                "init": str(s.init) if s.init else None,
                "init_sha256": init_sha256,
                # A checkpoint without it, of an --init run, drew the model's own training windows again.
                **({"init_windows": "own"} if s.init else {}),
                "window": [s.window_tokens, s.window_bp, data.limit],
                "max_n": s.max_n, "heldout_contigs": sorted(s.heldout_contigs), "eval_windows": s.eval_windows,
                "batch_size": s.batch_size, "batch_tokens": s.batch_tokens, "world": world, "mask_rate": s.mask_rate,
                "steps": s.steps, "lr": s.lr, "betas": list(s.adam_betas), "eps": s.adam_eps,
                "weight_decay": s.weight_decay,
                "warmup": s.warmup, "clip": s.clip, "seed": s.seed}
    return data, held_out if rank == 0 else [], recorded


def resume_from(folder: Path, s: PretrainSettings, recorded: dict, model, optimizer, scheduler, rank: int,
                world: int) -> int:
    """The step to start after: that of the latest checkpoint, restored, or 0 for a new run. With
    --force as well as --resume (as the workflow runs it), checkpoints of other settings, or none
    whole, are removed and the run starts afresh. Rank 0 chooses, and every rank follows: ranks that
    chose apart would train apart, or wait for one another forever."""
    state, chosen = None, [None, None]  # the checkpoint to resume from, or why none serves
    if rank == 0:
        remove_partial(folder)
        found = checkpoints(folder)
        state, path, unusable = _latest_of_run(found, recorded)
        chosen = [path, None if unusable is None else str(unusable)]
    if world > 1:
        dist.broadcast_object_list(chosen, src=0)
    path, unusable = chosen
    if path is not None and state is None:  # another rank
        state = load_checkpoint(path)
    if unusable is not None:
        if not s.force:
            raise UserError(f"{unusable}; --force starts afresh, removing the checkpoints in {folder}")
        if rank == 0:
            log.warning("%s: --force, so starting afresh, its checkpoints removed", unusable)
            for old in found:
                old.unlink()
    if state is None:
        torch.manual_seed(s.seed + rank)  # dropout differs between ranks, as it would between micro-batches
        return 0
    for option, now, after in (("batch_tokens", s.batch_tokens, "the run goes on, but not bit for bit as it would "
                                "have (dropout draws its masks per forward pass)"),
                               ("eval_windows", s.eval_windows, "evaluations from here on are over another "
                                "held-out set (training is as it would have been)")):
        before = state["settings"].get(option, now)
        if before != now and rank == 0:
            log.warning("--%s %d is not the checkpoint's %d: %s", option.replace("_", "-"), now, before, after)
    if "init_windows" in recorded and "init_windows" not in state["settings"] and rank == 0:
        log.warning("%s was written before a run continued with --init drew training windows of its own (it drew "
                    "the model's again): from here on it draws its own, so not bit for bit as it would have", path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"][rank])
    if rank == 0:
        log.info("resuming from %s (step %d of %d)", path, state["step"], s.steps)
    return state["step"]


def _latest_of_run(found: list[Path], recorded: dict) -> tuple[dict | None, Path | None, UserError | None]:
    """The latest checkpoint that reads whole (a damaged one falls back to the one before it), its
    path, or none and why: none whole, or the latest whole one of other settings."""
    unusable = None
    for path in reversed(found):
        try:
            state = load_checkpoint(path)
        except DamagedCheckpoint as error:
            unusable = error
            if path != found[0]:
                log.warning("%s; trying the one before it", error)
            continue
        try:
            check_same_run(comparable(state["settings"]), comparable(recorded), path)
        except UserError as error:
            return None, None, error
        return state, path, None
    return None, None, unusable


def pretrain(genomes, tokenizer, out, settings: PretrainSettings | None = None, *, progress=True, **overrides) -> dict:
    """Pretrain a DNABERT-2 masked-LM and write it to `out` in the Hugging Face layout; returns the
    last metrics row. Settings: a PretrainSettings, or its fields as keywords."""
    s = settings_with(PretrainSettings, settings, overrides)
    out = Path(out)
    check_settings(s)
    check_distinct(genomes)
    folder = Path(s.checkpoint_dir) if s.checkpoint_dir else out / "checkpoints"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: a file, not a folder for checkpoints")
    carry = checkpoints_inside(folder, out)
    earlier = checkpoints(folder)
    if earlier and not s.resume and not s.force:
        raise UserError(f"{folder} already holds checkpoints; pass --resume to continue that run, or --force to "
                        "start afresh (their checkpoints removed)")
    if s.resume and not earlier:
        log.info("--resume: no checkpoint in %s; starting a new run", folder)
    # A resumed run's --out may hold the model a run writes (it is written again), and nothing else.
    written = (*SAVED_FILES, "metrics.jsonl")
    check_folder(out, s.force, carry + written * bool(s.resume and earlier), inputs=[*genomes, tokenizer, s.init])
    check_writable(folder / "metrics.jsonl")  # written at step 1, after the genome is tokenised
    rank, world, device = init_distributed(s.device)
    window = WindowSpec(tokens=s.window_tokens if s.window_bp is None else None, bp=s.window_bp)
    model, tokenizer = initial_model(s, tokenizer)
    genomes = [str(Path(g).resolve()) for g in genomes]
    data, held_out, recorded = training_data(s, window, genomes, tokenizer, rank, world)
    # The precision is recorded too: a run started in fp32 does not go on in bf16 without a word.
    recorded = json.loads(json.dumps({**recorded, "model": model.config.to_dict(),
                                      "precision": resolve_precision(s.dtype, device)}))  # as it reads back
    model.to(device)
    optimizer = optimiser(model, s.lr, tuple(s.adam_betas), s.adam_eps, s.weight_decay, device)
    scheduler = schedule(optimizer, s.steps, s.warmup)
    if earlier and not s.resume:  # --force, once everything else has been checked
        if rank == 0:
            log.warning("--force: removing %d checkpoints of an earlier run from %s", len(earlier), folder)
            for path in earlier:
                path.unlink()
        if world > 1:
            dist.barrier()
    start = resume_from(folder, s, recorded, model, optimizer, scheduler, rank, world)
    loop = TrainingLoop(s, model, optimizer, scheduler, device, rank, world, recorded)
    metrics = Metrics(folder, start, s.tensorboard) if rank == 0 else None
    row = loop.run(data, held_out, start, metrics, folder, progress)
    if world > 1:
        dist.barrier()
    if rank == 0:
        with atomic_folder(out, force=True, carry=carry) as written:
            save_model(model, written, tokenizer)
            if metrics.path.exists():
                shutil.copyfile(metrics.path, written / "metrics.jsonl")
    if world > 1:
        dist.destroy_process_group()
    return row


class TrainingLoop:
    """The optimiser steps of one rank: micro-batches with gradient accumulation, the metrics row of
    each step (rank 0), evaluations and checkpoints."""

    def __init__(self, s: PretrainSettings, model, optimizer, scheduler, device, rank: int, world: int,
                 recorded: dict):
        self.s, self.model, self.optimizer, self.scheduler = s, model, optimizer, scheduler
        self.device, self.rank, self.world, self.recorded = device, rank, world, recorded
        net = compiled(model, s.compile)
        if world > 1:
            # No device_ids: DDP would copy every input to the GPU, where the packing check and the
            # scored positions would make the host wait; the model copies what it needs itself.
            net = DistributedDataParallel(net)
        self.net = net
        self.autocast = autocast(device, resolve_precision(s.dtype, device))
        self.peak = peak_flops(device)

    def run(self, data, held_out, start: int, metrics, folder: Path, progress: bool) -> dict:
        s = self.s
        # The loader gets its own generator: seeding workers from the global one would shift the dropout
        # draws of a resumed run against an uninterrupted one.
        workers = data_workers(s.workers)
        loader = torch.utils.data.DataLoader(data, batch_size=None, sampler=range(start + 1, s.steps + 1),
                                             num_workers=workers, pin_memory=self.device.type == "cuda",
                                             prefetch_factor=4 if workers else None,
                                             generator=torch.Generator().manual_seed(s.seed))
        bar = tqdm(total=s.steps, initial=start, unit="step", disable=not progress or self.rank != 0,
                   desc="pretraining")
        self.window_started, self.window_tokens, row = time.perf_counter(), 0, {}
        for step, micro_batches in zip(range(start + 1, s.steps + 1), _batches(loader)):
            loss, total_scored, tokens, grad_norm, lr_used = self.step(micro_batches)
            if not math.isfinite(loss):  # every rank reads the same sum, so all stop together
                if step == 1:  # computed before any update: the lr is not to blame (a resumed run's may be)
                    raise UserError(f"step 1: the loss is {loss} before any update: the weights of --init are not "
                                    "finite numbers; are they intact?")
                raise UserError(f"step {step}: the loss is {loss}: training diverged; lower --lr (or keep --clip "
                                f"on); the checkpoints before it are in {folder}")
            bar.update(1)
            save_now = (s.checkpoint_every and step % s.checkpoint_every == 0) or step == s.steps
            rng_states = _gather_rng_states(self.world) if save_now else None
            if self.rank != 0:
                continue
            row = {"step": step, "loss": loss / total_scored, "lr": lr_used}
            if grad_norm is not None:
                row["grad_norm"] = grad_norm
            self.throughput(row, step, tokens, bar, progress)
            aside = time.perf_counter()
            if held_out and ((s.eval_every and step % s.eval_every == 0) or step == s.steps):
                row.update(evaluate(self.model, held_out, self.device, self.autocast))
            metrics.write(row)
            if save_now:
                save_checkpoint(folder, step, {"model": self.model.state_dict(),
                                               "optimizer": self.optimizer.state_dict(),
                                               "scheduler": self.scheduler.state_dict(), "rng": rng_states,
                                               "settings": self.recorded}, s.keep)
            self.window_started += time.perf_counter() - aside  # tokens/s is of training alone
        bar.close()
        return row

    def step(self, micro_batches: list[dict]):
        """One optimiser step over this rank's micro-batches; returns the summed loss, scored tokens
        and tokens over every rank, the gradient norm and the learning rate used."""
        # One wait for the GPU per step, at its end: the batches stay on the CPU (pinned) for the model
        # to copy without blocking, and every figure is summed and read on the device at once.
        device, world = self.device, self.world
        scored = [int((b["labels"] != -100).sum()) for b in micro_batches]  # CPU tensors: no sync
        tokens = sum(len(b["input_ids"]) for b in micro_batches)
        # (scored, tokens) summed over ranks before the backward passes: the scored total scales them
        counts = all_sum(torch.tensor([sum(scored), tokens], dtype=torch.float64, device=device))
        loss_sum = torch.zeros(1, dtype=torch.float64, device=device)
        lr_used = self.optimizer.param_groups[0]["lr"]
        for i, batch in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or world == 1 else self.net.no_sync()
            with sync, self.autocast:
                output = self.net(batch["input_ids"].to(device, non_blocking=True), labels=batch["labels"],
                                  cu_seqlens=batch["cu_seqlens"], max_seqlen=batch["max_seqlen"])
                # DDP averages gradients over ranks; scaling by world / (scored tokens of the whole
                # step) makes the update the gradient of the mean loss over every scored token.
                (output.loss * (scored[i] * world / counts[0]).float()).backward()
            loss_sum += output.loss.detach().double() * scored[i]
        clip = self.s.clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip) if clip else None
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        read = torch.cat([all_sum(loss_sum), counts, *([grad_norm.double()[None]] if clip else [])]).tolist()
        return read[0], read[1], read[2], (read[3] if clip else None), lr_used

    def throughput(self, row: dict, step: int, tokens: float, bar, progress: bool) -> None:
        """Tokens/s (and MFU on a known GPU) over the steps since the last figure, every log_every steps."""
        s = self.s
        self.window_tokens += tokens
        if step % s.log_every and step != s.steps:
            return
        row["tokens_per_s"] = self.window_tokens / (time.perf_counter() - self.window_started)
        if self.peak:
            # tokens/s counts every rank's tokens, so the peak is every rank's GPU.
            row["mfu"] = row["tokens_per_s"] * flops_per_token(self.model, tokens / s.batch_size, s.mask_rate) \
                / (self.peak * self.world)
        self.window_started, self.window_tokens = time.perf_counter(), 0
        bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:,.0f}")
        if not progress:  # a log file (Snakemake, SLURM) gets a line instead of a bar
            log.info("step %d/%d: loss %.4f, lr %.3g, %.0f tokens/s", step, s.steps, row["loss"], row["lr"],
                     row["tokens_per_s"])


def _batches(loader):
    """The loader's items; a UserError raised in a worker comes back as its own one-line message
    (the DataLoader wraps it with the worker's traceback)."""
    try:
        yield from watched(loader)
    except UserError as error:
        raise UserError(str(error).strip().splitlines()[-1].split("UserError: ", 1)[-1]) from None


def _gather_rng_states(world: int) -> list[dict]:
    """Every rank's RNG states, indexed by rank (dropout draws differ between ranks)."""
    if world == 1:
        return [rng_state()]
    states = [None] * world
    dist.all_gather_object(states, rng_state())
    return states


def add_arguments(parser) -> None:
    parser.description = (
        "Masked-LM pretraining on windows drawn at random from genomes (both strands, N-rich windows skipped), "
        "tokenised in DataLoader workers and packed without padding. A resumed run draws the windows, masks and "
        "dropout an uninterrupted one would; the final model is written to --out in the Hugging Face layout with "
        "metrics.jsonl. Under torchrun (e.g. `torchrun "
        "--nproc-per-node 8 -m dnabert2 pretrain ...`, or `srun torchrun ...` on SLURM) the same command runs "
        "data-parallel over every GPU.")
    parser.add_argument("--genome", action="append", required=True, type=Path, metavar="FASTA",
                        help="genome FASTA or GenBank (repeat for several; bgzip with .fai for random access)")
    parser.add_argument("--tokenizer", type=model_argument, help="tokenizer.json (from `dnabert2 vocab`) or a model folder; "
                        "with --init, by default the init model's")
    parser.add_argument("--out", required=True, type=Path, help="output model folder")
    add_settings(parser, PretrainSettings)


def run(args) -> None:
    settings = settings_from(args, PretrainSettings)
    if args.tokenizer is None and settings.init is None:
        raise UserError("--tokenizer is needed (or --init, whose model's tokenizer is then used)")
    try:
        row = pretrain(args.genome, args.tokenizer or settings.init, args.out, settings, progress=progress(args))
    except RuntimeError as error:
        if not (dist.is_initialized() and peer_lost(error)):
            raise
        raise UserError(f"rank {dist.get_rank()}: another process of this run stopped or cannot be reached (its "
                        "own error, where it gave one, says why)") from None
    if row:
        log.info("wrote %s after step %d: %s", args.out, row["step"], json.dumps(row))
