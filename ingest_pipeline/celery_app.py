"""The Celery app of a distributed deployment's workers (`INGEST_DEPLOYMENT=distributed`):

    celery -A ingest_pipeline.celery_app worker -Q dagster,warehouse --concurrency 1 --prefetch-multiplier 1

`-Q dagster` takes chunk steps (any worker); add `warehouse` (INGEST_WAREHOUSE_QUEUE) on the one
machine that has the DuckDB warehouse, for the per-upload steps. The broker and backend are the
deployment's (core/deployment.py), as in the runs' executor config, so both sides agree.
"""

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from ingest_pipeline.core.deployment import deployment_from_env

_deployment = deployment_from_env()
_config = _deployment.celery_executor_config()
app = make_app(CeleryExecutor.for_cli(broker=_config["broker"], backend=_config["backend"],
                                      config_source=_config["config_source"]).app_args())  # fmt: skip
execute_plan = create_task(app)
