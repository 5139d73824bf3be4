"""`dnabert2 embed`: one vector per sequence (mean, [CLS] or max pooling of its token states) or one per
token, from any model folder with an encoder, written with the sequences' ids to .npz, .npy (the ids
beside it) or Parquet.

Sequences run whole by default (ALiBi has no length limit); with --chunk-tokens a longer one runs in
overlapping chunks and each token takes the mean of its states over the chunks that hold it ([CLS]
and [SEP] the mean over all chunks). Sequences are packed back to back without padding, so a vector
does not depend on what else is in its batch beyond floating-point rounding. Blocks of sequences are
read, embedded and appended to the output in turn: memory stays flat however many there are."""

import contextlib
import json
import logging
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch

from .attention import TooLong
from .devices import (Pending, autocast, batch_tokens, inference_device, inference_weights, overlapped, padded_batches,
                      upload)
from .errors import UserError
from .hub import model_path
from .model import load_model
from .model.heads import pool
from .options import settings_with
from .outputs import atomic_output, check_outputs, files_in, scratch_folder
from .predict import BLOCK, BLOCK_BASES, add_command, run_command
from .sequences import in_blocks, read_sequences
from .settings import EmbedSettings
from .tokenizer import CLS, SEP, load_tokenizer

log = logging.getLogger(__name__)

FORMATS = (".npz", ".npy", ".parquet")
IDS = ".ids.txt"  # beside an .npy, which holds one array: the ids, a line each


class Embedder:
    def __init__(self, model, s: EmbedSettings):
        folder = model_path(model)
        if s.overlap is not None and s.chunk_tokens is None:
            raise UserError("--overlap is the overlap of chunks: give --chunk-tokens too")
        if s.chunk_tokens is not None and s.chunk_tokens < 3:
            raise UserError(f"--chunk-tokens {s.chunk_tokens}: a chunk holds [CLS], [SEP] and at least one token")
        self.device, precision = inference_device(s.device, s.dtype)
        self.autocast = autocast(self.device, precision)
        model = load_model(folder, device=self.device)
        # An embedding model's folder says how it pools (load_model(head="embedding", pooling=...)).
        self.pooling = s.pooling or getattr(model, "pooling", None) or "mean"
        self.encoder = inference_weights(model.bert, precision)
        self.tokenizer = load_tokenizer(folder)
        self.tokens = batch_tokens(s.batch_tokens, self.device)
        self.chunk = s.chunk_tokens
        overlap = s.overlap if s.overlap is not None else (s.chunk_tokens or 0) // 4
        if self.chunk is not None and not 0 <= overlap < self.chunk - 2:
            raise UserError(f"--overlap {overlap} must be less than --chunk-tokens {self.chunk} minus 2 ([CLS], [SEP])")
        self.overlap = overlap

    def pieces(self, index: int, content: list[int]):
        """(sequence index, first content token, ids) of the chunks a sequence runs in."""
        if self.chunk is None or len(content) + 2 <= self.chunk:
            return [(index, 0, [CLS, *content, SEP])]
        width = self.chunk - 2
        starts = list(range(0, len(content) - width, width - self.overlap)) + [len(content) - width]
        return [(index, start, [CLS, *content[start:start + width], SEP]) for start in starts]

    @torch.inference_mode()
    def states(self, sequences: list[str]) -> tuple[list[torch.Tensor], list[list[str]]]:
        """Each sequence's token states (tokens + 2, hidden) in fp32 on the CPU, and its tokens."""
        encoded = self.tokenizer.encode_batch(sequences, add_special_tokens=False)
        pieces = sorted((piece for i, e in enumerate(encoded) for piece in self.pieces(i, e.ids)),
                        key=lambda piece: len(piece[2]))
        hidden = self.encoder.config.hidden_size
        sums = [torch.zeros(len(e.ids) + 2, hidden) for e in encoded]
        counts = [torch.zeros(len(e.ids) + 2, 1) for e in encoded]

        def launch(batch):
            ids = upload(np.fromiter((t for _, _, piece in batch for t in piece), dtype=np.int64), self.device)
            lengths = [len(piece) for _, _, piece in batch]
            cu = torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int32)
            with self.autocast:
                out = self.encoder.forward_packed(ids, cu, max(lengths)).float()
            return Pending([out], lambda arrays: torch.from_numpy(arrays[0]).split(lengths))

        def take(batch, pending):
            for (index, start, piece), states in zip(batch, pending.result()):
                # A chunk's token i is the sequence's token start + i ([CLS] at 0); every chunk's [CLS]
                # and [SEP] go to the sequence's own.
                rows = torch.arange(start, start + len(piece))
                rows[0], rows[-1] = 0, len(sums[index]) - 1
                sums[index].index_add_(0, rows, states)
                counts[index].index_add_(0, rows, torch.ones(len(piece), 1))

        batches = (pieces[run] for run in padded_batches([len(piece) for _, _, piece in pieces], self.tokens))
        overlapped(batches, launch, take)
        names = [["[CLS]", *e.tokens, "[SEP]"] for e in encoded]
        return [total / count for total, count in zip(sums, counts)], names


def pooled(states: list[torch.Tensor], pooling: str) -> np.ndarray:
    lengths = torch.tensor([len(s) for s in states])
    cu = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    return pool(torch.cat(states), cu, pooling).numpy()


class NpzWriter:
    """Arrays grown block by block in temporary files, then written into one .npz (a zip of .npy files,
    as numpy.savez writes it) without holding them in memory."""

    def __enter__(self):
        self.scratch = contextlib.ExitStack()
        self.folder = self.scratch.enter_context(scratch_folder("dnabert2-embed-"))
        self.shapes: dict[str, tuple] = {}
        self.dtypes: dict[str, np.dtype] = {}
        self.widths: dict[str, int] = {}  # string arrays: their longest string
        return self

    def __exit__(self, *exc):
        self.scratch.close()

    def add(self, name: str, values: np.ndarray) -> None:
        with open(self.folder / name, "ab") as handle:
            handle.write(np.ascontiguousarray(values).tobytes())
        rows = self.shapes.get(name, (0,))[0]
        self.shapes[name] = (rows + len(values), *values.shape[1:])
        self.dtypes[name] = values.dtype

    def add_strings(self, name: str, values: list[str]) -> None:
        with open(self.folder / name, "a") as handle:
            handle.writelines(json.dumps(value) + "\n" for value in values)
        self.shapes[name] = (self.shapes.get(name, (0,))[0] + len(values),)
        self.widths[name] = max([self.widths.get(name, 1), *map(len, values)])

    def write(self, blocks, tokens: bool) -> None:
        offsets = 0
        if tokens:
            self.add("offsets", np.zeros(1, dtype=np.int64))
        for names, vectors, token_names in blocks:
            self.add_strings("ids", names)
            if tokens:
                lengths = np.array([len(t) for t in token_names])
                self.add("offsets", offsets + np.cumsum(lengths))
                offsets += int(lengths.sum())
                self.add_strings("tokens", [token for sequence in token_names for token in sequence])
            self.add("embeddings", vectors)

    def close(self, tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            for name in self.shapes:
                with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    self.write_array(name, entry)

    def write_array(self, name: str, handle) -> None:
        strings = name in self.widths
        descr = f"<U{self.widths[name]}" if strings else np.lib.format.dtype_to_descr(self.dtypes[name])
        np.lib.format.write_array_header_2_0(handle, {"descr": descr, "fortran_order": False,
                                                      "shape": self.shapes[name]})
        if strings:
            with open(self.folder / name) as lines:
                for line in lines:
                    handle.write(json.loads(line).ljust(self.widths[name], "\0").encode("utf-32-le"))
        else:
            with open(self.folder / name, "rb") as raw:
                shutil.copyfileobj(raw, handle, 1 << 20)


def write_npy(tmp: Path, blocks, width: int) -> None:
    """The vectors alone as an .npy (np.load can memory-map it), streamed into place: numpy leaves room
    in the header for the first axis to grow, so the header is rewritten with the count at the end.
    The ids go beside it, a line each."""
    rows = 0
    with open(tmp, "wb") as handle, open(f"{tmp}{IDS}", "w") as ids:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False}
        np.lib.format.write_array_header_2_0(handle, {**header, "shape": (0, width)})
        data = handle.tell()
        for names, vectors, _ in blocks:
            ids.writelines(name + "\n" for name in names)
            handle.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
            rows += len(names)
        handle.seek(0)
        np.lib.format.write_array_header_2_0(handle, {**header, "shape": (rows, width)})
        if handle.tell() != data:  # a numpy that left no room to grow would have overwritten vectors
            raise RuntimeError(f"numpy wrote a {handle.tell()}-byte .npy header over a {data}-byte one")


def write_parquet(tmp: Path, blocks, tokens: bool) -> None:
    """A row per sequence (id, embedding) or per token (id, token_index, token, embedding), one row
    group per block."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    try:
        for names, vectors, token_names in blocks:
            columns = {"id": names}
            if tokens:
                columns = {"id": [name for name, t in zip(names, token_names) for _ in t],
                           "token_index": [i for t in token_names for i in range(len(t))],
                           "token": [token for t in token_names for token in t]}
            flat = pa.array(vectors.reshape(-1), type=pa.float32())
            table = pa.table({**columns, "embedding": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def embed(model, out, *, csv_file=None, fasta=None, bed=None, genome=None, settings: EmbedSettings | None = None,
          show_progress: bool = False, **overrides) -> int:
    """Write `out` (.npz, .npy or .parquet) with the embeddings of every input sequence, in input
    order; returns the number of sequences. An .npz holds `ids` and `embeddings` (sequences × hidden),
    or per token `embeddings` (tokens × hidden), `tokens` and `offsets` (sequence i's rows are
    offsets[i]:offsets[i+1], [CLS] and [SEP] included). An .npy holds the embeddings (one vector per
    sequence), with the ids in `out`.ids.txt beside it."""
    s = settings_with(EmbedSettings, settings, overrides)
    out = Path(out)
    kind = out.suffix.lower()  # x.NPZ is an .npz
    if kind not in FORMATS:
        raise UserError(f"{out}: give the output a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} name, which says its format")
    tokens = s.pooling == "tokens"  # given, never a folder's
    if tokens and kind == ".npy":
        raise UserError(f"{out}: an .npy holds one array; per-token embeddings need .npz or .parquet (tokens and "
                        "offsets go with them)")
    companions = (IDS,) if kind == ".npy" else ()
    check_outputs([out, *(f"{out}{c}" for c in companions)], [csv_file, fasta, bed, genome, *files_in(model)])
    records = read_sequences(csv_file, fasta, bed, genome)
    embedder = Embedder(model, s)
    count = 0

    def blocks():
        nonlocal count
        for block in in_blocks(records, BLOCK, BLOCK_BASES):
            names, sequences = map(list, zip(*block))
            broken = next((n for n in names if "\n" in n or "\r" in n), None) if companions else None
            if broken is not None:
                raise UserError(f"id {broken!r} holds a line break, which {out}{IDS} (an id a line) cannot keep; "
                                "give --out an .npz or .parquet name")
            try:
                states, token_names = embedder.states(sequences)
            except TooLong as error:
                cut = "a smaller --chunk-tokens" if s.chunk_tokens else "--chunk-tokens (512, the length DNABERT-2 was " \
                    "pretrained on) to run them in chunks"
                raise UserError(f"{error}, or give {cut}") from None
            vectors = torch.cat(states).numpy() if tokens else pooled(states, embedder.pooling)
            count += len(names)
            if show_progress:
                log.info("%d sequences", count)
            yield names, vectors, token_names

    with atomic_output(out, *companions) as tmp:
        if kind == ".parquet":
            write_parquet(tmp, blocks(), tokens)
        elif kind == ".npy":
            write_npy(tmp, blocks(), embedder.encoder.config.hidden_size)
        else:
            with NpzWriter() as writer:
                writer.write(blocks(), tokens)
                writer.close(tmp)
    return count


def add_arguments(parser) -> None:
    add_command(parser, "Embed sequences with a model (pretrained or fine-tuned): one vector per sequence, or per "
                "token, written with the sequences' ids to .npz (ids, embeddings; per token also tokens and offsets), "
                ".npy (the vectors, which np.load can memory-map; the ids in OUT.ids.txt) or Parquet (a row per "
                "sequence or per token).", "model folder", "output file: .npz, .npy or .parquet",
                EmbedSettings)


def run(args) -> None:
    run_command(embed, EmbedSettings, args, args.out)
