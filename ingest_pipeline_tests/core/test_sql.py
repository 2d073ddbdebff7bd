"""Text reaching DuckDB: literals, file names for its readers, and settings, none of them read as SQL."""

import duckdb
import pytest

from ingest_pipeline.core.errors import WarehouseError
from ingest_pipeline.core.merge import scratch_connection
from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.sql import checked_memory_limit, sql_file, sql_read_parquet, sql_text

CRAFTED = "y'; CREATE TABLE pwned AS SELECT 42 AS a; SET temp_directory = '"


@pytest.mark.parametrize("text", ["plain", "o'brien", "''", CRAFTED, "back\\slash\\'", "line\nbreak", "naïve ☃", ""])
def test_sql_text_is_the_text_itself(text):
    with duckdb.connect() as connection:
        assert connection.execute(f"SELECT {sql_text(text)}").fetchone() == (text,)
        assert connection.execute("SELECT count(*) FROM information_schema.tables").fetchone() == (0,)


@pytest.mark.parametrize(
    ("folder", "decoy"),
    [("data[1]", "data1"), ("x*y", "xzy"), ("what?", "whatx"), ("key=value", None), (CRAFTED, None)],
)
def test_parquet_files_are_read_as_named_not_as_globs_or_partitions(tmp_path, folder, decoy):
    with duckdb.connect() as connection:
        for name, value in [(folder, "the one"), (decoy, "a decoy")]:
            if name is not None:
                (tmp_path / name).mkdir()
                target = tmp_path / name / "rows.parquet"
                connection.execute(f"COPY (SELECT {sql_text(value)} AS v) TO {sql_text(str(target))} (FORMAT parquet)")
        rows = connection.execute(f"SELECT * FROM {sql_read_parquet(tmp_path / folder / 'rows.parquet')}").fetchall()
        assert rows == [("the one",)]  # one file, one column: no decoy, no hive partition column
        assert (
            connection.execute(f"SELECT v FROM read_parquet({sql_file(tmp_path / folder / 'rows.parquet')})").fetchall()
            == rows
        )
        assert connection.execute("SELECT count(*) FROM information_schema.tables").fetchone() == (0,)


@pytest.mark.parametrize("limit", ["2GB", "512MB", "1.5 GiB", "512mib", "1g", "80%", " 2GB "])
def test_memory_limits_duckdb_reads_are_accepted(limit):
    assert checked_memory_limit(limit) == limit.strip()


@pytest.mark.parametrize("limit", ["", "lots", "2", "2GB'; CREATE TABLE pwned AS SELECT 1; --", "-1", "1e9", "2 GB GB"])
def test_other_memory_limits_are_one_sentence(limit):
    with pytest.raises(WarehouseError, match=r"^the DuckDB memory limit .* is not a size such as 2GB") as raised:
        checked_memory_limit(limit)
    assert "\n" not in str(raised.value)


def test_scratch_connection_takes_its_settings_as_values(tmp_path):
    workspace = UploadWorkspace.of(tmp_path, "u1", work_dir=tmp_path / CRAFTED)
    with scratch_connection(workspace, "1GiB") as connection:
        assert connection.execute("SELECT current_setting('memory_limit')").fetchone() == ("1.0 GiB",)
        assert connection.execute("SELECT current_setting('temp_directory')").fetchone() == (
            str(workspace.root / "duckdb_tmp"),
        )
        assert connection.execute("SELECT count(*) FROM information_schema.tables").fetchone() == (0,)
    with pytest.raises(WarehouseError, match="is not a size"):
        scratch_connection(workspace, "1GB'; CREATE TABLE pwned AS SELECT 42 AS a; SET threads = '1")
