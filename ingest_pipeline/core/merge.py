"""The column stage and the merge: judge uniqueness across the upload, summarise each column,
and write everything into the warehouse, replacing the upload's rows in one transaction.

Everything reads the chunk Parquet files with DuckDB SQL, which streams and spills to disk, so
memory stays bounded whatever the upload's size.
"""

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ingest_pipeline.core import faults
from ingest_pipeline.core.errors import WarehouseError
from ingest_pipeline.core.faults import fault_point
from ingest_pipeline.core.filespec import FieldType, FileSpec
from ingest_pipeline.core.judge import MESSAGE_SCHEMA, QUOTED_VALUE_LIMIT, VALUE_LIMIT, field_label
from ingest_pipeline.core.metrics import StageMetrics, read_all_metrics
from ingest_pipeline.core.prepare import Manifest, UploadWorkspace
from ingest_pipeline.core.scan import record_texts, unique_raw_column
from ingest_pipeline.core.sql import scratch_duckdb, sql_read_parquet, sql_text
from ingest_pipeline.core.uploads import COMPLETED, FAILED, now
from ingest_pipeline.core.warehouse import DEFAULT_MEMORY_LIMIT, Warehouse, quote_identifier

SQL_TYPES = {
    FieldType.STRING: "VARCHAR",
    FieldType.INTEGER: "BIGINT",
    FieldType.DECIMAL: "DOUBLE",
    FieldType.DATE: "DATE",
    FieldType.DATETIME: "TIMESTAMP",
    FieldType.BOOLEAN: "BOOLEAN",
}


def _parquet(paths: list[Path]) -> str:
    return sql_read_parquet(paths, union_by_name=True)


@dataclass
class UploadCounts:
    rows_total: int
    rows_accepted: int
    rows_rejected: int
    messages: int
    errors: int
    warnings: int

    @property
    def error_rate(self) -> float:
        return self.rows_rejected / self.rows_total if self.rows_total else 0.0


class UploadFiles:
    """The Parquet files of one upload's chunk scans and column stage."""

    def __init__(self, workspace: UploadWorkspace, manifest: Manifest):
        self.workspace = workspace
        self.manifest = manifest

    def rows(self) -> str:
        return _parquet([self.workspace.scan_rows(c.index) for c in self.manifest.chunks])

    def chunk_messages(self) -> str:
        return _parquet([self.workspace.scan_messages(c.index) for c in self.manifest.chunks])

    unique_messages = property(lambda self: self.workspace.columns / "unique_messages.parquet")
    upload_messages = property(lambda self: self.workspace.columns / "upload_messages.parquet")
    column_summary = property(lambda self: self.workspace.columns / "column_summary.parquet")
    rejected_rows = property(lambda self: self.workspace.columns / "rejected_rows.parquet")
    duplicate_texts = property(lambda self: self.workspace.columns / "duplicate_texts.parquet")
    counts = property(lambda self: self.workspace.columns / "counts.json")

    def all_messages(self) -> str:
        parts = [f"SELECT * FROM {sql_read_parquet(self.upload_messages)}"]
        if self.manifest.chunks:
            parts += [f"SELECT * FROM {self.chunk_messages()}",
                      f"SELECT * FROM {sql_read_parquet(self.unique_messages)}"]  # fmt: skip
        return " UNION ALL ".join(parts)

    def check_present(self) -> None:
        missing = [c.index for c in self.manifest.chunks if not self.workspace.scan_rows(c.index).exists()]
        if missing:
            raise FileNotFoundError(f"chunk scans missing for chunks {missing[:10]}: run the scan stage (chunk_scans) first")


def scratch_connection(workspace: UploadWorkspace, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for work on Parquet files, spilling to the upload's work folder.

    The settings are connection config values, never SQL text: the memory limit comes from the
    environment and the folder from the home or work folder's name.
    """
    return scratch_duckdb(memory_limit, workspace.root / "duckdb_tmp")


MESSAGE_COLUMNS = ", ".join(MESSAGE_SCHEMA)


def profile_columns(spec: FileSpec, manifest: Manifest, workspace: UploadWorkspace, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> UploadCounts:
    """The column stage: `unique` across all chunks, the column summary, and the upload's counts."""
    files = UploadFiles(workspace, manifest)
    files.check_present()
    workspace.columns.mkdir(parents=True, exist_ok=True)
    connection = scratch_connection(workspace, memory_limit)
    try:
        connection.execute(
            "CREATE TEMP TABLE upload_messages (row_number BIGINT, line_number BIGINT, field VARCHAR, rule VARCHAR, "
            "severity VARCHAR, value VARCHAR, message VARCHAR)"
        )
        for message in manifest.upload_messages:
            connection.execute("INSERT INTO upload_messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                               [message[k] for k in MESSAGE_SCHEMA])  # fmt: skip
        connection.execute(f"COPY upload_messages TO {sql_text(str(files.upload_messages))} (FORMAT parquet)")
        fault_point(faults.COLUMNS)
        if not manifest.chunks:
            _write_empty_profiles(connection, spec, files)
        else:
            _unique_messages(connection, spec, manifest, files)
            _column_summary(connection, spec, files)
            _duplicate_texts(connection, spec, manifest, files)
            connection.execute(f"""
                COPY (
                    SELECT _row_number FROM {files.rows()} WHERE _rejected
                    UNION
                    SELECT row_number FROM {sql_read_parquet(files.unique_messages)} WHERE severity = 'error'
                ) TO {sql_text(str(files.rejected_rows))} (FORMAT parquet)
            """)  # fmt: skip
        rejected = connection.execute(f"SELECT count(*) FROM {sql_read_parquet(files.rejected_rows)}").fetchone()[0]
        messages, errors, warnings = connection.execute(
            f"SELECT count(*), count(*) FILTER (severity = 'error'), count(*) FILTER (severity = 'warning') FROM ({files.all_messages()})"
        ).fetchone()
    finally:
        connection.close()
    counts = UploadCounts(manifest.rows_total, manifest.rows_total - rejected, rejected, messages, errors, warnings)
    files.counts.write_text(json.dumps(asdict(counts)))
    return counts


def _write_empty_profiles(connection, spec: FileSpec, files: UploadFiles) -> None:
    connection.execute(f"COPY (SELECT * FROM upload_messages LIMIT 0) TO {sql_text(str(files.unique_messages))} (FORMAT parquet)")
    connection.execute(f"COPY (SELECT 0::BIGINT AS _row_number LIMIT 0) TO {sql_text(str(files.rejected_rows))} (FORMAT parquet)")
    rows = ", ".join(f"({sql_text(f.name)}, 0, 0, 0, 0, 0, NULL, NULL)" for f in spec.fields)
    connection.execute(f"""
        COPY (SELECT * FROM (VALUES {rows}) AS t(field, rows, nulls, distinct_values, errors, warnings, min_value, max_value))
        TO {sql_text(str(files.column_summary))} (FORMAT parquet)
    """)  # fmt: skip


# Rows judged for `unique` at a time. Only the rows of values that occur more than once are judged
# (found first by a grouping, which DuckDB spills to disk beyond its memory limit); when there are
# more than this many, they are first written out split by a hash of the value into buckets of
# about this many rows, and each bucket is judged alone, so the column stage's memory follows this
# and not the upload. Equal values always share a bucket, so the result is the same.
UNIQUE_BUCKET_ROWS = 4_000_000


def _unique_messages(connection, spec: FileSpec, manifest: Manifest, files: UploadFiles) -> None:
    """`unique`: the first row holding a converted value passes; every later one gets a message.

    Grouping first instead of ordering every row by value (and, past UNIQUE_BUCKET_ROWS, writing
    every row out in buckets first): the column stage of 5M roster rows took 4.6-5.2 s instead of
    5.6-6.0 (8.5-9.6 CPU s instead of 10.8-11.6)."""
    folder = files.workspace.columns / "unique_buckets"
    connection.execute("CREATE TEMP TABLE unique_found AS SELECT * FROM upload_messages LIMIT 0")
    connection.execute("CREATE TEMP TABLE duplicates (_row_number BIGINT, first_row BIGINT, first_line BIGINT)")
    for field in (f for f in spec.fields if f.unique):
        name, raw = quote_identifier(field.name), quote_identifier(unique_raw_column(field.name))
        values = f"SELECT {name} AS value, _row_number, _line_number FROM {files.rows()} WHERE _has_cells AND {name} IS NOT NULL"
        connection.execute(f"CREATE OR REPLACE TEMP TABLE repeated AS SELECT value, count(*) AS n FROM ({values}) GROUP BY value HAVING n > 1")
        repeated_rows = f"SELECT v.* FROM ({values}) v SEMI JOIN repeated USING (value)"
        rows = connection.execute("SELECT coalesce(sum(n), 0) FROM repeated").fetchone()[0]
        buckets = max(1, math.ceil(rows / UNIQUE_BUCKET_ROWS))
        if buckets == 1:
            sources = [f"({repeated_rows})"]
        else:
            shutil.rmtree(folder, ignore_errors=True)
            connection.execute(f"""
                COPY (SELECT *, hash(value) % {buckets} AS bucket FROM ({repeated_rows}))
                TO {sql_text(str(folder))} (FORMAT parquet, PARTITION_BY (bucket))
            """)  # fmt: skip
            parts = [sorted(path.glob("*.parquet")) for path in sorted(folder.glob("bucket=*"))]
            sources = [sql_read_parquet(paths) for paths in parts if paths]
        for source in sources:
            connection.execute(f"""
                INSERT INTO duplicates
                SELECT _row_number, first_row, first_line FROM (
                    SELECT _row_number, first_value(_row_number) OVER w AS first_row,
                           first_value(_line_number) OVER w AS first_line, row_number() OVER w AS position
                    FROM {source}
                    WINDOW w AS (PARTITION BY value ORDER BY _row_number)
                ) WHERE position > 1
            """)  # fmt: skip
        if buckets > 1:
            shutil.rmtree(folder, ignore_errors=True)
        label = field_label(field).replace("'", "''")
        # As judge.quoted quotes a cell in a sentence: shortened, line breaks as spaces.
        limit = QUOTED_VALUE_LIMIT
        quoted_value = f"replace(CASE WHEN length(trim(raw)) > {limit} THEN left(trim(raw), {limit - 1}) || '…' ELSE trim(raw) END, chr(10), ' ')"
        # The later rows' text is read back for them alone (the duplicates table is small and exact).
        connection.execute(f"""
            INSERT INTO unique_found
            SELECT _row_number AS row_number, _line_number AS line_number, {sql_text(field.name)} AS field,
                   'unique' AS rule, {sql_text(field.severity.value)} AS severity, left(raw, {VALUE_LIMIT}) AS value,
                   '{label} ''' || {quoted_value} || ''' is a duplicate: the same value is already on row '
                     || first_row || ' (line ' || first_line || '); each value must be unique.' AS message
            FROM duplicates d JOIN (SELECT _row_number, _line_number, {raw} AS raw FROM {files.rows()}) r USING (_row_number)
        """)  # fmt: skip
        connection.execute("DELETE FROM duplicates")
    connection.execute(f"COPY unique_found TO {sql_text(str(files.unique_messages))} (FORMAT parquet)")


def _duplicate_texts(connection, spec: FileSpec, manifest: Manifest, files: UploadFiles) -> None:
    """The record text of rows that only `unique` rejects: the chunk scans keep the text of the rows
    they reject only, so these are read back from the chunk files, one chunk at a time."""
    rows = connection.execute(f"""
        SELECT DISTINCT row_number FROM {sql_read_parquet(files.unique_messages)} u
        WHERE severity = 'error' AND NOT EXISTS (
            SELECT 1 FROM {files.rows()} r WHERE r._row_number = u.row_number AND r._rejected)
        ORDER BY row_number
    """).fetchnumpy()["row_number"]  # fmt: skip
    rows = np.asarray(rows, dtype=np.int64)
    schema = pa.schema([("row_number", pa.int64()), ("raw", pa.large_string())])
    with pq.ParquetWriter(files.duplicate_texts, schema) as writer:
        for chunk in manifest.chunks:
            lo, hi = np.searchsorted(rows, [chunk.first_row, chunk.first_row + chunk.records])
            if hi > lo:
                texts = record_texts(spec, chunk, files.workspace, rows[lo:hi] - chunk.first_row)
                frame = pl.DataFrame({"row_number": rows[lo:hi], "raw": texts})
                writer.write_table(frame.to_arrow().cast(schema))


def _column_summary(connection, spec: FileSpec, files: UploadFiles) -> None:
    """Per field: rows judged, nulls, distinct values, error and warning messages, min and max.

    Counts, mins and maxes come from one pass over the rows. Distinct values are exact: one
    `SELECT DISTINCT` per field (a grouping, which DuckDB spills to disk beyond its memory limit,
    and cheaper than `count(DISTINCT ...)`); a `unique` field's are its converted values less the
    duplicates its `unique` messages name, since every duplicate gets exactly one.
    """
    connection.execute(f"""
        CREATE TEMP TABLE field_messages AS
        SELECT field, count(*) FILTER (severity = 'error') AS errors, count(*) FILTER (severity = 'warning') AS warnings,
               count(*) FILTER (rule = 'type') AS type_failures
        FROM (SELECT field, severity, rule FROM {files.chunk_messages()}
              UNION ALL SELECT field, severity, rule FROM {sql_read_parquet(files.unique_messages)})
        WHERE field IS NOT NULL GROUP BY field
    """)  # fmt: skip
    names = [quote_identifier(f.name) for f in spec.fields]
    stats = ", ".join(
        f"count({name}) AS c{i}, min({name})::VARCHAR AS lo{i}, max({name})::VARCHAR AS hi{i}" for i, name in enumerate(names)
    )
    connection.execute(f"CREATE TEMP TABLE field_stats AS SELECT count(*) AS rows, {stats} FROM {files.rows()} WHERE _has_cells")
    selects, distincts = [], []
    for i, (field, name) in enumerate(zip(spec.fields, names, strict=True)):
        if field.unique:
            duplicates = f"SELECT count(*) FROM {sql_read_parquet(files.unique_messages)} WHERE field = {sql_text(field.name)}"
            distinct = f"(SELECT c{i} FROM field_stats) - ({duplicates})"
        else:
            distinct = f"(SELECT count(*) FROM (SELECT DISTINCT {name} FROM {files.rows()} WHERE _has_cells AND {name} IS NOT NULL))"
        distincts.append(f"SELECT {sql_text(field.name)} AS field, {distinct} AS distinct_values")
        selects.append(f"""SELECT {sql_text(field.name)} AS field, rows, rows - c{i} AS not_converted, lo{i} AS min_value,
                                  hi{i} AS max_value, {i} AS position FROM field_stats""")
    connection.execute(f"""
        COPY (
            SELECT s.field, s.rows, s.not_converted - coalesce(m.type_failures, 0) AS nulls, d.distinct_values,
                   coalesce(m.errors, 0) AS errors, coalesce(m.warnings, 0) AS warnings, s.min_value, s.max_value
            FROM ({' UNION ALL '.join(selects)}) s
            JOIN ({' UNION ALL '.join(distincts)}) d USING (field)
            LEFT JOIN field_messages m USING (field)
            ORDER BY s.position
        ) TO {sql_text(str(files.column_summary))} (FORMAT parquet)
    """)  # fmt: skip


def load_counts(workspace: UploadWorkspace) -> UploadCounts:
    return UploadCounts(**json.loads((workspace.columns / "counts.json").read_text()))


def results_table(spec: FileSpec) -> str:
    return f"results.{quote_identifier(spec.form_type)}"


# A VARCHAR field with at least this many distinct values in the upload that creates its column is
# stored with ZSTD instead of DuckDB's automatic choice. Past about a fifth of a row group (122,880
# rows) DuckDB's per-segment dictionaries mostly fail and it falls back to FSST, which costs about
# twice ZSTD's time to write (measured on 5.5M roster rows: employee_id, email, zip and manager_id
# 1.3-1.5 CPU s each automatically, 0.6-0.7 with ZSTD; the insert 10.4 -> 7.1 CPU s, the file 11%
# larger). Columns with fewer values keep the automatic choice, whose dictionaries are far smaller.
# The choice is made once, when the column is created (DuckDB cannot change it afterwards).
ZSTD_MIN_DISTINCT = 24_576


def _column_definition(name: str, sql_type: str, distinct_values: int | None) -> str:
    definition = f"{quote_identifier(name)} {sql_type}"
    if sql_type == "VARCHAR" and distinct_values is not None and distinct_values >= ZSTD_MIN_DISTINCT:
        definition += " USING COMPRESSION zstd"
    return definition


def _ensure_results_table(connection, spec: FileSpec, distinct_values: dict[str, int]) -> None:
    """Create `results.<form_type>`, or add the columns a newer filespec version introduced.

    `distinct_values` (per field, from this upload's column summary) picks each new text column's
    compression (ZSTD_MIN_DISTINCT); a `unique` text field is taken to have a distinct value per row."""
    columns = [("_upload_id", "VARCHAR"), ("_row_number", "BIGINT")]
    columns += [(f.name, SQL_TYPES[f.type]) for f in spec.fields]
    columns += [(name, "VARCHAR") for name in spec.enrich_columns]
    distinct = {**distinct_values, **{f.name: ZSTD_MIN_DISTINCT for f in spec.fields if f.unique}}
    definition = ", ".join(_column_definition(n, t, distinct.get(n)) for n, t in columns)
    connection.execute(f"CREATE TABLE IF NOT EXISTS {results_table(spec)} ({definition})")
    existing = dict(connection.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'results' AND table_name = ?",
        [spec.form_type]).fetchall())  # fmt: skip
    for name, sql_type in columns:
        column = quote_identifier(name)
        if name not in existing:
            connection.execute(f"ALTER TABLE {results_table(spec)} ADD COLUMN {_column_definition(name, sql_type, distinct.get(name))}")
        elif existing[name] != sql_type:
            # The filespec changed the field's type: convert the rows of earlier uploads if they can be.
            try:
                connection.execute(f"ALTER TABLE {results_table(spec)} ALTER COLUMN {column} TYPE {sql_type}")
            except duckdb.Error as error:
                raise WarehouseError(
                    f"results.{spec.form_type}.{name} holds {existing[name]} values from earlier uploads that cannot "
                    f"become {sql_type} as filespec version {spec.version} says ({error}); migrate or drop that table"
                ) from None


def write_findings(warehouse: Warehouse, spec: FileSpec, manifest: Manifest, workspace: UploadWorkspace) -> UploadCounts:
    """The merge: messages, rejects, column summary, stage metrics and counts, replaced in one
    transaction. The upload's rows leave `results` here too; publishing puts them back, so an
    upload that fails its quality gate on a rerun keeps no rows from an earlier run."""
    files = UploadFiles(workspace, manifest)
    counts = load_counts(workspace)
    upload_id = manifest.upload_id
    metrics = read_all_metrics(workspace.metrics)
    with warehouse.transaction() as connection:
        for table in ("messages", "rejects", "column_summary", "stage_metrics"):
            connection.execute(f"DELETE FROM ingest.{table} WHERE upload_id = ?", [upload_id])
        _delete_results(connection, spec, upload_id)
        connection.execute(f"INSERT INTO ingest.messages SELECT ?, {MESSAGE_COLUMNS} FROM ({files.all_messages()}) "
                           "ORDER BY row_number NULLS FIRST, line_number", [upload_id])  # fmt: skip
        fault_point(faults.MERGE)
        if manifest.chunks:
            # Written by the column stage since chunk scans keep only their rejects' text.
            duplicates = sql_read_parquet(files.duplicate_texts) if files.duplicate_texts.exists() else (
                "(SELECT NULL::BIGINT AS row_number, NULL::VARCHAR AS raw LIMIT 0)")  # fmt: skip
            connection.execute(f"""
                INSERT INTO ingest.rejects
                SELECT ?, r._row_number, r._line_number, coalesce(r._raw, d.raw)
                FROM {files.rows()} r SEMI JOIN {sql_read_parquet(files.rejected_rows)} x USING (_row_number)
                LEFT JOIN {duplicates} d ON d.row_number = r._row_number
                ORDER BY r._row_number
            """, [upload_id])  # fmt: skip
        connection.execute(f"INSERT INTO ingest.column_summary SELECT ?, * FROM {sql_read_parquet(files.column_summary)}",
                           [upload_id])  # fmt: skip
        if metrics:
            connection.executemany(
                "INSERT INTO ingest.stage_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [[m.upload_id, m.stage, m.chunk, m.started_at, m.seconds, m.cpu_seconds, m.peak_rss_bytes, m.rows] for m in metrics],
            )
        connection.execute(
            "UPDATE ingest.uploads SET rows_total = ?, rows_accepted = ?, rows_rejected = ?, filespec_version = ?, "
            "sha256 = ?, bytes = ? WHERE upload_id = ?",
            # An upload that fails an upload rule was never judged row by row: its counts stay null.
            [None, None, None, spec.version, manifest.sha256, manifest.bytes, upload_id] if manifest.failure else
            [counts.rows_total, counts.rows_accepted, counts.rows_rejected, spec.version, manifest.sha256,
             manifest.bytes, upload_id],
        )  # fmt: skip
    return counts


def _delete_results(connection, spec: FileSpec, upload_id: str) -> None:
    exists = connection.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'results' AND table_name = ?", [spec.form_type]
    ).fetchone()[0]
    if exists:
        connection.execute(f"DELETE FROM {results_table(spec)} WHERE _upload_id = ?", [upload_id])


def publish_results(warehouse: Warehouse, spec: FileSpec, manifest: Manifest, workspace: UploadWorkspace) -> int:
    """Replace the upload's accepted rows in `results.<form_type>` and mark it completed."""
    files = UploadFiles(workspace, manifest)
    upload_id = manifest.upload_id
    columns = ["_row_number", *[f.name for f in spec.fields], *spec.enrich_columns]
    selected = ", ".join(quote_identifier(c) for c in columns)
    distinct_values = {}
    if files.column_summary.exists():
        summary = pq.read_table(files.column_summary, columns=["field", "distinct_values"]).to_pylist()
        distinct_values = {row["field"]: row["distinct_values"] for row in summary}
    with warehouse.transaction() as connection:
        _ensure_results_table(connection, spec, distinct_values)
        connection.execute(f"DELETE FROM {results_table(spec)} WHERE _upload_id = ?", [upload_id])
        published = 0
        if manifest.chunks:
            # INSERT answers with the number of rows it inserted (no second look at the table).
            published = connection.execute(f"""
                INSERT INTO {results_table(spec)} BY NAME
                SELECT ? AS _upload_id, {selected}
                FROM {files.rows()} r ANTI JOIN {sql_read_parquet(files.rejected_rows)} x USING (_row_number)
            """, [upload_id]).fetchone()[0]  # fmt: skip
        fault_point(faults.PUBLISH)
        connection.execute(
            "UPDATE ingest.uploads SET status = ?, error = NULL, finished_at = ?, stage = 'done' WHERE upload_id = ?",
            [COMPLETED, now(), upload_id],
        )
    return published


def record_stage_metrics(warehouse: Warehouse, metrics: StageMetrics) -> None:
    """Replace one stage's row in `ingest.stage_metrics` (the merge and publish record their own)."""
    with warehouse.transaction() as connection:
        connection.execute("DELETE FROM ingest.stage_metrics WHERE upload_id = ? AND stage = ? AND chunk IS NOT DISTINCT FROM ?",
                           [metrics.upload_id, metrics.stage, metrics.chunk])  # fmt: skip
        connection.execute("INSERT INTO ingest.stage_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [metrics.upload_id, metrics.stage, metrics.chunk, metrics.started_at, metrics.seconds,
                            metrics.cpu_seconds, metrics.peak_rss_bytes, metrics.rows])  # fmt: skip


def fail_upload_after_findings(warehouse: Warehouse, upload_id: str, error: str) -> None:
    """End an upload `failed` (its messages, rejects and counts are already written)."""
    with warehouse.transaction() as connection:
        connection.execute(
            "UPDATE ingest.uploads SET status = ?, error = ?, finished_at = ?, stage = 'done' WHERE upload_id = ?",
            [FAILED, error, now(), upload_id],
        )
