"""Where the pipeline keeps its state and finds its filespecs (the `ingest_settings` resource)."""

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from ingest_pipeline.core.home import DEFAULT_HOME, PROJECT_ROOT, resolve_filespecs, resolve_home
from ingest_pipeline.core.prepare import UploadWorkspace
from ingest_pipeline.core.warehouse import DEFAULT_MEMORY_LIMIT, Warehouse

__all__ = ["DEFAULT_HOME", "PROJECT_ROOT", "IngestSettings", "resolve_filespecs", "resolve_home"]


class IngestSettings(ConfigurableResource):
    """The pipeline's home folder, filespecs folder and warehouse settings.

    Unset paths are resolved when used, from INGEST_HOME / INGEST_FILESPECS, so that the command
    line, `dagster dev` and every step process agree without configuration.
    """

    home: str | None = Field(default=None, description="State folder (default: $INGEST_HOME or ./.ingest).")
    filespecs: str | None = Field(default=None, description="Filespecs folder (default: $INGEST_FILESPECS or the project's).")
    work_dir: str | None = Field(
        default=None, description="Folder of the uploads' chunk and scan files (default: $INGEST_WORK_DIR or <home>/work)."
    )  # fmt: skip
    duckdb_memory_limit: str | None = Field(
        default=None, description=f"DuckDB memory limit, beyond which it spills to disk (default: $INGEST_DUCKDB_MEMORY_LIMIT or {DEFAULT_MEMORY_LIMIT})."
    )  # fmt: skip

    @property
    def home_path(self) -> Path:
        return resolve_home(self.home)

    @property
    def filespecs_path(self) -> Path:
        return resolve_filespecs(self.filespecs)

    @property
    def warehouse_memory_limit(self) -> str:
        return self.duckdb_memory_limit or os.environ.get("INGEST_DUCKDB_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT

    def warehouse(self) -> Warehouse:
        return Warehouse(self.home_path / "warehouse.duckdb", memory_limit=self.warehouse_memory_limit)

    def workspace(self, upload_id: str) -> UploadWorkspace:
        return UploadWorkspace.of(self.home_path, upload_id, self.work_dir)
