"""bedGraph tracks read as tables: apart from the BED commands (bed.py), whose environments carry no
pandas, and from the scan package, which imports torch, so that plots reads them without either."""


def bedgraph_table(source, skip: int, chunksize: int | None = None):
    """A bedGraph's (a path's or an open file's) first four columns, past `skip` header lines, as a
    pandas table, or with `chunksize` as tables of that many rows in turn. Contigs are read as written:
    pandas would take one named NA, null or nan for a missing value (and merge them, or drop them), and
    one holding a '#' for a comment."""
    import pandas as pd

    return pd.read_csv(source, sep="\t", header=None, skiprows=skip, usecols=range(4),
                       names=["contig", "start", "end", "value"],
                       dtype={"contig": str, "start": "int64", "end": "int64", "value": "float64"},
                       keep_default_na=False, na_filter=False, chunksize=chunksize)
