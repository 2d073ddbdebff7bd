from setuptools import find_packages, setup

setup(
    name="ingest_pipeline",
    version="0.1.0",
    description="Dagster pipeline that turns large client file uploads into validated DuckDB tables.",
    packages=find_packages(exclude=["ingest_pipeline_tests*"]),
    python_requires=">=3.11,<3.12",
    # Direct dependencies, pinned; constraints.txt pins everything they pull in.
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-azure==0.29.27",
        "dagster-duckdb==0.29.27",
        "duckdb==2.0.1",
        "polars==2.1.0",
        "pandera[polars]==0.35.0",
        "pydantic==2.14.4",
        "pyarrow==26.0.1",
        "numpy==2.4.6",
        "PyYAML==6.0.4",
        "azure-storage-blob==12.31.1",
        "azure-identity==1.27.0",
        "openpyxl==3.1.5",
        "xlrd==2.0.2",  # legacy .xls layout sheets (import-spec)
        "psutil==7.2.2",
        "fastapi==0.165.0",
        "uvicorn==0.54.0",
    ],
    # playwright drives Debian's chromium (scripts/setup.sh installs it) in the tests marked `browser`.
    # `distributed`: steps on Celery workers (broker Redis) or Kubernetes Jobs, the Dagster instance on PostgreSQL
    # (docs/storage-and-scaling.md); scripts/setup.sh installs it so that its test runs.
    extras_require={
        "dev": ["pytest==9.2.0", "jsonschema==4.26.0", "pytest-timeout==2.4.0", "ruff==0.17.6", "playwright==1.65.2"],
        "distributed": ["dagster-celery==0.29.27", "dagster-postgres==0.29.27", "celery==5.7.0", "redis==8.1.0",
                        "dagster-k8s==0.29.27"],
    },
    entry_points={"console_scripts": ["ingest-pipeline=ingest_pipeline.cli:main"]},
)
