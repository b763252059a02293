"""Wording shared by the command line and the window: counts with the right singular or plural, byte sizes."""
from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """'1 region', '3 regions', '0 regions' ('plural' for nouns that do not just take an s)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def byte_size(number: int) -> str:
    """'0 B', '740 kB', '12.5 MB', '3.2 GB' (binary multiples, as file managers show them on Windows)."""
    for unit, shift in (("GB", 30), ("MB", 20), ("kB", 10)):
        if number >= 1 << shift:
            value = number / (1 << shift)
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{number} B"
