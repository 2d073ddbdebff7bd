"""Text that reaches DuckDB: quoted literals, file paths for its readers, and connection settings.

Values go to DuckDB as parameters wherever it takes them. Where it does not (file names in
`read_parquet(...)` and `COPY ... TO`, names of columns), they are quoted here, so that no text a
user controls (a home folder, a work folder, a field name) is ever read as SQL. Settings go in
`duckdb.connect(config=...)`, never into a `SET` statement.
"""

import re
from pathlib import Path

import duckdb

from ingest_pipeline.core.errors import WarehouseError

# A size DuckDB reads: a number and a unit (1000- or 1024-based), or a share of the machine's memory.
_MEMORY_LIMIT_RE = re.compile(r"\s*[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|[KMGT]|B|%)\s*", re.IGNORECASE)
# DuckDB's file readers expand these in a file name (a glob); inside brackets each stands for itself.
_GLOB_CHARACTERS = re.compile(r"[*?\[]")


def sql_text(text: str) -> str:
    """`text` as a SQL string literal: in single quotes, a quote doubled (DuckDB has no backslash escapes)."""
    return "'" + str(text).replace("'", "''") + "'"


def sql_file(path: str | Path) -> str:
    """A file name for DuckDB's readers (`read_parquet`, `read_csv`) that names that one file.

    Those readers treat `*`, `?` and `[...]` as a glob: a home folder named `data[1]` would read
    `data1/` instead, and `*` any sibling. Each such character is put in brackets, where it is
    literal, and the whole is a quoted literal. (`COPY ... TO` takes its name as it is: `sql_text`.)
    """
    return sql_text(_GLOB_CHARACTERS.sub(lambda match: f"[{match.group(0)}]", str(path)))


def sql_read_parquet(paths: list[str | Path] | str | Path, union_by_name: bool = False) -> str:
    """`read_parquet(...)` of exactly these files: names as `sql_file` makes them, and no hive
    partitioning, which would otherwise turn a folder named `key=value` anywhere on the path
    (a home folder, say) into an extra column."""
    files = paths if isinstance(paths, list) else [paths]
    options = ", hive_partitioning = false" + (", union_by_name = true" if union_by_name else "")
    return f"read_parquet([{', '.join(sql_file(p) for p in files)}]{options})"


def checked_memory_limit(memory_limit: str) -> str:
    """`memory_limit` if it is a size DuckDB reads (`2GB`, `512MiB`, `1.5 GB`, `80%`), else WarehouseError."""
    if not isinstance(memory_limit, str) or not _MEMORY_LIMIT_RE.fullmatch(memory_limit):
        raise WarehouseError(
            f"the DuckDB memory limit {memory_limit!r} (INGEST_DUCKDB_MEMORY_LIMIT) is not a size such as "
            "2GB, 512MB or 1.5GiB"
        )
    return memory_limit.strip()


def open_duckdb(path: str | Path = ":memory:", *, read_only: bool = False, memory_limit: str,
                temp_directory: Path, **settings) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection whose settings are config values, never SQL text, and with no progress
    bar (DuckDB would draw it on the command's stdout)."""
    config = {"memory_limit": checked_memory_limit(memory_limit), "temp_directory": str(temp_directory), **settings}
    connection = duckdb.connect(str(path), read_only=read_only, config=config)
    connection.execute("SET enable_progress_bar = false")  # not settable as config at connect
    return connection


def scratch_duckdb(memory_limit: str, temp_directory: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB limited to `memory_limit`, spilling to `temp_directory`."""
    try:
        return open_duckdb(memory_limit=memory_limit, temp_directory=temp_directory, preserve_insertion_order=False)
    except duckdb.Error as error:
        raise WarehouseError(f"DuckDB refused its settings ({memory_limit!r}, {temp_directory}): {error}") from None
