"""The warehouse's connections: each use attaches the file to the process's DuckDB and lets go of
it afterwards, so other processes can open it the moment a use ends."""

import os
import subprocess
import sys
import threading

import duckdb
import pytest

from ingest_pipeline.core import warehouse as warehouse_module
from ingest_pipeline.core.warehouse import Warehouse


def _other_process(path, sql: str) -> str:
    """Run `sql` in a DuckDB of another process that opens the file for writing itself."""
    code = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print(c.execute(sys.argv[2]).fetchall())"
    done = subprocess.run([sys.executable, "-c", code, str(path), sql], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_after_a_write_another_process_opens_the_file_and_sees_it(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    with warehouse.transaction() as connection:
        connection.execute("CREATE TABLE results.seen (x INTEGER)")
        connection.execute("INSERT INTO results.seen VALUES (7)")
    # DuckDB's own lock is released (the other process would fail to open it otherwise) and the
    # write is in the file.
    assert _other_process(warehouse.path, "SELECT x FROM results.seen") == "[(7,)]"
    assert _other_process(warehouse.path, "INSERT INTO results.seen VALUES (8) RETURNING x") == "[(8,)]"
    with warehouse.connect(write=False) as connection:
        assert connection.execute("SELECT sum(x) FROM results.seen").fetchone() == (15,)


def test_a_transaction_left_open_is_rolled_back_and_the_file_let_go(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    with warehouse.connect() as connection:
        connection.execute("CREATE TABLE results.kept (x INTEGER)")
    with warehouse.connect() as connection:
        connection.execute("BEGIN TRANSACTION")
        connection.execute("INSERT INTO results.kept VALUES (1)")
    assert _other_process(warehouse.path, "SELECT count(*) FROM results.kept") == "[(0,)]"


def test_a_failed_statement_leaves_nothing_attached(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    with pytest.raises(duckdb.CatalogException):
        with warehouse.connect(write=False) as connection:
            connection.execute("SELECT * FROM ingest.no_such_table")
    assert _other_process(warehouse.path, "SELECT count(*) FROM ingest.uploads") == "[(0,)]"


def test_readers_in_threads_share_the_file_and_a_writer_follows_them(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    with warehouse.connect() as connection:
        connection.execute("CREATE TABLE results.counter (x INTEGER)")
    reading, release = threading.Barrier(3), threading.Event()
    seen, errors = [], []

    def reader() -> None:
        try:
            with warehouse.connect(write=False) as connection:
                reading.wait(timeout=30)  # both readers hold the file at once
                release.wait(timeout=30)
                seen.append(connection.execute("SELECT count(*) FROM results.counter").fetchone()[0])
        except Exception as error:  # reported below, with the thread's own failure
            errors.append(error)

    def writer() -> None:
        try:
            with warehouse.transaction() as connection:  # waits for both readers
                connection.execute("INSERT INTO results.counter VALUES (1)")
        except Exception as error:
            errors.append(error)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    reading.wait(timeout=30)
    writing = threading.Thread(target=writer)
    writing.start()
    writing.join(timeout=0.5)
    assert writing.is_alive(), "the writer must wait while readers hold the warehouse"
    release.set()
    for thread in [*readers, writing]:
        thread.join(timeout=30)
    assert not errors
    assert seen == [0, 0]
    with warehouse.connect(write=False) as connection:
        assert connection.execute("SELECT count(*) FROM results.counter").fetchone() == (1,)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_a_duckdb_of_its_own(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    with warehouse.connect() as connection:
        connection.execute("CREATE TABLE results.forked (x INTEGER)")
    parents = dict(warehouse_module._ENGINES._engines)
    assert parents, "the parent keeps its DuckDB between uses"
    child = os.fork()
    if child == 0:  # the child: the parent's DuckDB is not used (its threads did not come along)
        status = 1
        try:
            assert not warehouse_module._ENGINES._engines
            with warehouse.transaction() as connection:
                connection.execute("INSERT INTO results.forked VALUES (1)")
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with warehouse.connect(write=False) as connection:
        assert connection.execute("SELECT count(*) FROM results.forked").fetchone() == (1,)
