"""A `CheckOutcome` (core/quality.py) as a Dagster `AssetCheckResult`, its figures as metadata."""

from typing import Any

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from ingest_pipeline.core.quality import CheckOutcome


def check_result(outcome: CheckOutcome, severity: AssetCheckSeverity, upload_id: str, **extra: Any) -> AssetCheckResult:
    """The result, naming its upload in the metadata: a check's latest result is one upload's."""
    metadata = {"upload_id": upload_id, **outcome.metadata, **extra}
    return AssetCheckResult(
        passed=outcome.passed,
        severity=severity,
        description=outcome.description,
        metadata={key: _metadata_value(key, value) for key, value in metadata.items()},
    )


def _metadata_value(key: str, value: Any) -> Any:
    if value is None:
        return MetadataValue.null()
    if key == "columns" and isinstance(value, list):
        return MetadataValue.md(_markdown_table(value))
    if isinstance(value, list | dict):
        return MetadataValue.json(value)
    return value


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no columns)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
