"""`pond serve`: deploy the pond service (a Ray Serve application) on a running Ray cluster.

    POND_SERVICE_TOKEN=$(cat /etc/pond/token) pond serve --address HEAD:6379 --port 8000 \\
        --data-root /shared/pond --catalog-url postgresql+psycopg://pond@db/pond

Runs in the foreground, like a server: it connects to the cluster, starts Ray Serve's HTTP
proxy on --host:--port (127.0.0.1 unless told otherwise: the service runs clients' code, keep it
on a private network), deploys the app and waits. Ctrl-C or SIGTERM deletes the app (and stops
Serve when no other app is left) and exits 0. The token comes from POND_SERVICE_TOKEN or
--token-file; only its SHA-256 digest reaches the cluster. See docs/service.md.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from pond_core.cli.common import CliError, setting_option


@click.command("serve")
@click.option("--address", default=None, metavar="HEAD:PORT", help="The Ray cluster's address (default: $RAY_ADDRESS, else auto: the cluster of this node).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the HTTP proxy listens; 0.0.0.0 exposes the service to every network of the node.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="The HTTP port.")
@setting_option("data_root")
@click.option("--catalog-url", "--catalog", "catalog_url", metavar="URL", default=None, help="SQLAlchemy URL of the catalog. Environment: $POND_CATALOG_URL.")
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(1, 64), help="Service replicas (each a driver with its own attempts; see docs/service.md).")
@click.option("--max-running", default=8, show_default=True, type=click.IntRange(1, 1024), help="Stages a replica runs at once; more wait queued.")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False), help="Read the service token from this file instead of $POND_SERVICE_TOKEN.")
def serve_command(
    address: str | None, host: str, port: int, data_root: str | None, catalog_url: str | None, replicas: int, max_running: int,
    token_file: str | None,
) -> None:
    """Run the pond service on a Ray cluster until interrupted."""
    import pond_core
    from pond_core.ray_extra import require_ray
    from pond_core.service.auth import read_token, token_digest
    from pond_core.settings import Settings

    digest = token_digest(read_token(token_file))  # the plaintext goes no further than this line
    settings = Settings.resolve(data_root=data_root, catalog_url=catalog_url, job_id="pond-serve")
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    require_ray("pond serve")  # a thin client's venv has no Ray: say which extra, not ModuleNotFoundError
    _connect(address)
    from ray import serve

    from pond_core.service.server import APP_NAME, ServiceConfig, application

    config = ServiceConfig(
        ray_address=address, data_root=settings.data_root, catalog_url=settings.catalog_url, token_digest=digest,
        version=pond_core.__version__, max_running=max_running,
    )
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        serve.start(http_options={"host": host, "port": port})
        try:
            serve.run(application(config, replicas), name=APP_NAME, route_prefix="/", blocking=False)
        except RuntimeError as exc:
            raise CliError(f"the pond service did not start: {_first_lines(exc)}", code=1) from None
        click.echo(f"pond service {pond_core.__version__} at http://{host}:{port} (Ray Serve app {APP_NAME!r}, {replicas} replica(s), data root {settings.data_root})", err=True)
        while not stop.wait(0.5):
            pass
        click.echo("pond service: stopping", err=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _undeploy(APP_NAME)


def _connect(address: str) -> None:
    import ray

    from pond_core.errors import PondConfigError
    from pond_core.execute.ray_executor import _check_driver_is_a_node, _check_reachable, connection_error

    _check_reachable(address)  # fail in seconds, not after Ray's own minutes of retries
    _check_driver_is_a_node(address)
    try:
        ray.init(address=address, namespace="pond-service", log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise PondConfigError(connection_error(address, exc)) from None


def _undeploy(app_name: str) -> None:
    """Delete the app; stop Serve (freeing the port) when no other app is left."""
    from ray import serve

    try:
        serve.delete(app_name)
        if not serve.status().applications:
            serve.shutdown()
    except Exception as exc:  # the cluster went away first: nothing left to delete
        click.echo(f"pond service: could not delete the Serve app: {exc}", err=True)


def _first_lines(exc: BaseException, n: int = 12) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return "\n".join(lines[-n:])


__all__ = ["serve_command"]
