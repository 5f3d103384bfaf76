"""How svar's tables, figures and messages word a count: "1 seed", "2 seeds", "1–3 seeds"."""

from __future__ import annotations


def noun(n, singular: str, plural: str | None = None) -> str:
    """The noun as it reads after the count n: singular for exactly 1, plural otherwise (0 seeds,
    2 seeds); the plural is singular + "s" unless given (class → classes)."""
    return singular if n == 1 else (plural or singular + "s")


def counted(n, singular: str, plural: str | None = None) -> str:
    """n and its noun: counted(1, "seed") == "1 seed", counted(3, "class", "classes") == "3 classes"."""
    return f"{n} {noun(n, singular, plural)}"
