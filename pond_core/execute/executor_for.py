"""`make_executor`: the executor a session's settings ask for (threads, or Ray warm or cold)."""

from __future__ import annotations

from collections.abc import Sequence

from pond_core.execute.executors import Executor, LocalExecutor, TaskHook
from pond_core.ray_extra import ray_setting, require_ray
from pond_core.settings import Settings


def make_executor(settings: Settings, task_hooks: Sequence[TaskHook] = ()) -> Executor:
    """The executor the settings ask for: Ray (a local one, or the cluster at ray_address) or threads."""
    if settings.use_ray:
        require_ray(ray_setting(settings.executor, settings.ray_address))  # Ray is the extra pond-core[ray]
        from pond_core.execute.ray_executor import RayExecutor  # imports Ray: only when used

        warm = settings.warm_workers if settings.warm_workers is not None else settings.ray_address is not None
        return RayExecutor(
            settings.ray_address, settings.num_executors, task_hooks=task_hooks, warm=warm, idle_seconds=settings.worker_idle_seconds,
        )
    return LocalExecutor(settings.num_executors, task_hooks=task_hooks)
