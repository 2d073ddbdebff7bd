"""Reading an upload's records: record boundaries, line numbers, cells, and encodings.

(The fast, vectorised tokenizer for whole chunks is being written; `split_raw_record` is the
one-record reading used where speed does not matter, e.g. to show a rejected row's cells.)
"""

import csv

from ingest_pipeline.core.filespec import FieldSpec, FormatKind, RecordFormat


def split_raw_record(record_format: RecordFormat, fields: list[FieldSpec], raw: str) -> list[str]:
    """The cells of one record's text, as the contract reads them (no trimming).

    Delimited: RFC 4180 cells in file order (as many as the record has). Fixed width: one cell per
    field, the slice [start-1, start-1+width) of the line padded with spaces.
    """
    if record_format.kind == FormatKind.FIXED_WIDTH:
        return [raw[f.start - 1 : f.start - 1 + f.width].ljust(f.width) for f in fields]
    rows = list(csv.reader([raw], delimiter=record_format.delimiter, quotechar=record_format.quote, strict=False))
    return rows[0] if rows else []
