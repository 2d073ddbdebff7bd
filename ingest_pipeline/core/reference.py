"""Reference data: the shared (`ref.<table>`) and per-company (`company.<table>`) lookup tables.

Tables are CSV files with a header row, read as text (lookups compare text). They are found
under the home folder first (`reference/ref/<table>.csv`, `reference/company/<id>/<table>.csv`,
as the contract says) and then, as an extension, under `<filespecs>/reference/` with the same
layout, so that the sample form types work on a fresh home. What an upload used is snapshotted
into its work folder when it is prepared, so reruns of later stages judge it the same way.
"""

import os
from pathlib import Path

import polars as pl

from ingest_pipeline.core.companies import company_id_problem
from ingest_pipeline.core.errors import ReferenceDataError
from ingest_pipeline.core.filespec import TABLE_NAME_RE, FileSpec


def reference_relpath(scope: str, table: str, company_id: str) -> Path:
    """`ref/<table>.csv` or `company/<company_id>/<table>.csv`; ReferenceDataError for a company id or
    table name that could name anything but one file of that folder (`..`, a '/', ...)."""
    if not TABLE_NAME_RE.fullmatch(table):
        raise ReferenceDataError(f"reference table name {table!r} must be letters, digits, '_' or '-'")
    if scope == "ref":
        return Path("ref") / f"{table}.csv"
    problem = company_id_problem(company_id)
    if problem is not None:
        raise ReferenceDataError(f"reference data of company.{table} cannot be looked up: {problem}")
    return Path("company") / company_id / f"{table}.csv"


def find_reference_table(scope: str, table: str, company_id: str, home: Path, filespecs_dir: Path) -> Path:
    """The CSV file of `<scope>.<table>` for this company, or ReferenceDataError naming where it was sought.

    Only files inside `<home>/reference/` and `<filespecs>/reference/` are ever looked at.
    """
    relpath = reference_relpath(scope, table, company_id)
    candidates = [Path(home) / "reference" / relpath, Path(filespecs_dir) / "reference" / relpath]
    for base, candidate in zip((Path(home), Path(filespecs_dir)), candidates, strict=True):
        # Belt and braces: whatever the names, the path may not leave its reference folder.
        folder = os.path.normpath(base / "reference")
        if os.path.commonpath([folder, os.path.normpath(candidate)]) != folder:
            raise ReferenceDataError(f"reference table {scope}.{table} would be read from outside {folder}")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ReferenceDataError(
        f"reference table {scope}.{table} for company {company_id!r} not found: expected {candidates[0]}"
    )


def read_reference_csv(path: Path) -> pl.DataFrame:
    """A reference table as text columns, in file order; empty cells are null (they match nothing)."""
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
    except (pl.exceptions.PolarsError, OSError) as error:
        raise ReferenceDataError(f"reference table {path} cannot be read: {error}") from None
    return frame.rename({name: name.lstrip("\ufeff").strip() for name in frame.columns})


def snapshot_name(scope: str, table: str) -> str:
    return f"{scope}.{table}.parquet"


def reference_columns(spec: FileSpec) -> dict[tuple[str, str], list[str]]:
    """The columns of each reference table the filespec reads, in first-use order."""
    needed: dict[tuple[str, str], list[str]] = {table: [] for table in spec.reference_tables}
    for spec_field in spec.fields:
        if spec_field.lookup_parts:
            scope, table, column = spec_field.lookup_parts
            needed[(scope, table)].append(column)
    for enrich in spec.enrich:
        needed[enrich.scope_and_table] += [*enrich.on.values(), *enrich.add.values()]
    return {table: list(dict.fromkeys(columns)) for table, columns in needed.items()}


def snapshot_reference_data(
    spec: FileSpec, company_id: str, home: Path, filespecs_dir: Path, snapshot_dir: Path
) -> dict[str, int]:
    """Copy every table the filespec reads into `snapshot_dir`; returns rows per `scope.table`.

    Also checks that every column the filespec names exists, so that a missing column fails the
    upload at prepare with one sentence, not a chunk halfway through the scan.
    """
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for (scope, table), columns in reference_columns(spec).items():
        path = find_reference_table(scope, table, company_id, home, filespecs_dir)
        frame = read_reference_csv(path)
        missing = sorted(set(columns) - set(frame.columns))
        if missing:
            raise ReferenceDataError(
                f"reference table {scope}.{table} ({path}) has no column {missing[0]!r}; it has {', '.join(frame.columns)}"
            )
        frame.write_parquet(snapshot_dir / snapshot_name(scope, table))
        rows[f"{scope}.{table}"] = frame.height
    return rows


def load_snapshot(snapshot_dir: Path, scope: str, table: str) -> pl.DataFrame:
    return pl.read_parquet(Path(snapshot_dir) / snapshot_name(scope, table))
