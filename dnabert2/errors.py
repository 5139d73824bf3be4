"""The one exception type for bad input: the command line prints it as one line, without a traceback."""


class UserError(Exception):
    """Input the user can fix (a missing file, a malformed FASTA, a wrong option value)."""


def first_names(names: list[str], most: int = 5) -> str:
    """The first few of a list of names for a message, "..." saying there are more."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")
