"""docs/settings.md, rendered from the one declaration of pond's settings.

    python -m pond_core.settings_doc > docs/settings.md

A test checks that the committed page is this rendering, so the docs cannot drift from the
code.
"""

from __future__ import annotations

import sys

from pond_core.settings import SETTINGS, Setting, Surface

HEAD = """# Settings

Every setting of pond is declared once, in `pond_core/settings.py`; this page is rendered from
that declaration (`python -m pond_core.settings_doc > docs/settings.md`). The same names are
`init()` keywords, `pond` command flags, fields of the Airflow `pond` connection and of the
Prefect `PondConfig` block.

Resolution: an explicit value (an `init()` argument, a CLI flag, a connection or block field)
wins over the environment (`POND_<NAME>`, then smallpond's `SP_<NAME>`), which wins over the
default. S3 settings default to the standard AWS environment and profile files. Secrets never
reach logs, plans, XCom, lineage or artifacts. Older connection and block field names
(`storage_root`, `task_cpus`, `task_memory`) are still read, with a warning.

| setting | type | where | environment | default | secret | meaning |
|---|---|---|---|---|---|---|
"""

TAIL = """
Besides these, `POND_HEARTBEAT_SECONDS` (stage heartbeat interval, 30; see docs/catalog.md),
`POND_RETENTION` (`pond clean`'s retention, 7d) and `POND_DEBUG=1` (the CLI prints tracebacks)
are read from the environment only.
"""


def _where(setting: Setting) -> str:
    names = [("init()", Surface.SESSION), (f"`{setting.cli_flag}`" if setting.cli_flag else "CLI", Surface.CLI), ("connection/block", Surface.CONNECTION)]
    return ", ".join(label for label, surface in names if surface in setting.surfaces)


def _row(setting: Setting) -> str:
    kind = setting.kind.value + (f" ({' / '.join(setting.choices)})" if setting.choices else "")
    env = " / ".join(f"`{n}`" for n in setting.env_names) or "AWS environment"
    default = "-" if setting.default is None else f"`{str(setting.default).lower() if isinstance(setting.default, bool) else setting.default}`"
    aliases = f" Formerly `{'`, `'.join(setting.aliases)}`." if setting.aliases else ""
    return f"| `{setting.name}` | {kind} | {_where(setting)} | {env} | {default} | {'yes' if setting.secret else ''} | {setting.doc}{aliases} |"


def render() -> str:
    return HEAD + "\n".join(_row(s) for s in SETTINGS) + "\n" + TAIL


if __name__ == "__main__":
    sys.stdout.write(render())
