"""What every `pond` command shares: settings, exit codes, options, parameters, output.

Exit codes (see docs/cli.md):
    0  the command did what was asked
    1  work ran and failed (a run, a stage, a backfill day), or pond itself failed
    2  the command was not valid and nothing ran: usage, unknown pipeline, bad parameter,
       bad plan JSON, bad setting, a catalog that does not answer, an unknown run or dataset
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import os
import re
import traceback
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from pond_core.errors import PondConfigError, PondError, PondSerializationError
from pond_core.layout import check_run_id as _check_run_id
from pond_core.settings import BY_NAME, Kind, Settings, Surface, parse_bool

if TYPE_CHECKING:  # the catalog pulls in SQLAlchemy and Alembic: import it only when used
    from pond_core.catalog import Catalog

OK, FAILED, INVALID, INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """An error the command reports as one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int = INVALID) -> None:
        super().__init__(message)
        self.code = code


class PondGroup(click.Group):
    """Maps every exception to a one-line message and an exit code scripts can trust."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except CliError as exc:
            _fail(ctx, str(exc), exc.code)
        except (PondConfigError, PondSerializationError) as exc:
            _fail(ctx, str(exc), INVALID)
        except PondError as exc:
            _fail(ctx, str(exc), FAILED)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted", INTERRUPTED)
        except Exception as exc:  # a bug in pond: say so, keep the exit code honest
            if os.environ.get("POND_DEBUG") == "1":
                traceback.print_exc()
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc} (set POND_DEBUG=1 for the traceback)", FAILED)


def _fail(ctx: click.Context, message: str, code: int) -> None:
    if code == INVALID:
        message = " ".join(message.split())  # usage errors are one line
    click.echo(f"error: {message}", err=True)
    ctx.exit(code)


# -- settings --------------------------------------------------------------------------------


def resolve_settings(data_root: str | None, catalog_url: str | None, executor: str | None = None) -> Settings:
    """The settings a command works with: option > POND_* environment > default."""
    return Settings.resolve(data_root=data_root, catalog_url=catalog_url, executor=executor, job_id="pond-cli")


def open_catalog(settings: Settings) -> Catalog:
    """The catalog, opened (and pinged) now, so a dead URL fails before anything runs."""
    from pond_core.runner import open_catalog as open_settings_catalog

    return open_settings_catalog(settings)


_METAVARS = {Kind.TEXT: "TEXT", Kind.SIZE: "SIZE", Kind.INTEGER: "N", Kind.TIMESTAMP: "TIME"}
_METAVAR_BY_NAME = {"data_root": "DIR", "catalog_url": "URL"}


def setting_option(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The flag of a CLI setting, derived from its declaration in pond_core.settings."""
    setting = BY_NAME[name]
    assert Surface.CLI in setting.surfaces and setting.cli_flag, f"{name} is not a CLI setting"
    help_text = f"{setting.doc} Environment: ${setting.env_names[0]}."
    if setting.kind is Kind.CHOICE:
        return click.option(setting.cli_flag, name, type=click.Choice(list(setting.choices)), help=help_text)
    return click.option(setting.cli_flag, name, metavar=_METAVAR_BY_NAME.get(name, _METAVARS.get(setting.kind, "VALUE")), help=help_text)


def storage_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--data-root and --catalog, on every command that touches runs or the catalog."""
    return setting_option("data_root")(setting_option("catalog_url")(func))


def executor_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return setting_option("executor")(func)


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout instead of tables.")(func)


def param_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
        help="A pipeline parameter; repeat for several. Values are cast to the parameter's annotated type.",
    )(func)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


# -- run ids and durations --------------------------------------------------------------------


def check_run_id(run_id: str) -> str:
    try:
        return _check_run_id(run_id)
    except PondConfigError as exc:
        raise CliError(str(exc)) from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str, what: str) -> dt.timedelta:
    """'7d', '12h', '30m', '90s', '2w'; a bare number means days."""
    match = _DURATION.match(text)
    if not match:
        raise CliError(f"{what} {text!r} is not a duration; write e.g. 7d, 12h, 30m or 0")
    return dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


# -- pipeline parameters ----------------------------------------------------------------------

_NAMED_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "dict": dict}


def parse_params(func: Callable[..., Any], pairs: tuple[str, ...]) -> dict[str, Any]:
    """`key=value` pairs, cast to the types the pipeline function declares."""
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"parameter {pair!r} must be written KEY=VALUE, e.g. -p ds=2026-11-20")
        if key in raw:
            raise CliError(f"parameter {key} is given twice")
        raw[key] = value
    kinds = param_types(func)
    return {key: cast_param(key, value, kinds.get(key)) for key, value in raw.items()}


def param_types(func: Callable[..., Any]) -> dict[str, type | None]:
    """The JSON-able type each parameter takes (from its annotation, else its default)."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: fall back to their text
        hints = {}
    kinds: dict[str, type | None] = {}
    for name, param in list(inspect.signature(func).parameters.items())[1:]:
        hint = hints.get(name, param.annotation)
        kind = _plain_type(hint) if hint is not inspect.Parameter.empty else None
        if kind is None and param.default not in (inspect.Parameter.empty, None):
            kind = type(param.default) if type(param.default) in _NAMED_TYPES.values() else None
        kinds[name] = kind
    return kinds


def _plain_type(hint: Any) -> type | None:
    if isinstance(hint, str):
        names = [h.strip() for h in hint.replace("Optional[", "").rstrip("]").split("|") if h.strip() != "None"]
        return _NAMED_TYPES.get(names[0].split("[")[0]) if len(names) == 1 else None
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _plain_type(args[0]) if len(args) == 1 else None
    hint = origin or hint
    return hint if hint in _NAMED_TYPES.values() else None


def cast_param(name: str, value: str, kind: type | None) -> Any:
    try:
        if kind is bool:
            return _bool(value)
        if kind in (int, float):
            return kind(value)
        if kind in (list, dict):
            parsed = json.loads(value)
            if not isinstance(parsed, kind):
                raise ValueError(f"expected a JSON {kind.__name__}")
            return parsed
    except ValueError as exc:
        raise CliError(f"parameter {name}={value!r} is not a valid {getattr(kind, '__name__', 'value')}: {exc}") from None
    return value


def _bool(value: str) -> bool:
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError("use true or false") from None


def with_catalog(func: Callable[..., Any]) -> Callable[..., Any]:
    """Resolve settings and open the catalog for a read-only command; close it afterwards."""

    @functools.wraps(func)
    def wrapper(*args: Any, data_root: str | None, catalog_url: str | None, **kwargs: Any) -> Any:
        settings = resolve_settings(data_root, catalog_url)
        catalog = open_catalog(settings)
        try:
            return func(*args, settings=settings, catalog=catalog, **kwargs)
        finally:
            catalog.close()

    return wrapper
