"""Every setting of pond, declared once: its name, type, default, environment variable, doc and
whether it is a secret.

`init()`, the `pond` command's flags, the Airflow connection form and the Prefect block are all
derived from `SETTINGS` (or, for `init()`'s explicit signature, checked against it by a test), so
one vocabulary holds everywhere: `data_root`, `task_threads`, `memory_limit`, ...

Resolution order for a session: explicit argument > environment (`POND_<NAME>`, then smallpond's
`SP_<NAME>`) > default. S3 settings come from the standard AWS environment and profile files
(`StorageOptions.from_env`); a connection or block may override them.

Older names that stored Airflow connections and Prefect blocks may still hold (`storage_root`,
`task_cpus`, `task_memory`) are read as aliases, with a warning.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import enum
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pond_core.errors import PondConfigError

log = logging.getLogger("pond.settings")


class Kind(enum.Enum):
    TEXT = "text"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    SIZE = "size"  # bytes; '4GB', '512MiB' or an integer
    CHOICE = "choice"
    TIMESTAMP = "timestamp"


class Surface(enum.Flag):
    """Where a setting can be given."""

    SESSION = enum.auto()  # a keyword of init()
    CLI = enum.auto()  # a flag of the `pond` command
    CONNECTION = enum.auto()  # a field of the Airflow connection and of the Prefect block


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    kind: Kind
    doc: str
    label: str
    surfaces: Surface
    default: Any = None
    secret: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    env: bool = True  # read from POND_<NAME> / SP_<NAME>
    storage_field: str | None = None  # the StorageOptions field an s3_* setting sets
    cli_flag: str | None = None
    placeholder: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def env_names(self) -> tuple[str, ...]:
        upper = self.name.upper()
        return (f"POND_{upper}", f"SP_{upper}") if self.env else ()

    def parse(self, value: Any, source: str) -> Any:
        """`value` (a string from the environment or a form, or a typed value) as this kind."""
        try:
            parsed = _PARSERS[self.kind](value)
        except (TypeError, ValueError) as exc:
            raise PondConfigError(f"{source} {self.name} = {value!r} is invalid: {exc}") from None
        if self.choices and parsed not in self.choices:
            raise PondConfigError(f"{source} {self.name} must be one of {', '.join(self.choices)}, got {parsed!r}")
        if self.minimum is not None and parsed < self.minimum:
            raise PondConfigError(f"{source} {self.name} must be >= {self.minimum}, got {parsed}")
        return parsed


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {
    "": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1 << 10, "m": 1e6, "mb": 1e6, "mib": 1 << 20,
    "g": 1e9, "gb": 1e9, "gib": 1 << 30, "t": 1e12, "tb": 1e12, "tib": 1 << 40,
}


def parse_bytes(value: int | str | None) -> int | None:
    """'4GB', '512MiB' or an integer number of bytes."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    match = _SIZE.match(str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise PondConfigError(f"cannot read {value!r} as a size; use bytes or a unit such as '4GB' or '512MiB'")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    return int(value)


def _size(value: Any) -> int:
    try:
        parsed = parse_bytes(value)
    except PondConfigError as exc:
        raise ValueError(str(exc)) from None
    assert parsed is not None
    return parsed


def _timestamp(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


_PARSERS: dict[Kind, Callable[[Any], Any]] = {
    Kind.TEXT: str,
    Kind.CHOICE: str,
    Kind.INTEGER: _integer,
    Kind.BOOLEAN: parse_bool,
    Kind.SIZE: _size,
    Kind.TIMESTAMP: _timestamp,
}

_S = Surface.SESSION
_SC = Surface.SESSION | Surface.CLI
_SN = Surface.SESSION | Surface.CONNECTION
_SCN = Surface.SESSION | Surface.CLI | Surface.CONNECTION
_N = Surface.CONNECTION
EXECUTORS = ("auto", "local", "ray")

SETTINGS: tuple[Setting, ...] = (
    Setting("job_id", Kind.TEXT, "The job (run) id; default: <UTC time>-<random>.", "Job id", _S),
    Setting("job_time", Kind.TIMESTAMP, "The job's logical time (ISO 8601); default: now.", "Job time", _S),
    Setting("job_name", Kind.TEXT, "A name for the job, kept in its status file.", "Job name", _S, default="pond"),
    Setting(
        "data_root", Kind.TEXT,
        "Storage root for run state and intermediates: a local or shared path, or s3://bucket/prefix. Default: ~/.pond/data.",
        "Data root", _SCN, cli_flag="--data-root", placeholder="s3://bucket/pond or /shared/pond", aliases=("storage_root",),
    ),
    Setting("num_executors", Kind.INTEGER, "Task slots (threads in-process, CPUs for a local Ray); default: the machine's cores.", "Executors", _S, minimum=1),
    Setting(
        "ray_address", Kind.TEXT,
        "Ray cluster address: head:6379 (the driver must be a node of that cluster), ray://head:10001, or auto. Unset: no cluster.",
        "Ray address", _SN, placeholder="ray://head:10001",
    ),
    Setting("bind_numa_node", Kind.BOOLEAN, "smallpond's option; accepted and ignored.", "Bind NUMA node", _S, default=False),
    Setting("platform", Kind.TEXT, "smallpond's option; accepted and ignored.", "Platform", _S),
    Setting(
        "executor", Kind.CHOICE, "Where tasks run: auto (Ray only when a ray_address is set), local (threads) or ray.",
        "Executor", _SCN, default="auto", choices=EXECUTORS, cli_flag="--executor",
    ),
    Setting(
        "memory_limit", Kind.SIZE, "Memory per partition task, e.g. 2GB or 512MiB; larger work spills. Default: a share of the machine's.",
        "Per-task memory", _SN, placeholder="2GB", aliases=("task_memory",),
    ),
    Setting("task_threads", Kind.INTEGER, "DuckDB threads per partition task; default: cores shared by the tasks running at once.", "Per-task threads", _SN, minimum=1, aliases=("task_cpus",)),
    Setting("max_retries", Kind.INTEGER, "Retries of a partition task after a transient failure, before its stage fails.", "Task retries inside a stage", _SN, default=2, minimum=0),
    Setting("spill_dir", Kind.TEXT, "Local directory for spill files; default: under the run (or the system temp dir for s3:// roots).", "Spill directory", _SN),
    Setting(
        "catalog_url", Kind.TEXT,
        "SQLAlchemy URL of the catalog (sqlite:///... or postgresql+psycopg://...); default: SQLite under the data root.",
        "Catalog URL", _SCN, secret=True, cli_flag="--catalog", placeholder="postgresql+psycopg://pond@db/pond",
    ),
    Setting("keep_intermediates", Kind.BOOLEAN, "Keep a session's stage outputs after it succeeds.", "Keep intermediates", _S, default=False),
    Setting(
        "max_task_memory", Kind.SIZE,
        "A task that runs out of memory is retried with twice the memory up to this, e.g. 64GB; default: the largest node's.",
        "Most memory per task", _SN,
    ),
    Setting(
        "warm_workers", Kind.BOOLEAN,
        "Run tasks on long-lived pond workers of the Ray cluster that every new driver reuses; default: on with a ray_address.",
        "Warm Ray workers", _SN,
    ),
    Setting("worker_idle_seconds", Kind.INTEGER, "A warm Ray worker with no task for this long exits.", "Warm worker idle timeout (s)", _SN, default=600, minimum=1),
    Setting("speculation", Kind.BOOLEAN, "Speculative copies of straggling tasks, the first to finish wins; default: on with Ray, off in-process.", "Speculative copies of stragglers", _SN),
    Setting(
        "progress", Kind.CHOICE,
        "A session's progress bars per stage on stderr: auto (on a terminal, for actions running over 2 s), on (always, at once) or off.",
        "Progress bars", _S, default="auto", choices=("auto", "on", "off"),
    ),
    Setting(
        "sql_strict", Kind.BOOLEAN,
        "SQL over whole datasets (sql(), PondSqlOperator, run_sql): a part of a statement that would run in one partition is an error instead.",
        "Strict SQL planning", _SN, default=False,
    ),
    Setting(
        "service_url", Kind.TEXT,
        "URL of a pond service on the cluster (`pond serve`); set, stages run there and this process needs no Ray. See docs/service.md.",
        "Pond service URL", _N | Surface.CLI, cli_flag="--service-url", placeholder="http://pond-head:8000",
    ),
    Setting(
        "service_token", Kind.TEXT, "Token the pond service requires (`pond serve` reads POND_SERVICE_TOKEN); in an Airflow connection, its password.",
        "Pond service token", _N, secret=True,
    ),
    Setting("s3_endpoint_url", Kind.TEXT, "S3-compatible endpoint, e.g. http://minio:9000; default: AWS_ENDPOINT_URL, else AWS itself.", "S3 endpoint URL", _N, env=False, storage_field="endpoint_url"),
    Setting("s3_region", Kind.TEXT, "S3 region; default: AWS_REGION.", "S3 region", _N, env=False, storage_field="region"),
    Setting("s3_access_key_id", Kind.TEXT, "S3 access key id; default: AWS_ACCESS_KEY_ID or the AWS profile.", "S3 access key id", _N, env=False, secret=True, storage_field="access_key_id"),
    Setting("s3_secret_access_key", Kind.TEXT, "S3 secret access key; default: AWS_SECRET_ACCESS_KEY or the AWS profile.", "S3 secret access key", _N, env=False, secret=True, storage_field="secret_access_key"),
    Setting("s3_session_token", Kind.TEXT, "S3 session token; default: AWS_SESSION_TOKEN.", "S3 session token", _N, env=False, secret=True, storage_field="session_token"),
    Setting("s3_url_style", Kind.CHOICE, "path (MinIO, Ceph) or vhost (AWS); default: path for a custom endpoint.", "S3 URL style", _N, env=False, choices=("path", "vhost"), storage_field="url_style"),
    Setting("s3_use_ssl", Kind.BOOLEAN, "Use HTTPS for S3; default: unless the endpoint is http://.", "S3 uses SSL", _N, env=False, storage_field="use_ssl"),
    Setting("s3_anonymous", Kind.BOOLEAN, "Read public buckets without credentials.", "S3 anonymous", _N, env=False, storage_field="anonymous"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
ALIASES: dict[str, str] = {alias: s.name for s in SETTINGS for alias in s.aliases}


def surface(which: Surface) -> tuple[Setting, ...]:
    """The settings that can be given on `which`, in declaration order."""
    return tuple(s for s in SETTINGS if which in s.surfaces)


def unknown_setting(name: str, known: list[str], where: str) -> PondConfigError:
    """The error for a setting nobody declared, naming the closest declared one."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
    return PondConfigError(f"{where}: unknown setting {name!r}; {hint}")


def from_env(setting: Setting, environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    for name in setting.env_names:
        value = env.get(name)
        if value not in (None, ""):
            return value
    return None


@dataclasses.dataclass(frozen=True)
class Settings:
    """A session's resolved settings (see the module docstring for the order)."""

    job_id: str
    job_time: dt.datetime
    job_name: str
    data_root: str
    num_executors: int | None
    ray_address: str | None
    bind_numa_node: bool
    platform: str | None
    executor: str
    memory_limit: int | None
    task_threads: int | None
    max_retries: int
    spill_dir: str | None
    catalog_url: str | None = dataclasses.field(repr=False)
    keep_intermediates: bool
    max_task_memory: int | None
    warm_workers: bool | None
    worker_idle_seconds: int
    speculation: bool | None
    progress: str
    sql_strict: bool

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> Settings:
        known = [s.name for s in surface(Surface.SESSION)]
        unknown = sorted(set(explicit) - set(known))
        if unknown:
            raise unknown_setting(unknown[0], known, "session settings")
        values: dict[str, Any] = {}
        for setting in surface(Surface.SESSION):
            given = explicit.get(setting.name)
            if given is not None:
                values[setting.name] = setting.parse(given, "setting")
                continue
            raw = from_env(setting, environ)
            if raw is not None:
                values[setting.name] = setting.parse(raw, f"environment variable {setting.env_names[0]} (or {setting.env_names[1]})")
            else:
                values[setting.name] = setting.default
        settings = cls(**_derived_defaults(values))
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse, before anything runs, a job id that is not a safe folder name (it names the
        run's folder under jobs/ and reaches SQL as part of paths)."""
        from pond_core.layout import check_run_id

        check_run_id(self.job_id)

    def replace(self, **changes: Any) -> Settings:
        parsed: dict[str, Any] = {k: BY_NAME[k].parse(v, "setting") if v is not None else v for k, v in changes.items()}
        return dataclasses.replace(self, **parsed)

    @property
    def use_ray(self) -> bool:
        return self.executor == "ray" or (self.executor == "auto" and self.ray_address is not None)

    @property
    def resolved_catalog_url(self) -> str:
        """The catalog URL, or the embedded default for this data root."""
        if self.catalog_url:
            return self.catalog_url
        return default_catalog_url(self.data_root)


def _derived_defaults(values: dict[str, Any]) -> dict[str, Any]:
    job_time = values["job_time"] or dt.datetime.now(dt.timezone.utc)
    root = values["data_root"] or os.path.join(os.path.expanduser("~"), ".pond", "data")
    return {
        **values,
        "job_time": job_time,
        "job_id": str(values["job_id"] or f"{job_time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"),
        "data_root": root if "://" in root else os.path.abspath(os.path.expanduser(root)),
    }


def default_catalog_url(data_root: str) -> str:
    """The embedded catalog of a data root: `sqlite:///<root>/catalog.sqlite` for a local root.

    An object-store root (`s3://bucket/prefix`) cannot hold a SQLite file, so its catalog is
    `~/.pond/catalog-s3-bucket-prefix.sqlite` on this machine; a deployment where several
    machines run one pipeline must set a PostgreSQL URL instead.
    """
    from urllib.parse import urlsplit

    from sqlalchemy import URL

    root = data_root
    if root.startswith("file://"):
        root = urlsplit(root).path
    if "://" not in root:
        path = os.path.join(os.path.abspath(os.path.expanduser(root)), "catalog.sqlite")
        return URL.create("sqlite", database=path).render_as_string()
    parts = urlsplit(root)
    bucket = parts.netloc.rsplit("@", 1)[-1]  # never put credentials in a file name
    name = "-".join(p for p in (parts.scheme, bucket, parts.path.strip("/")) if p)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    path = os.path.join(os.path.expanduser("~"), ".pond", f"catalog-{name}.sqlite")
    return URL.create("sqlite", database=path).render_as_string()


@dataclasses.dataclass(frozen=True)
class SettingValues:
    """Some settings by name, as an Airflow connection or a Prefect block holds them: only the
    ones set, already parsed. `repr` and `public()` never show a secret."""

    values: Mapping[str, Any]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], source: str) -> SettingValues:
        """Known names (and old aliases) of the CONNECTION surface; empty values are unset."""
        out: dict[str, Any] = {}
        for key, value in raw.items():
            name = ALIASES.get(key, key)
            if name != key:
                log.warning("%s: setting %r is now called %r; please rename it", source, key, name)
            setting = BY_NAME.get(name)
            if setting is None or Surface.CONNECTION not in setting.surfaces:
                raise unknown_setting(key, [s.name for s in surface(Surface.CONNECTION)], source)
            if value in (None, ""):
                continue
            out[name] = setting.parse(value, source)
        return cls(out)

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def merged(self, other: SettingValues) -> SettingValues:
        """These values with `other`'s on top."""
        return SettingValues({**self.values, **other.values})

    def storage_overrides(self) -> dict[str, Any]:
        """The s3_* values as StorageOptions fields."""
        return {BY_NAME[k].storage_field: v for k, v in self.values.items() if BY_NAME[k].storage_field}  # type: ignore[misc]

    def init_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `pond_core.init` (secrets included: never log them)."""
        from pond_core.io.options import StorageOptions

        kwargs = {k: v for k, v in self.values.items() if Surface.SESSION in BY_NAME[k].surfaces}  # not s3_* nor service_*
        kwargs["storage_options"] = StorageOptions.from_env(**self.storage_overrides())
        return kwargs

    def secrets(self) -> list[str]:
        """Secret values (and a catalog URL's password), so text can be scrubbed of them."""
        out = [str(v) for k, v in self.values.items() if BY_NAME[k].secret and k != "catalog_url"]
        password = url_password(self.values.get("catalog_url"))
        return out + ([password] if password else [])

    def public(self) -> dict[str, Any]:
        """JSON-able and safe to log: secrets masked, a catalog URL without its password."""
        out: dict[str, Any] = {}
        for name, value in self.values.items():
            if name == "catalog_url":
                out[name] = mask_url(value)
            elif BY_NAME[name].secret:
                out[name] = "***"
            else:
                out[name] = value
        return out

    def __repr__(self) -> str:
        return f"SettingValues({self.public()!r})"


def url_password(url: str | None) -> str | None:
    if not url:
        return None
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # not a SQLAlchemy URL: nothing to hide
        return None
    return str(password) if password else None


def mask_url(url: str) -> str:
    password = url_password(url)
    return url.replace(f":{password}@", ":***@") if password else url
