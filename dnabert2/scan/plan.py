"""Where windows go: a fixed grid of window starts over each region, cut into blocks of consecutive
windows and the blocks into balanced chunks.

The grid and the blocks depend only on the regions, the window length and the stride, never on the
chunking, so each block is read, tokenised and batched the same way whichever chunk it falls in: a
genome scanned in one job or in n gives the same windows, scores and calls.
"""

from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class Grid:
    """Window starts over [start, end) of a contig: every `stride` bp, plus one window flush with the
    end so the tail is covered too. No window if the region is shorter than one."""

    contig: str
    start: int
    end: int
    size: int
    stride: int

    @property
    def regular(self) -> int:
        return max(0, (self.end - self.start - self.size) // self.stride + 1)

    def __len__(self) -> int:
        last = self.start + (self.regular - 1) * self.stride
        return self.regular + (self.regular > 0 and last != self.end - self.size)

    def window_start(self, i: int) -> int:
        return self.start + i * self.stride if i < self.regular else self.end - self.size


@dataclass(frozen=True)
class Tiles:
    """Cores of a dense scan over [start, end) of a contig: abutting, `size` bp each, the last one cut
    at the end, so each base lies in exactly one. A last core cut short is read whole, flush with the
    end (`read`), as `dnabert2 tasks` tiles a stretch: the model meets the length it learnt."""

    contig: str
    start: int
    end: int
    size: int

    @property
    def stride(self) -> int:
        return self.size

    def __len__(self) -> int:
        return -(-(self.end - self.start) // self.size)

    def window_start(self, i: int) -> int:
        return self.start + i * self.size

    def core(self, i: int) -> tuple[int, int]:
        return self.window_start(i), min(self.end, self.window_start(i) + self.size)

    def read(self, i: int) -> int:
        """Where the core the model reads for core i starts: the core's own start, or, for a last core
        cut short, `size` bp before the end (never before the start: a shorter stretch is read whole)."""
        return max(self.start, min(self.window_start(i), self.end - self.size))


@dataclass(frozen=True)
class Block:
    """Windows first..last-1 of a grid; index is the block's place in the whole scan."""

    index: int
    grid: Grid
    first: int
    last: int

    @property
    def starts(self) -> list[int]:
        return [self.grid.window_start(i) for i in range(self.first, self.last)]

    @property
    def span(self) -> tuple[int, int]:
        """The bases the block's windows cover."""
        return self.grid.window_start(self.first), min(self.grid.end, self.grid.window_start(self.last - 1) + self.grid.size)

    @property
    def bases(self) -> int:
        """Bases the block adds to the scan: those its windows read, up to where the next window of the
        grid starts (that window's, then); with a stride longer than a window, not the gaps no window reads."""
        starts = self.starts
        following = starts[1:] + [self.grid.window_start(self.last) if self.last < len(self.grid) else self.grid.end]
        return sum(min(self.grid.size, after - start) for start, after in zip(starts, following))

    def next_start(self, i: int) -> int | None:
        """Where the window after window i of the block starts, if the grid has one."""
        j = self.first + i + 1
        return self.grid.window_start(j) if j < len(self.grid) else None


def as_is(item):
    """A DataLoader's collate_fn for items that are whole blocks already."""
    return item


def worker_share(items):
    """The items (blocks) this DataLoader worker prepares: every W-th, so that the loader, which takes
    one item from each worker in turn, returns them in order."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info else (0, 1)
    return ((k, item) for k, item in enumerate(items) if k % workers == worker)


class BlockReader:
    """What a scan's DataLoader iterates: each of this worker's blocks read from the genome and
    prepared (`prepare`, by the kind of scan), with its place in the list; a bad input travels to
    the main process as an error item, not as a worker's traceback."""

    def __init__(self, genome, blocks: list[Block], tokenizer):
        self.genome, self.blocks, self.tokenizer = genome, blocks, tokenizer

    def __iter__(self):
        from ..sequences import Fasta
        from ..tokenizer import load_tokenizer

        with Fasta(self.genome) as fasta:
            tokenizer = load_tokenizer(self.tokenizer) if self.tokenizer else None
            for k, block in worker_share(self.blocks):
                try:
                    yield {"item": k, **self.prepare(fasta, tokenizer, block)}
                except UserError as error:
                    yield {"error": str(error)}

    def prepare(self, fasta, tokenizer, block: Block) -> dict:
        raise NotImplementedError


def blocks(regions, size: int, stride: int | None, block_windows: int) -> list[Block]:
    """Every block of the scan, in genome order: of windows `size` bp long every `stride` bp, or,
    with stride None, of dense cores `size` bp long."""
    found = []
    for contig, start, end in regions:
        grid = Grid(contig, start, end, size, stride) if stride else Tiles(contig, start, end, size)
        for first in range(0, len(grid), block_windows):
            found.append(Block(len(found), grid, first, min(first + block_windows, len(grid))))
    return found


def neighbours(all_blocks: list[Block], mine: list[Block], reach: int) -> tuple[list[Block], list[Block]]:
    """The blocks of other chunks whose scores peaks within `reach` bp of this chunk's ends depend on:
    whole blocks (scored as their own chunk scores them), on the same contig region, before and after,
    until their windows start `reach` bp from the chunk's outermost ones. (Blocks' spans overlap by a
    window less a stride: their sum overstates how far they reach.)"""
    if not mine:
        return [], []
    before, after = [], []
    for step, found, edge in ((-1, before, mine[0]), (1, after, mine[-1])):
        outermost = edge.first if step < 0 else edge.last - 1
        start = far = edge.grid.window_start(outermost)
        i = edge.index + step
        while 0 <= i < len(all_blocks) and all_blocks[i].grid == edge.grid and abs(far - start) < reach:
            block = all_blocks[i]
            found.append(block)
            far = block.grid.window_start(block.first if step < 0 else block.last - 1)
            i += step
    return before[::-1], after


def parse_chunk(text: str) -> tuple[int, int]:
    """'i/n' (0-based i) → (i, n)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--chunk must be i/n, such as 0/8, not {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UserError(f"--chunk {text}: need 0 <= i < n")
    return i, n


def chunk(all_blocks: list[Block], i: int, n: int) -> list[Block]:
    """The i-th of n runs of consecutive blocks holding about the same number of windows."""
    total = sum(b.last - b.first for b in all_blocks)
    chosen, before = [], 0
    for b in all_blocks:
        # A block belongs to the chunk holding its first window.
        if i * total <= before * n < (i + 1) * total:
            chosen.append(b)
        before += b.last - b.first
    return chosen
