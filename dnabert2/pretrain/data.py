"""Pretraining data: windows drawn at random from genomes, tokenised and masked in DataLoader
workers, and packed back to back (cu_seqlens) so no compute goes to padding.

What a step sees is a function of (seed, step, window index) alone: a resumed run draws exactly the
windows and masks the interrupted one would have, and ranks of a distributed run split one global
batch between them, so two ranks see what one process with their combined batch sees.
"""

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer

from ..errors import UserError
from ..sequences import Fasta, check_distinct_contigs, reverse_complement, too_many_n
from ..tokenizer import FIRST_REGULAR, MASK, frame, token_ids

TRAIN, EVAL = 1, 2  # separate random streams for training and evaluation windows
# Genomes up to this many usable bases (a human genome's size) are held in memory as text, read once
# in the main process, which DataLoader workers share after fork: a window is then a slice, where a
# bgzip FASTA costs a block decompression (~150 µs) per window. Larger sets are read by region.
IN_MEMORY_BP = 4_000_000_000
DRAWS = 1000  # tries before a genome is called mostly N


@dataclass(frozen=True)
class WindowSpec:
    """How long a window is: `tokens` BPE tokens ([CLS] and [SEP] included), or `bp` base pairs."""

    tokens: int | None = None
    bp: int | None = None

    def __post_init__(self):
        if (self.tokens is None) == (self.bp is None):
            raise UserError("give the window length in tokens or in bp, not both or neither")
        if (self.tokens or self.bp) < 3:
            raise UserError(f"a window of {self.tokens or self.bp} {'tokens' if self.tokens else 'bp'} is too short")

    @property
    def draw_bp(self) -> int:
        # Enough sequence to fill the tokens: DNA BPE averages 4.5-5 bp per token. A low-complexity
        # stretch that packs into fewer tokens makes a shorter window, which packing absorbs.
        return self.bp if self.bp else 6 * self.tokens


class WindowSampler:
    """Random windows over genomes on both strands: a genome by weight, then a position uniform over
    its usable bases; windows with more than `max_n` non-ACGT bases are drawn again."""

    def __init__(self, genomes, weights, window_bp: int, heldout_contigs=(), split: int = TRAIN, max_n: float = 0.05):
        self.paths = [str(g) for g in genomes]
        self.window_bp, self.max_n, self.split, self.held_out = window_bp, max_n, split, bool(heldout_contigs)
        if weights is None:
            weights = [1.0] * len(self.paths)
        if len(weights) != len(self.paths) or any(w <= 0 for w in weights):
            raise UserError(f"give one positive weight per genome ({len(self.paths)} genomes, weights {list(weights)})")
        heldout = set(heldout_contigs)
        self.tables = []  # per genome: (contig names, cumulative usable starts)
        self.short = []  # per genome: this split's contigs shorter than a window, none of them drawn from
        seen = set()
        self.lengths = []
        for path in self.paths:
            with Fasta(path) as fasta:
                lengths = fasta.lengths
            self.lengths.append(lengths)
            seen.update(lengths)
            ours = {c: n for c, n in lengths.items() if (c in heldout) == (split == EVAL)}
            usable = [(c, n - window_bp + 1) for c, n in ours.items() if n >= window_bp]
            self.tables.append(([c for c, _ in usable], np.cumsum([n for _, n in usable])))
            self.short.append({c: n for c, n in ours.items() if n < window_bp})
        check_distinct_contigs(zip(self.paths, self.lengths))
        if heldout - seen:
            raise UserError(f"held-out contigs in none of the genomes: {', '.join(sorted(heldout - seen))}")
        where = "held-out contig" if split == EVAL else "contig (held-out ones aside)"
        missing = [p for p, (names, _) in zip(self.paths, self.tables) if not names]
        if split == TRAIN and missing:
            raise UserError(f"{missing[0]}: no {where} is as long as one window ({window_bp} bp)")
        if split == EVAL and len(missing) == len(self.paths):
            raise UserError(f"no {where} is as long as one window ({window_bp} bp)")
        p = np.array([w if names else 0.0 for w, (names, _) in zip(weights, self.tables)], dtype=float)
        # A genome is drawn as Generator.choice(p=p) draws, with its cumulative table made once here.
        self.cdf = np.cumsum(p / p.sum())
        self.cdf /= self.cdf[-1]
        self._fastas, self._pid = None, None
        usable_bp = sum(int(ends[-1]) + len(names) * (window_bp - 1) for names, ends in self.tables if names)
        self._memory = self._load() if usable_bp <= IN_MEMORY_BP else None

    def fingerprint(self, genome: int) -> str:
        """Contig names and lengths of a genome, hashed: a resumed run must read the same genome."""
        return hashlib.sha256(json.dumps(list(self.lengths[genome].items())).encode()).hexdigest()[:16]

    def _load(self) -> list[dict[str, str]]:
        """The usable contigs of every genome, upper-cased and checked as Fasta.fetch returns them."""
        memory = []
        for path, (names, _) in zip(self.paths, self.tables):
            with Fasta(path) as fasta:
                memory.append({name: fasta.fetch(name) for name in names})
        return memory

    def _open(self) -> list[Fasta]:
        # pysam handles do not survive fork: each DataLoader worker opens its own.
        if self._pid != os.getpid():
            self._fastas, self._pid = [Fasta(p) for p in self.paths], os.getpid()
        return self._fastas

    def genome(self, rng: np.random.Generator) -> int:
        """A genome, drawn by weight."""
        return int(np.searchsorted(self.cdf, rng.random(), side="right"))

    def draw(self, rng: np.random.Generator, genome: int | None = None) -> tuple[str, int, str, str]:
        """(contig, start, strand, sequence) from `genome` (else one drawn); a minus-strand sequence is
        reverse-complemented. A window redrawn for its N stays in its genome: each genome gives its
        weight's share of the windows however much of it is N."""
        fastas = self._open() if self._memory is None else None
        g = self.genome(rng) if genome is None else genome
        names, ends = self.tables[g]
        for _ in range(DRAWS):
            pick = int(rng.integers(ends[-1]))
            i = int(np.searchsorted(ends, pick, side="right"))
            start = pick - (int(ends[i - 1]) if i else 0)
            if fastas is None:
                sequence = self._memory[g][names[i]][start:start + self.window_bp]
            else:
                sequence = fastas[g].fetch(names[i], start, start + self.window_bp)
            plus = rng.random() < 0.5
            if self.usable(sequence):
                return names[i], start, "+" if plus else "-", sequence if plus else reverse_complement(sequence)
        raise self.too_many_n(g)

    def check_windows(self, seed: int) -> None:
        """Draw a window of every genome that has contigs to draw from: one mostly N says so."""
        for genome, (names, _) in enumerate(self.tables):
            if names:
                self.draw(np.random.default_rng(seed), genome)

    def usable(self, bases: str) -> bool:
        # A window of N alone has no base to learn from, whatever max_n allows.
        return not too_many_n(bases, self.max_n) and any(base in bases for base in "ACGT")

    def too_many_n(self, genome: int) -> UserError:
        drawn_from = ("its held-out contigs are" if self.split == EVAL else
                      "its contigs are (held-out ones aside)" if self.held_out else "it is")
        return UserError(f"{self.paths[genome]}: no window with at most {self.max_n:.0%} N found in {DRAWS} draws of "
                         f"{self.window_bp} bp; {drawn_from} mostly N, or N lie throughout (raise --max-n)")


def mask_tokens(ids: list[int], rng: np.random.Generator, vocab_size: int, rate: float = 0.15):
    """BERT masking: `rate` of the regular tokens (at least one) are scored; of those 80% become
    [MASK], 10% a random regular token, 10% stay. Returns (input ids, labels with −100 = not scored)."""
    ids = np.asarray(ids, dtype=np.int64)
    labels = np.full_like(ids, -100)
    candidates = np.flatnonzero(ids >= FIRST_REGULAR)
    if len(candidates) == 0:
        return ids, labels
    chosen = rng.choice(candidates, size=max(1, round(rate * len(candidates))), replace=False)
    labels[chosen] = ids[chosen]
    roll = rng.random(len(chosen))
    ids[chosen[roll < 0.8]] = MASK
    swap = chosen[(roll >= 0.8) & (roll < 0.9)]
    ids[swap] = rng.integers(FIRST_REGULAR, vocab_size, size=len(swap))
    return ids, labels


def pack(examples, max_tokens: int) -> list[dict]:
    """Greedily pack (ids, labels) pairs, in order, into micro-batches of at most max_tokens tokens."""
    batches, current, tokens = [], [], 0
    for example in examples:
        if current and tokens + len(example[0]) > max_tokens:
            batches.append(current)
            current, tokens = [], 0
        current.append(example)
        tokens += len(example[0])
    if current:
        batches.append(current)
    out = []
    for group in batches:
        lengths = [len(ids) for ids, _ in group]
        out.append({
            "input_ids": torch.from_numpy(np.concatenate([ids for ids, _ in group])),
            "labels": torch.from_numpy(np.concatenate([labels for _, labels in group])),
            "cu_seqlens": torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int32),
            "max_seqlen": max(lengths),
        })
    return out


class PretrainSteps(torch.utils.data.Dataset):
    """Item `step`: this rank's share of the step's global batch, as packed micro-batches."""

    def __init__(self, sampler: WindowSampler, tokenizer: Tokenizer, window: WindowSpec, batch_size: int,
                 max_tokens: int, seed: int, rank: int = 0, world: int = 1, mask_rate: float = 0.15,
                 salt: tuple[int, ...] = ()):
        if batch_size % world:
            raise UserError(f"the batch of {batch_size} windows does not split evenly over {world} processes")
        self.sampler, self.tokenizer, self.window = sampler, tokenizer, window
        self.batch_size, self.max_tokens, self.seed = batch_size, max_tokens, seed
        self.rank, self.world, self.mask_rate = rank, world, mask_rate
        # Mixed into the training windows' streams alone: a run continued from another (--init) with its
        # seed would draw and mask its windows again, and its held-out windows are to stay those.
        self.salt = salt
        self.vocab_size = tokenizer.get_vocab_size()
        # A window never exceeds a micro-batch: long bp windows are cut to max_tokens.
        self.limit = min(window.tokens or max_tokens, max_tokens)

    def __len__(self):
        return 2**62

    def cut(self, sequences: list[str], sampler: WindowSampler) -> list[tuple[list[int], bool]]:
        """Each window's input ids, cut to the window's length in tokens, and whether the bases those
        tokens hold pass the sampler's max_n (a window is drawn long, 6 bp a token, and cut)."""
        cut = self.limit - 2
        out = []
        for sequence, ids in zip(sequences, token_ids(self.tokenizer, sequences)):
            if too_many_n(sequence, 0):  # where the kept tokens end matters only where some base is N
                offsets = self.tokenizer.encode(sequence, add_special_tokens=False).offsets[:cut]
                usable = sampler.usable(sequence[:offsets[-1][1] if offsets else 0])
            else:
                usable = True
            out.append((frame([ids[:cut]])[0], usable))
        return out

    def examples(self, stream: int, step: int, indices, sampler: WindowSampler | None = None) -> list:
        """(input ids, labels) of windows `indices` of a step: each drawn and masked by its own random
        stream, tokenised in batches; a window whose kept bases hold too many N is drawn again from its
        stream."""
        sampler = sampler or self.sampler
        salt = self.salt if stream == TRAIN else ()
        rngs = [np.random.default_rng([self.seed, stream, step, index, *salt]) for index in indices]
        genomes = [sampler.genome(rng) for rng in rngs]  # kept through redraws, as draw keeps them
        encoded = self.cut([sampler.draw(rng, g)[-1] for rng, g in zip(rngs, genomes)], sampler)
        for _ in range(DRAWS):
            again = [i for i, (_, usable) in enumerate(encoded) if not usable]
            if not again:
                return [mask_tokens(ids, rng, self.vocab_size, self.mask_rate) for (ids, _), rng in zip(encoded, rngs)]
            for i, redrawn in zip(again, self.cut([sampler.draw(rngs[i], genomes[i])[-1] for i in again], sampler)):
                encoded[i] = redrawn
        raise sampler.too_many_n(genomes[again[0]])

    def __getitem__(self, step: int) -> list[dict]:
        mine = range(self.rank, self.batch_size, self.world)
        return pack(self.examples(TRAIN, step, mine), self.max_tokens)


def eval_batches(sampler: WindowSampler, steps: PretrainSteps, count: int) -> list[dict]:
    """A fixed set of held-out windows, the same at every evaluation and on every resume."""
    return pack(steps.examples(EVAL, 0, range(count), sampler), steps.max_tokens)
