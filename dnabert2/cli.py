"""The `dnabert2` command line. Each command's options, and the thin layer that calls the library and
prints its result, sit beside the code that does the work (`add_arguments` and `run` in the module
named below); this module only dispatches, and turns a UserError into one line on stderr and exit
code 1. Only the chosen command's module is imported, so `dnabert2 --help` and the sequence
utilities do not pay for importing torch."""

import argparse
import importlib
import logging
import os
import re
import sys

from . import __version__, stops
from .errors import UserError

# name → (module, its add_arguments and run functions, one line of help)
COMMANDS = {
    "download": ("dnabert2.download", "add_arguments", "run",
                 "fetch a genome into a bgzip FASTA with .fai and .gzi indices"),
    "fetch": ("dnabert2.fetch", "add_arguments", "run",
              "fetch models by Hugging Face Hub id into the Hub cache, for commands run later offline"),
    "vocab": ("dnabert2.vocab", "add_arguments", "run", "learn a BPE vocabulary (tokenizer.json) from genomes"),
    "windows": ("dnabert2.sequences.windows", "add_arguments", "run",
                "write fixed-length windows of a genome as FASTA, CSV or BED"),
    "sites": ("dnabert2.bed", "add_sites_arguments", "run_sites",
              "write annotated TSSs, TTSs, splice sites, introns or genes as BED"),
    "junctions": ("dnabert2.bed", "add_junctions_arguments", "run_junctions",
                  "write splice junctions seen in a BAM/CRAM (CIGAR N) as BED"),
    "pretrain": ("dnabert2.pretrain.train", "add_arguments", "run",
                 "pretrain a DNABERT-2 masked LM on genomes (one process, or many under torchrun)"),
    "tasks": ("dnabert2.tasks.build", "add_arguments", "run",
              "build a GUE-style classification task (promoters, splice sites, …) from a genome and its annotation"),
    "finetune": ("dnabert2.finetune", "add_arguments", "run",
                 "fine-tune a model on a GUE-format task or a dense (per-base) task, LoRA or full"),
    "cnn": ("dnabert2.finetune", "add_cnn_arguments", "run_cnn",
            "train the SpliceAI-style CNN baseline on a dense task, as fine-tuning trains a model"),
    "evaluate": ("dnabert2.evaluate", "add_arguments", "run",
                 "score a model on GUE-format tasks, with baselines beside it"),
    "predict": ("dnabert2.predict", "add_arguments", "run",
                "score sequences (CSV, FASTA or BED regions) with a fine-tuned model into a TSV of label probabilities"),
    "embed": ("dnabert2.embed", "add_arguments", "run",
              "embed sequences with a model: a vector per sequence (mean, [CLS] or max pooling) or per token"),
    "variants": ("dnabert2.variants", "add_arguments", "run",
                 "score the variants of a VCF/BCF with a per-base model: gains and losses of sites nearby"),
    "mutagenesis": ("dnabert2.mutagenesis", "add_arguments", "run",
                    "score every possible SNV of a region with a model: a TSV and a figure of per-base importance"),
    "scan": ("dnabert2.scan", "add_arguments", "run",
             "scan a genome (FASTA) or aligned reads (BAM) with a fine-tuned classifier into BED calls"),
    "scan-gather": ("dnabert2.scan.gather", "add_arguments", "run",
                    "join the chunks of a scan (their --summary files) into one BED"),
    "scan-eval": ("dnabert2.scan.evaluation", "add_arguments", "run",
                  "precision, recall, F1, PR-AUC and top-k of scan calls against a GTF/GFF3/GenBank annotation"),
    "scan-table": ("dnabert2.scan.evaluation", "add_table_arguments", "run_table",
                   "one table of scan-eval reports: a model and its baselines, label by label"),
    "plot": ("dnabert2.plots", "add_arguments", "run",
             "draw a figure for a report: pretraining loss, scan score distributions, or metaplots around sites"),
}


class Parser(argparse.ArgumentParser):
    """argparse, with a malformed command line (unknown option, bad value) answered in one line and
    exit code 2, as argparse does, without the usage block: --help shows that."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with every option of `command` (the others list their one line of help only)."""
    parser = Parser(
        prog="dnabert2", description="DNABERT-2 for genome annotation: fetch genomes, learn a BPE vocabulary, "
        "pretrain, build tasks from annotations, fine-tune and evaluate, scan genomes and reads into BED calls; and "
        "the sequence utilities (windows, sites, junctions) and report figures.")
    parser.add_argument("--version", action="version", version=f"dnabert2 {__version__}")
    quiet = {"action": "store_true", "help": "log warnings and errors only, no progress bars"}
    parser.add_argument("-q", "--quiet", **quiet)  # before the command, as `pip -q install` takes it
    common = Parser(add_help=False)
    # Suppressed unless given, the command's default would undo a -q given before it.
    common.add_argument("-q", "--quiet", default=argparse.SUPPRESS, **quiet)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.set_defaults(commands=commands.choices)  # for an error in a command's words, said by its own parser
    for name, (module, add, run, help_line) in COMMANDS.items():
        sub = commands.add_parser(name, parents=[common], help=help_line, description=help_line)
        if name == command:
            code = importlib.import_module(module)
            getattr(code, add)(sub)
            sub.set_defaults(run=getattr(code, run))
    return parser


def _command(argv: list[str]) -> str | None:
    """The command named on the command line: the first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv=None) -> int:
    """The program: once done it ignores SIGINT, SIGTERM and SIGHUP, so that a stop cannot cut the process's
    exit short (nor turn a finished run's exit code into a kill)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command(argv)
    stops.exit_at_once(f"dnabert2 {command}" if command in COMMANDS else "dnabert2")
    try:
        args, unknown = build_parser(command).parse_known_args(argv)
        if unknown:  # the command's own parser says so, naming the command and its --help
            args.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.quiet:  # read when huggingface_hub is first imported, which no command does before this
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        # huggingface_hub prints its warnings through a handler of its own: passed on to ours, each came twice.
        logging.getLogger("huggingface_hub").propagate = False
        stops.install()
        try:
            args.run(args)
        except BaseException as error:
            stops.ignore()  # a stop arriving now would escape the report of this one
            return _report(args.command, error)
        return 0
    finally:
        stops.ignore()
        stops.ignore_to_the_end()


_WORKER_DIED = re.compile(r"DataLoader worker \(pid.*?\) (?:is killed by signal: (?P<signal>[^.]+)\.|exited unexpectedly)")


def _report(command: str, error: BaseException) -> int:
    """Say in one line why `command` ended early; its exit code. Errors of no known kind are raised; a
    data-loading worker's death ends the process here."""
    stop = stops.stop_behind(error)
    if stop is not None:  # the shell's exit codes: 128 + the signal's number
        print(f"dnabert2 {command}: {stops.WORDS[stop]}", file=sys.stderr)
        return 128 + stop
    if isinstance(error, UserError):
        message = " ".join(str(error).split())
        print(f"dnabert2 {command}: error: {message}", file=sys.stderr)
        return 1
    # A loader worker killed (the kernel's OOM killer, a cluster's memory limit): torch says it in a
    # RuntimeError, and the user acts on it as on a disk problem.
    # torch rewords a death it learns of while reading a batch as 'exited unexpectedly', raised from the
    # error that named the signal.
    died = (_WORKER_DIED.search(str(error.__cause__)) or _WORKER_DIED.search(str(error))
            if isinstance(error, RuntimeError) else None)
    if died:
        how = f"was killed by signal: {died['signal']}" if died["signal"] else "exited unexpectedly"
        # SIGKILL is the OOM killer's; another signal (SIGBUS: /dev/shm full) torch has explained above.
        why = "out of memory? run again with fewer --workers or more memory" \
            if died["signal"] in (None, "Killed") else "run again with fewer --workers, or 0 to read in the process"
        print(f"dnabert2 {command}: error: a data-loading worker (--workers) {how}; {why}", file=sys.stderr)
        # The loader's shutdown, as the process exits, takes locks it shares with its workers, and one
        # the dead worker held stays taken for good. The outputs' temporaries went as the error unwound.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    if isinstance(error, OSError):  # a disk or permission problem the user can act on
        where = f": {error.filename}" if error.filename else ""
        print(f"dnabert2 {command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    raise error
