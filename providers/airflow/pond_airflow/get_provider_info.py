"""Provider metadata read by Airflow through the `apache_airflow_provider` entry point.

The connection form is declared here (`conn-fields`, `ui-field-behaviour`), not with wtforms
hook methods: Airflow 3 reads this dict without importing the hook.
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": ["string", "null"]}
_INTEGER = {"type": ["integer", "null"], "minimum": 0}

CONN_FIELDS: dict[str, dict[str, Any]] = {
    "ray_address": {
        "label": "Ray address",
        "schema": _STRING,
        "description": "head:6379 (the worker must be a node of that cluster), ray://head:10001, or auto; empty: the worker's POND_RAY_ADDRESS, else pond runs in the task's process.",
    },
    "executor": {
        "label": "Executor",
        "schema": {"type": ["string", "null"], "enum": ["auto", "local", "ray", None], "default": "auto"},
        "description": "auto uses Ray only when a Ray address is set.",
    },
    "storage_root": {
        "label": "Storage root",
        "schema": _STRING,
        "description": "Where pond keeps run state and intermediates: a shared path or s3://bucket/prefix.",
    },
    "catalog_url": {
        "label": "Catalog URL",
        "schema": _STRING,
        "description": "SQLAlchemy URL of the pond catalog (PostgreSQL for several machines); default: SQLite under the storage root.",
    },
    "task_cpus": {
        "label": "Per-task CPUs",
        "schema": _INTEGER,
        "description": "DuckDB threads per partition task.",
    },
    "task_memory": {
        "label": "Per-task memory",
        "schema": _STRING,
        "description": "Memory limit per partition task, e.g. 2GB or 512MiB; larger work spills.",
    },
    "max_retries": {
        "label": "Task retries inside a stage",
        "schema": _INTEGER,
        "description": "How often pond retries a partition task after a transient failure before the stage fails.",
    },
    "max_task_memory": {
        "label": "Most memory per task",
        "schema": _STRING,
        "description": "A task that runs out of memory is retried with twice the memory up to this, e.g. 64GB; default: the largest node's.",
    },
    "speculation": {
        "label": "Speculative copies of stragglers",
        "schema": {"type": ["boolean", "null"]},
        "description": "Copies of straggling tasks, the first to finish wins; default: on with Ray, off in-process.",
    },
    "s3_endpoint_url": {
        "label": "S3 endpoint URL",
        "schema": _STRING,
        "description": "For S3-compatible stores, e.g. http://minio:9000; empty for AWS.",
    },
    "s3_region": {"label": "S3 region", "schema": _STRING},
    "s3_access_key_id": {"label": "S3 access key id", "schema": _STRING},
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-pond",
        "name": "Pond",
        "description": "Partitioned DuckDB SQL over Parquet, in-process or on Ray, with every stage an Airflow task.",
        "integrations": [
            {
                "integration-name": "Pond",
                "external-doc-url": "https://github.com/pond-project/pond",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Pond",
                "python-modules": ["pond_airflow.operators.sql", "pond_airflow.operators.stage"],
            }
        ],
        "hooks": [{"integration-name": "Pond", "python-modules": ["pond_airflow.hooks.pond"]}],
        "triggers": [{"integration-name": "Pond", "python-modules": ["pond_airflow.triggers.stage"]}],
        "connection-types": [
            {
                "connection-type": "pond",
                "hook-class-name": "pond_airflow.hooks.pond.PondHook",
                "hook-name": "Pond",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "login"],
                    "relabeling": {"password": "S3 secret access key"},
                    "placeholders": {
                        "ray_address": "ray://head:10001",
                        "storage_root": "s3://bucket/pond or /shared/pond",
                        "catalog_url": "postgresql+psycopg://pond@db/pond",
                        "task_memory": "2GB",
                    },
                },
            }
        ],
    }
