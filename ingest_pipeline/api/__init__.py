"""The HTTP API (`ingest-pipeline serve`) and its API keys; see docs/http-api.md."""
