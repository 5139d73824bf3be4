"""The one exception type for bad input: the command line prints it as one line, without a traceback."""

import re

VERSION = re.compile(r"\.\d+$")  # an accession's version, as RefSeq's NC_001422.1


class UserError(Exception):
    """Input the user can fix (a missing file, a malformed FASTA, a wrong option value)."""


def first_names(names: list[str], most: int = 5) -> str:
    """The first few of a list of names for a message, "..." saying there are more."""
    return ", ".join(names[:most]) + (", ..." if len(names) > most else "")


def naming_hint(missing, present) -> str:
    """A message's ending when contigs missing from a file are there under another naming (UCSC's
    'chr1' against Ensembl's '1'; an accession with its version, NC_001422.1, against one without),
    else ''."""
    unprefixed = {name.removeprefix("chr") for name in present}
    if {name.removeprefix("chr") for name in missing} & unprefixed:
        return "; one of them names contigs with 'chr' and the other without"
    # One side's name with a version, the other's without: two versions are two sequences, no naming.
    versioned = {VERSION.sub("", name) for name in present if VERSION.search(name)}
    if any(name in versioned if not VERSION.search(name) else VERSION.sub("", name) in present for name in missing):
        return "; one of them gives accessions with their version (as NC_001422.1) and the other without"
    return ""
