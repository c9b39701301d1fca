"""Apache Airflow 3 provider for pond.

    from pond_airflow import PondHook, PondSqlOperator, PondStageOperator, pond_pipeline_group
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "PondHook": "pond_airflow.hooks.pond",
    "PondSqlOperator": "pond_airflow.operators.sql",
    "PondStageOperator": "pond_airflow.operators.stage",
    "PondStageTrigger": "pond_airflow.triggers.stage",
    "pond_pipeline_group": "pond_airflow.pipeline",
    "PondPipelineTaskGroup": "pond_airflow.pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy, so reading provider metadata never imports Airflow or pond_core.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
