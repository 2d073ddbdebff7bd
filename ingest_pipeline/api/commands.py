"""The command line of the HTTP API: `ingest-pipeline serve` and `ingest-pipeline api-key create|list|revoke`.

Kept apart from cli.py, which only registers these (`add_commands`) and dispatches to them.
"""

import argparse
import logging
import os

from ingest_pipeline.core.home import resolve_filespecs, resolve_home

EXIT_OK = 0


def add_commands(commands, with_home) -> None:
    """Adds `serve` and `api-key` to the `ingest-pipeline` subcommands."""
    serve = commands.add_parser("serve", help="serve the HTTP API (uploads, status, findings, reports) on uvicorn")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    with_home(serve)
    serve.set_defaults(run_command=run_command)

    keys = commands.add_parser("api-key", help="create, list or revoke the HTTP API's per-company keys")
    keys.set_defaults(run_command=run_command)
    actions = keys.add_subparsers(dest="action", required=True, parser_class=type(keys))
    create = actions.add_parser("create", help="make a key for a company; it is printed once, only its hash is kept")
    create.add_argument("--company", required=True, help="the company whose uploads the key sees")
    create.add_argument("--note", help="a note kept with the key (who has it, what for)")
    with_home(create, filespecs=False)
    listing = actions.add_parser("list", help="the keys (their ids, companies, when created or revoked)")
    with_home(listing, filespecs=False)
    revoke = actions.add_parser("revoke", help="revoke a key by its id; it stops working at once")
    revoke.add_argument("key_id")
    with_home(revoke, filespecs=False)


def run_command(args: argparse.Namespace) -> int:
    return {"serve": cmd_serve, "api-key": cmd_api_key}[args.command](args)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ingest_pipeline.api.app import ApiSettings, create_app
    from ingest_pipeline.core.startup import modules_loaded

    logging.basicConfig(level=logging.getLevelName(args.log_level.upper()), format="%(levelname)s:     %(message)s")
    home, filespecs = resolve_home(args.home), resolve_filespecs(args.filespecs)
    os.environ["INGEST_HOME"] = str(home)  # the storage and the warehouse readers resolve it from here
    storage = _landing_storage(home)
    settings = ApiSettings(home=home, filespecs=filespecs, storage=storage, report_links=_report_links(storage))
    app = create_app(settings)
    modules_loaded()
    print(f"HTTP API on http://{args.host}:{args.port} (docs at /docs; home {home}); Ctrl-C stops it", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.log_level == "debug",
                timeout_graceful_shutdown=10)  # fmt: skip
    return EXIT_OK


def _landing_storage(home):
    """The landing storage the sensor watches (`INGEST_STORAGE`, as `landing_storage_resource_from_env`
    reads it), built without Dagster."""
    from ingest_pipeline.core.errors import StorageError
    from ingest_pipeline.core.storage import AzureBlobLandingStorage, LocalLandingStorage

    kind = os.environ.get("INGEST_STORAGE", "local").strip().lower() or "local"
    if kind == "local":
        return LocalLandingStorage(home / "landing")
    if kind != "azure":
        raise StorageError(f"INGEST_STORAGE is {kind!r}; use 'local' or 'azure'.")
    account_url = os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
    if not account_url:
        raise StorageError("Landing storage kind 'azure' needs an Azure storage account (AZURE_STORAGE_ACCOUNT_URL).")
    from azure.storage.blob import ContainerClient

    client = ContainerClient(account_url=account_url, container_name=os.environ.get("INGEST_AZURE_CONTAINER", "uploads"),
                             credential=_azure_credential())  # fmt: skip
    return AzureBlobLandingStorage(client, os.environ.get("INGEST_AZURE_PREFIX", ""))


def _azure_credential():
    if os.environ.get("AZURE_STORAGE_KEY"):
        return os.environ["AZURE_STORAGE_KEY"]
    if os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
        return os.environ["AZURE_STORAGE_SAS_TOKEN"]
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _report_links(storage):
    """With Azure landing storage, reports are answered as download links that expire
    (ingest_pipeline/api/report_links.py); None: the workbook itself is the answer.

    A SAS token cannot sign other links, so with one (and no key) reports are answered directly too.
    """
    from ingest_pipeline.core.errors import ConfigurationError
    from ingest_pipeline.core.storage import AzureBlobLandingStorage

    if not isinstance(storage, AzureBlobLandingStorage):
        return None
    if not os.environ.get("AZURE_STORAGE_KEY") and os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
        logging.getLogger("ingest_pipeline.api").warning(
            "reports are answered as workbooks, not links: a SAS token (AZURE_STORAGE_SAS_TOKEN) cannot sign links"
        )
        return None
    from azure.storage.blob import BlobServiceClient

    from ingest_pipeline.api.app import _env_number
    from ingest_pipeline.api.report_links import (
        DEFAULT_REPORT_CONTAINER,
        DEFAULT_REPORT_LINK_SECONDS,
        REPORT_CONTAINER_ENV,
        REPORT_LINK_SECONDS_ENV,
        REPORT_PREFIX_ENV,
        AzureReportLinks,
        check_apart_from_landing,
    )

    container = os.environ.get(REPORT_CONTAINER_ENV, "").strip() or DEFAULT_REPORT_CONTAINER
    prefix = os.environ.get(REPORT_PREFIX_ENV, "")
    problem = check_apart_from_landing(container, prefix, storage.container_client.container_name, storage.prefix)
    if problem is not None:
        raise ConfigurationError(problem)
    lifetime = _env_number(REPORT_LINK_SECONDS_ENV, DEFAULT_REPORT_LINK_SECONDS, int)
    service = BlobServiceClient(account_url=os.environ["AZURE_STORAGE_ACCOUNT_URL"], credential=_azure_credential())
    return AzureReportLinks(service, container, prefix, lifetime, os.environ.get("AZURE_STORAGE_KEY") or None)


def cmd_api_key(args: argparse.Namespace) -> int:
    """A bad company id or an unknown key id is a usage error (one line, exit 2)."""
    from ingest_pipeline.api.keys import ApiKeyError
    from ingest_pipeline.cli import UsageError

    try:
        return _api_key(args)
    except ApiKeyError as error:
        raise UsageError(str(error)) from None


def _api_key(args: argparse.Namespace) -> int:
    from ingest_pipeline.api.keys import ApiKeyStore

    store = ApiKeyStore(resolve_home(args.home))
    if args.action == "create":
        record, key = store.create(args.company, args.note)
        print(f"API key {record.key_id} for company {record.company_id} (shown once; only its hash is kept in {store.path}):")
        print(key)
        return EXIT_OK
    if args.action == "revoke":
        record = store.revoke(args.key_id)
        print(f"API key {record.key_id} of company {record.company_id} revoked at {record.revoked_at}")
        return EXIT_OK
    keys = store.all()
    if not keys:
        print(f"no API keys in {store.path}")
        return EXIT_OK
    rows = [("key_id", "company", "created_at", "revoked_at", "note")] + [
        (k.key_id, k.company_id, k.created_at, k.revoked_at or "-", k.note or "") for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK
