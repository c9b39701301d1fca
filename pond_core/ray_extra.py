"""Ray is an optional dependency of pond_core: the extra `pond-core[ray]`.

Why: an Airflow or Prefect worker that hands its stages to the pond service (`service_url`), or
runs pond in-process, has no use for Ray, and Ray (with its version and Python coupling to a
cluster) is the heaviest dependency pond had. So pond_core imports Ray only in the modules that
run on it (`execute/ray_*`, the service's server) and only when a setting asks for it. This
module is the one place that says so when Ray is asked for but not installed: a configuration
error naming the install command, instead of a `ModuleNotFoundError` from deep inside the run.
"""

from __future__ import annotations

import importlib.util
import sys

from pond_core.errors import PondConfigError

INSTALL_HINT = "pip install 'pond-core[ray]'"


def ray_installed() -> bool:
    """Whether `import ray` would find Ray, without importing it (that takes a second). A
    directory named `ray` on the path (Ray's own temp dir /tmp/ray, when `pond` runs in /tmp)
    is a namespace package without an origin, not Ray."""
    spec = importlib.util.find_spec("ray")
    return spec is not None and spec.origin is not None


def require_ray(what: str) -> None:
    """Raise a PondConfigError when Ray is missing; `what` names the setting that asked for it."""
    if not ray_installed():
        raise PondConfigError(
            f"{what} runs tasks on Ray, which is not installed in this environment ({sys.executable}): "
            f"install it with `{INSTALL_HINT}`, or use executor=local (threads in this process), "
            "or hand stages to a pond service with service_url"
        )


def ray_setting(executor: str, ray_address: str | None) -> str:
    """The setting that asks for Ray, as the error names it (the address itself is not repeated)."""
    return "executor=ray" if executor == "ray" else "a ray_address (executor=auto)"
