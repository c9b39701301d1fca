"""`TextEnum`: an enum whose members are their string values, in JSON, f-strings and comparisons.

Plans, manifests and catalog rows store these values as text; a member must print as that
text everywhere (Python 3.11 prints a plain `str, Enum` member as `Class.MEMBER` in f-strings).
"""

from __future__ import annotations

import enum


class TextEnum(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
