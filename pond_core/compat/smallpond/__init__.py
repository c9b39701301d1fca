"""smallpond's top-level module, backed by pond: `import smallpond; sp = smallpond.init()`.

Run an unchanged smallpond script with `pond smallpond SCRIPT.py ARGS...` (the import resolves
here for that run), or import `pond_core.compat.smallpond as smallpond`. See docs/smallpond.md.
"""

from __future__ import annotations

from pond_core.compat.smallpond.dataframe import DataFrame, Session
from pond_core.compat.smallpond.session import init
from pond_core.udfs import UDF, udf

__version__ = "0.15.0+pond"

__all__ = ["UDF", "DataFrame", "Session", "init", "udf"]
