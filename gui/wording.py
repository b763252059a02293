"""Counted nouns in the window's text: "1 region", "3 regions" (never "1 regions")."""
from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` and `noun`, in the plural (`many`, else noun + "s") unless the count is exactly one."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
