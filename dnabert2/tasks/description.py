"""A task folder's task.json, which `dnabert2 tasks` writes and fine-tuning copies beside the model:
the kind, the labels' names, the window or the dense geometry, and the split. Light enough for the
workflow to read."""

import json
from pathlib import Path

from ..errors import UserError


def _count(least: int):
    return lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= least


def _names(value) -> bool:
    return (isinstance(value, dict) and sorted(value) == sorted(map(str, range(len(value))))
            and all(isinstance(name, str) for name in value.values()))


# The fields other commands read, and what each must hold: a hand-edited task.json is refused here in
# one line, not met later as a TypeError inside a scan or a fine-tuning.
FIELDS = {
    "task": (lambda value: isinstance(value, str), 'be a task kind\'s name, as "splice"'),
    "dense": (lambda value: isinstance(value, bool), "be true or false"),
    "labels": (_names, 'map each class number to its name, as {"0": "none", "1": "donor"}'),
    "window_bp": (_count(1), "be a whole number of bp, 1 or more"),
    "core_bp": (_count(1), "be a whole number of bp, 1 or more"),
    "flank_bp": (_count(0), "be a whole number of bp, 0 or more"),
}


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
    for key, (holds, what) in FIELDS.items():
        if key in description and not holds(description[key]):
            raise UserError(f"{described}: {key!r} must {what}, not {json.dumps(description[key])}")
    return description


def is_dense(folder) -> bool:
    """A task folder (or a model folder carrying its task.json) of a dense task."""
    return read_description(folder).get("dense") is True
