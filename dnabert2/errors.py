"""The one exception type for bad input: the command line prints it as one line, without a traceback."""


class UserError(Exception):
    """Input the user can fix (a missing file, a malformed FASTA, a wrong option value)."""


def first_names(names: list[str], most: int = 5) -> str:
    """The first few of a list of names for a message, "..." saying there are more."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def naming_hint(missing, present) -> str:
    """A message's ending when contigs missing from a file are there under the other naming (UCSC's
    'chr1' against Ensembl's '1'), else ''."""
    unprefixed = {name.removeprefix("chr") for name in present}
    if {name.removeprefix("chr") for name in missing} & unprefixed:
        return "; one of them names contigs with 'chr' and the other without"
    return ""
