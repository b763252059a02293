"""Wording shared by the command line and the window: counts with the right singular or plural."""
from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """'1 region', '3 regions', '0 regions' ('plural' for nouns that do not just take an s)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
