"""`pond smallpond SCRIPT.py ARGS...`: run an unchanged smallpond script on pond.

The script runs as `python SCRIPT.py ARGS...` would run it (`__name__ == "__main__"`,
`sys.argv[0]` the script, its folder first on `sys.path`), except that `import smallpond` and
`smallpond.x.y` resolve to `pond_core.compat.smallpond` for this run. The exit code is the
script's own: its `sys.exit` code, 0 when it returns, 1 after an uncaught exception (printed
with its traceback, as Python prints it).
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from types import TracebackType

import click

from pond_core.cli.common import CliError


@click.command(
    "smallpond",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("script", metavar="SCRIPT.py")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def smallpond_command(script: str, args: tuple[str, ...]) -> None:
    """Run a smallpond SCRIPT.py unchanged on pond, passing it ARGS.

    \b
    Examples:
      pond smallpond sort_urls.py -i 'data/*.tsv' -o sorted -n 10
      SP_JOBID=nightly pond smallpond pipeline.py
    """
    if not os.path.isfile(script):
        raise CliError(f"no such script: {script}")
    sys.exit(run_script(script, list(args)))


def run_script(script: str, args: list[str]) -> int:
    """Run `script` with `args` as its command line; return its exit code."""
    from pond_core.compat.aliases import smallpond_aliased

    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        with smallpond_aliased():
            runpy.run_path(script, run_name="__main__")
        return 0
    except SystemExit as exc:
        return _exit_code(exc)
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130
    except BaseException as exc:
        _print_script_traceback(exc, os.path.abspath(script))
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        sys.stdout.flush()


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter would exit with for this SystemExit."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_script_traceback(exc: BaseException, script: str) -> None:
    """The traceback from the script's first frame on, as `python SCRIPT.py` shows it."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != script:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__)
