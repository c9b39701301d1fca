"""Provider metadata read by Airflow through the `apache_airflow_provider` entry point.

The connection form is declared here (`conn-fields`, `ui-field-behaviour`), not with wtforms
hook methods: Airflow 3 reads this dict without importing the hook. Its fields are derived from
pond's one declaration of its settings (`pond_core.api.SETTINGS`); reading it imports neither
DuckDB nor SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

from pond_core import api


def _schema(setting: api.Setting) -> dict[str, Any]:
    """The JSON schema of a connection field, from the setting's kind."""
    if setting.kind is api.Kind.INTEGER:
        schema: dict[str, Any] = {"type": ["integer", "null"]}
        if setting.minimum is not None:
            schema["minimum"] = setting.minimum
        return schema
    if setting.kind is api.Kind.BOOLEAN:
        return {"type": ["boolean", "null"]}
    if setting.kind is api.Kind.CHOICE:
        schema = {"type": ["string", "null"], "enum": [*setting.choices, None]}
        if setting.default is not None:
            schema["default"] = setting.default
        return schema
    return {"type": ["string", "null"]}


def conn_fields() -> dict[str, dict[str, Any]]:
    """One form field per pond connection setting, in pond's own names and words. The S3
    secret key is the connection's password (a masked field), not an extra; with a service URL
    the password is the service's token instead."""
    fields = {}
    for setting in api.surface(api.Surface.CONNECTION):
        if setting.name in ("s3_secret_access_key", "service_token"):  # the password field holds either
            continue
        fields[setting.name] = {"label": setting.label, "schema": _schema(setting), "description": setting.doc}
    return fields


def _placeholders() -> dict[str, str]:
    return {s.name: s.placeholder for s in api.surface(api.Surface.CONNECTION) if s.placeholder}


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
        "triggers": [{"integration-name": "Pond", "python-modules": ["pond_airflow.triggers.stage", "pond_airflow.triggers.service"]}],
        "connection-types": [
            {
                "connection-type": "pond",
                "hook-class-name": "pond_airflow.hooks.pond.PondHook",
                "hook-name": "Pond",
                "conn-fields": conn_fields(),
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "login"],
                    "relabeling": {"password": "S3 secret access key"},  # the service token when service_url is set (docs/airflow.md)
                    "placeholders": _placeholders(),
                },
            }
        ],
    }
