"""A task folder's task.json, which `dnabert2 tasks` writes and fine-tuning copies beside the model:
the kind, the labels' names, the window or the dense geometry, and the split. Light enough for the
workflow to read."""

import json
from pathlib import Path

from ..errors import UserError


def read_description(folder) -> dict:
    """The task.json of a task folder, or of a model folder that carries its task's; {} where there is none."""
    described = Path(folder) / "task.json"
    if not described.is_file():
        return {}
    try:
        description = json.loads(described.read_text(encoding="utf-8-sig"))  # as an editor may save it
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{described}: not the task.json of a task built by `dnabert2 tasks`: {error}") from None
    if not isinstance(description, dict):
        raise UserError(f"{described}: not the task.json of a task built by `dnabert2 tasks` (a JSON object)")
    return description


def is_dense(folder) -> bool:
    """A task folder (or a model folder carrying its task.json) of a dense task."""
    return read_description(folder).get("dense") is True
