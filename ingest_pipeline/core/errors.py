"""Every exception the pipeline raises on purpose, each with one sentence a user can act on.

The command line turns these into a one-line message and an exit code; assets turn them into
the upload's `error`. Anything else that escapes is a bug and fails loudly with its traceback.
"""


class IngestError(Exception):
    """Base of the errors a user can cause; str(error) is the one-sentence explanation."""


class FilespecError(IngestError):
    """A filespec is missing, is not valid YAML, or breaks the filespec contract."""


class UnknownFormTypeError(FilespecError):
    """No filespec exists for the requested form type."""


class UploadRejectedError(IngestError):
    """The upload as a whole cannot be processed (an upload rule such as `missing_column`)."""


class SourceFileError(IngestError):
    """The upload's file cannot be read (missing, unreadable, or malformed beyond recovery)."""


class SourceChangedError(SourceFileError):
    """The file's bytes are no longer those registered (its SHA-256 differs)."""


class WorkFilesRemovedError(SourceFileError):
    """A stage was re-executed after retention removed the upload's work files (core/retention.py)."""


class ReferenceDataError(IngestError):
    """A reference table that a filespec names is missing or lacks a column."""


class StorageError(IngestError):
    """The landing storage (local folder or Azure Blob Storage) cannot be reached or read."""


class WarehouseError(IngestError):
    """The warehouse cannot take an upload's results (e.g. a column type it cannot convert)."""


class ConfigurationError(IngestError):
    """An `INGEST_*` variable has a value the pipeline cannot use."""


class ReportPeriodError(IngestError):
    """A report's period is not two dates (YYYY-MM-DD), or it starts after it ends."""


class StepWorkerLostError(IngestError):
    """A distributed run's step task lost its Celery worker, or found none taking its queue (core/worker_watch.py)."""
