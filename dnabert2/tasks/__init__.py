"""Tasks: the registry of task kinds (registry.py), GUE-format task folders (gue.py), and tasks built
from a genome and its annotation (build.py). Importing the package loads only the registry, which the
workflow reads without the heavier parts."""

from .registry import KINDS, TaskKind, task_kind

__all__ = ["KINDS", "TaskKind", "task_kind"]
