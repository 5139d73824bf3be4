"""`dnabert2 fetch`: models by Hugging Face Hub id fetched ahead, where the network is, into the Hub
cache, for commands run later without it (HF_HUB_OFFLINE=1): on a cluster's login node before jobs on
compute nodes that are offline, as the workflow's fetch_model rule does. A LoRA adapter comes with
the base model it needs."""

import json
from pathlib import Path

from .bases.cnn import is_cnn
from .errors import UserError
from .hub import hub_id, model_name, model_path, shadowing_folder
from .model.adapters import is_adapter
from .model.checkpoint import adapter_base, check_model_folder, weights_file
from .options import output_file
from .outputs import atomic_text, check_outputs

COLUMNS = ("model", "revision", "folder")


def fetch(name: str, *, base: bool = False) -> list[tuple[str, str, str]]:
    """Rows of COLUMNS for a Hub id: the model, and an adapter's base model after it (base: this is
    one, whose tokenizer the jobs do not read: the adapter's folder has its own)."""
    folder = model_path(name, newest=True)
    check_model_folder(folder)  # what a job would refuse, refused before it runs
    if not base and not is_cnn(folder) and not (folder / "tokenizer.json").is_file():
        raise UserError(f"{model_name(folder)}: no tokenizer.json there, which fine-tuning, scanning, prediction and "
                        "embedding read beside a model's weights")
    rows = [(name, model_name(folder), str(folder))]
    if not is_adapter(folder):
        weights_file(folder)
        return rows
    info = json.loads((folder / "finetune.json").read_text())
    if hub_id(info["base_model"]):
        rows += fetch(info["base_model"], base=True)
    # The base must be there for the jobs, with the weights the adapter was trained on: a base named
    # without its commit may have moved on since.
    adapter_base(folder, info)
    return rows


def add_arguments(parser) -> None:
    parser.description = (
        "Fetch models by Hugging Face Hub id into the Hub cache (HF_HOME), the files that loading reads (a LoRA "
        "adapter's base model too), so that commands run later find them offline (HF_HUB_OFFLINE=1): on a "
        "cluster's login node before jobs on compute nodes without the internet, as the workflow's fetch_model "
        "rule does. Writes a TSV: each id as given, the commit it resolved to (owner/name@commit, which pins "
        "it) and its folder in the cache.")
    parser.add_argument("models", nargs="+", metavar="ID", help="a Hub id: owner/name, optionally @revision "
                        "(a branch, tag or commit)")
    parser.add_argument("--out", type=output_file, help="write the TSV here (bgzip-compressed when named .gz), "
                        "not to stdout")


def run(args) -> None:
    check_outputs([args.out])
    for name in args.models:  # every id checked before anything is fetched
        if hub_id(name) is None:
            raise UserError(f"{name}: {_not_an_id(name)}: nothing to fetch")
    rows = [COLUMNS, *(row for name in args.models for row in fetch(name))]
    text = "".join("\t".join(row) + "\n" for row in rows)
    if args.out is None:
        print(text, end="")
        return
    with atomic_text(args.out) as handle:
        handle.write(text)


def _not_an_id(name) -> str:
    if Path(name).exists():
        return "a file or folder here, not a Hugging Face Hub id"
    owner = shadowing_folder(name)
    if owner is not None:
        return f"a path here, as ./{owner} is a folder (write ./{name} for it, or {name}@main for the Hub id)"
    return "not a Hugging Face Hub id (owner/name, optionally @revision)"
