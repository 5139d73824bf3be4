"""The one exception type for bad input: the command line prints it as one line, without a traceback."""


class UserError(Exception):
    """Input the user can fix (a missing file, a malformed FASTA, a wrong option value)."""
