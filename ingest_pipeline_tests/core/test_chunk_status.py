"""Each chunk's status as the scan steps record it, and as the warehouse tells it once merged."""

from ingest_pipeline.core.chunk_status import (
    chunk_statuses,
    chunk_statuses_from_warehouse,
    start_chunk,
    with_merged_rejects,
)
from ingest_pipeline.core.prepare import ChunkInfo, Manifest, UploadWorkspace
from ingest_pipeline.core.warehouse import Warehouse


def workspace_with_chunks(tmp_path) -> UploadWorkspace:
    workspace = UploadWorkspace(tmp_path / "work" / "u1")
    workspace.root.mkdir(parents=True)
    chunks = [ChunkInfo(1, 1, 2, 100, 5000), ChunkInfo(2, 101, 102, 100, 5000), ChunkInfo(3, 201, 202, 50, 2500)]
    manifest = Manifest("u1", "acme", "employee_roster", 1, "x.csv", "0" * 64, 12500, 250, 3, {}, chunks)
    workspace.manifest.write_text(manifest.to_json())
    return workspace


def test_chunks_are_queued_processing_completed_or_failed(tmp_path):
    workspace = workspace_with_chunks(tmp_path)
    chunk = start_chunk(workspace, 1)
    assert [c.status for c in chunk_statuses(workspace, "processing")] == ["processing", "queued", "queued"]
    chunk.done(rejected_rows=4)
    start_chunk(workspace, 3)  # a step that is still scanning, or died
    found = chunk_statuses(workspace, "processing")
    assert [(c.chunk, c.first_row, c.rows, c.status, c.rejected_rows) for c in found] == [
        (1, 1, 100, "completed", 4), (2, 101, 100, "queued", None), (3, 201, 50, "processing", None)]  # fmt: skip
    assert found[0].started_at <= found[0].finished_at
    assert [c.status for c in chunk_statuses(workspace, "failed")] == ["completed", "queued", "failed"]  # its run is over


def test_a_work_folder_removed_by_retention_gets_no_status_files(tmp_path):
    workspace = workspace_with_chunks(tmp_path)
    workspace.removal_note.write_text("removed")
    start_chunk(workspace, 1).done(0)
    assert not (workspace.root / "chunk_status").exists()


def test_without_a_manifest_there_are_no_chunks_to_show(tmp_path):
    assert chunk_statuses(UploadWorkspace(tmp_path / "nothing"), "queued") is None


def test_once_merged_the_chunks_come_from_the_warehouse_with_every_rejected_row(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    with warehouse.transaction() as connection:
        for chunk, rows in ((1, 100), (2, 100), (3, 50)):
            connection.execute("INSERT INTO ingest.stage_metrics VALUES ('u1', 'scan', ?, now(), 1.5, 1.0, 0, ?)", [chunk, rows])
        for row in (5, 100, 101, 250, 251):  # 251: not a row of any chunk
            connection.execute("INSERT INTO ingest.rejects VALUES ('u1', ?, ?, 'raw')", [row, row + 1])
        connection.execute("INSERT INTO ingest.rejects VALUES ('other', 7, 8, 'raw')")
    workspace = workspace_with_chunks(tmp_path)
    with warehouse.connect(write=False) as connection:
        rebuilt = chunk_statuses_from_warehouse(connection, "u1")
        merged = with_merged_rejects(connection, "u1", chunk_statuses(workspace, "completed"))
    assert [(c.chunk, c.first_row, c.rows, c.status, c.rejected_rows) for c in rebuilt] == [
        (1, 1, 100, "completed", 2), (2, 101, 100, "completed", 1), (3, 201, 50, "completed", 1)]  # fmt: skip
    assert [c.rejected_rows for c in merged] == [2, 1, 1]
