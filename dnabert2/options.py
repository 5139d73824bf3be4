"""Command settings declared once. Each command's settings are a dataclass whose fields carry their
default, help and checks; the command line's options come from it (`add_settings`), and the workflow
turns its config back into the same options (`as_arguments`), so a default is written in one place.

    @dataclass
    class ScanSettings:
        threshold: float = setting(0.5, "smallest probability called", type=probability)
"""

import argparse
import dataclasses
import math
import os
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

from .errors import UserError



def setting(default=None, help: str = "", *, type=None, choices=None, flag: str | None = None,
            aliases: tuple[str, ...] = (), nargs=None, append: bool = False, metavar=None, group: str | None = None,
            switches: dict[str, tuple[str, str]] | None = None, default_text: str | None = None):
    """A dataclass field that is also a command-line option.

    flag: the option (default --field-name); aliases: other spellings it answers to. nargs "+" or a
    number takes several values; append takes the option once per value. group: options of one group
    exclude each other. switches: {"--full": ("full", "help"), …}, one flag per value instead of a
    flag taking the value. default_text: the default as help shows it, where None or the value
    itself says too little."""
    metadata = {"help": help, "type": type, "choices": choices, "flag": flag, "aliases": aliases, "nargs": nargs,
                "append": append, "metavar": metavar, "group": group, "switches": switches,
                "default_text": default_text}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def changed(settings, names: Iterable[str]) -> list[str]:
    """The flags of the settings among `names` that differ from their defaults (a value given equal to
    its default cannot be told from none)."""
    defaults = type(settings)()
    fields = {field.name: field for field in dataclasses.fields(settings)}
    return [_flag_given(fields[name], getattr(settings, name)) for name in names
            if getattr(settings, name) != getattr(defaults, name)]


def _flag_given(field: dataclasses.Field, value) -> str:
    """The flag that gives a setting `value`: a switch's own (--lora for method lora)."""
    switches = field.metadata.get("switches") or {}
    return next((flag for flag, (chosen, _) in switches.items() if chosen == value), flag_of(field))


def _default_text(field: dataclasses.Field, default) -> str:
    if field.metadata.get("default_text"):
        return f" (default: {field.metadata['default_text']})"
    if default is None or default is False or default == []:
        return ""
    if isinstance(default, (list, tuple)):
        return " (default " + " ".join(map(str, default)) + ")"
    if isinstance(default, int) and not isinstance(default, bool) and default >= 100_000:
        return f" (default {default:,})"
    return f" (default {default})"


def add_settings(parser: argparse.ArgumentParser, cls, only: Iterable[str] | None = None,
                 helps: dict[str, str] | None = None) -> None:
    """An option for each field of the settings dataclass `cls` (or of those named in `only`); plain
    fields, not declared with setting(), are settings of the library only. `helps`: a command's own
    help for some of them, where the field's, written for another command, would mislead."""
    groups = {}
    if unknown := set(helps or ()) - {field.name for field in dataclasses.fields(cls)}:
        raise ValueError(f"helps for no setting of {cls.__name__}: {', '.join(sorted(unknown))}")
    for field in dataclasses.fields(cls):
        if "help" not in field.metadata or (only is not None and field.name not in only):
            continue
        meta, default = field.metadata, _default(field)
        where = parser
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            where = groups[meta["group"]]
        help_text = (helps or {}).get(field.name) or meta["help"] + _default_text(field, default)
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if meta.get("switches"):
            switches = where if meta.get("group") else parser.add_mutually_exclusive_group()
            for switch, (value, meaning) in meta["switches"].items():
                switches.add_argument(switch, dest=field.name, action="store_const", const=value,
                                      help=meaning + (" (the default)" if value == default else ""))
            parser.set_defaults(**{field.name: default})
            continue
        names = [flag_of(field), *meta.get("aliases", ())]
        if isinstance(default, bool):
            where.add_argument(*names, dest=field.name, action="store_true", help=help_text)
            continue
        options = {"dest": field.name, "default": default, "help": help_text}
        for key in ("type", "choices", "nargs", "metavar"):
            if meta.get(key) is not None:
                options[key] = meta[key]
        if meta.get("append"):  # a field taking repeated options defaults to None: argparse appends to it
            options["action"] = "append"
        elif meta.get("nargs") == "+" and not default:  # --tag a --tag b is --tag a b, not b alone
            options["action"] = "extend"
        where.add_argument(*names, **options)


def _default(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def settings_from(args: argparse.Namespace, cls):
    """The settings dataclass `cls` filled from parsed options; fields without an option keep their default."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def settings_with(cls, settings=None, overrides: dict | None = None):
    """`settings` (or the defaults) with keyword overrides, for library functions that take either. The
    values that differ from the defaults are checked (and text converted) as their command-line options
    are, so a library call gets the command's one-line error for, say, batch_tokens=0."""
    try:
        chosen = dataclasses.replace(settings or cls(), **(overrides or {}))
    except TypeError as error:
        raise TypeError(f"{cls.__name__}: {error}") from None
    defaults = cls()
    return dataclasses.replace(chosen, **{
        field.name: _checked(field, getattr(chosen, field.name), getattr(defaults, field.name))
        for field in dataclasses.fields(cls)
        if "help" in field.metadata and not _same(getattr(chosen, field.name), getattr(defaults, field.name))})


def _same(value, default) -> bool:
    try:
        return value is None or bool(value == default)
    except (TypeError, ValueError):  # an array compared element by element
        return False


def _checked(field: dataclasses.Field, value, default):
    meta = field.metadata
    if not (meta.get("nargs") or meta.get("append")):
        return _checked_one(field, value)
    if not isinstance(value, (list, tuple)):
        raise UserError(f"{field.name} takes a list, not {value!r}")
    if not value:  # as on the command line, no values is the option not given
        if default:
            raise UserError(f"{field.name} needs at least one value")
        return default
    return [_checked_one(field, item) for item in value]


def _checked_one(field: dataclasses.Field, value):
    kind = field.metadata.get("type")
    if kind is Path:
        value = Path(value) if isinstance(value, str) else value
    elif kind is not None:
        try:
            if isinstance(value, bool):
                raise ValueError
            # 1e6 steps is a million: a whole float is written as an integer for integer options.
            whole = isinstance(value, float) and value.is_integer() and kind not in _FLOAT_TYPES
            value = kind(str(int(value)) if whole else str(value))
        except argparse.ArgumentTypeError as error:
            raise UserError(f"{field.name} {error}") from None
        except ValueError:
            raise UserError(f"{field.name}: {value!r} is not a valid {kind.__name__} value") from None
    switches = field.metadata.get("switches")
    allowed = field.metadata.get("choices") or (switches and [v for v, _ in switches.values()])
    if allowed and value not in allowed:
        raise UserError(f"{field.name} must be one of {', '.join(map(str, allowed))}, not {value!r}")
    return value


def as_arguments(cls, values: dict) -> str:
    """The command-line options that give these settings (field name → value), shell-quoted; the
    inverse of add_settings, for callers (the workflow) that hold settings under the field names.
    Keys that are not command-line fields of `cls` are ignored; None, False and empty lists give no option."""
    words = []
    for field in dataclasses.fields(cls):
        value = values.get(field.name)
        if "help" not in field.metadata or field.name not in values or value is None or value is False or value == []:
            continue  # a library-only setting, or one that gives no option
        meta = field.metadata
        if meta.get("switches"):  # the default has no switch of its own when no switch gives it
            words += [s for s, (v, _) in meta["switches"].items() if v == value]
        elif value is True:
            words.append(flag_of(field))
        elif isinstance(value, list) and meta.get("append"):
            for item in value:
                words += [flag_of(field), str(item)]
        elif isinstance(value, list):
            words += [flag_of(field), *map(str, value)]
        else:
            words += [flag_of(field), str(value)]
    return " ".join(map(shlex.quote, words))


def progress(args: argparse.Namespace) -> bool:
    """Progress bars on an interactive terminal unless --quiet; a log file gets log lines instead."""
    return not args.quiet and sys.stderr.isatty()


# Types of options: each turns the text into a value or says what is wrong with it.

# Compressions a name can promise that no output is written in (each compressed output is bgzip, under
# .gz or .bgz): a plain file under such a name is misread by every tool that trusts the name.
_UNWRITTEN_COMPRESSION = {".bz2": "bzip2", ".xz": "xz", ".lzma": "lzma", ".zst": "zstd", ".zstd": "zstd",
                          ".lz4": "lz4", ".zip": "zip", ".z": "compress"}


def output_file(text: str) -> Path:
    """An output file's name: one ending in / names a folder, which the file would be written as."""
    if text.endswith("/"):
        raise argparse.ArgumentTypeError(f"{text} ends in /, naming a folder; give the file's name")
    path = Path(text)
    if path.suffix.lower() in _UNWRITTEN_COMPRESSION:
        raise argparse.ArgumentTypeError(
            f"{text}: outputs are not written {_UNWRITTEN_COMPRESSION[path.suffix.lower()]}-compressed; drop "
            f"{path.suffix} (text outputs are bgzip-compressed when named .gz)")
    return path


def model_argument(text: str) -> str:
    """A command's model: a folder or a Hub id, kept as typed, since a Path would read ./owner/name,
    a path, as the id owner/name (and '' as the folder here)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a model folder or a Hugging Face Hub id")
    return text


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text}")
    return value


def mapq(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 255:  # a MAPQ's range in SAM; above it, every alignment would be dropped unsaid
        raise argparse.ArgumentTypeError(f"must be a mapping quality, 0 to 255, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def learning_rate(text: str) -> float:
    # Adam's steps are about the rate in size: from 1 up, the weights are lost in a step or two.
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive number below 1, not {text}")
    return value


def input_tokens(text: str) -> int:
    value = int(text)
    if value < 3:
        raise argparse.ArgumentTypeError(f"must be 3 or more ([CLS], a token, [SEP]), not {text}")
    return value


def share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value


_FLOAT_TYPES = (float, positive_float, learning_rate, share, fraction)


def folder_name(folder) -> str:
    """A folder's name as given (`.` named by the folder it is; a link by itself, not its target)."""
    return Path(os.path.abspath(folder)).name


def named_paths(items) -> dict[str, Path]:
    """NAME=PATH arguments (or plain paths, each named by its folder as given) → name → path."""
    named = {}
    for item in items:
        # A path that exists as given is a path, even with "=" in a folder's name.
        named_so = "=" in item and not Path(item).exists()
        # A file at the root has no folder to be named by: its own name, then.
        name, _, path = item.partition("=") if named_so else (folder_name(Path(item).parent) or Path(item).name, "", item)
        if not name or not path:
            raise UserError(f"{item}: NAME=PATH needs both a name and a path")
        if not name.isprintable():  # a tab or newline would break the rows of the tables names head
            raise UserError(f"{name!r}: a name of tabs, newlines or other unprintable characters; give another")
        if name in named:
            raise UserError(f"two inputs named {name!r} ({named[name]} and {path}); name them, NAME=PATH")
        same = next((other for other, given in named.items() if Path(given).exists() and Path(path).exists()
                     and os.path.samefile(given, path)), None)
        if same is not None:
            raise UserError(f"{same} and {name} are the same file ({path}); give each once")
        named[name] = Path(path)
    return named
