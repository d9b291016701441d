"""Number formatting shared by the terminal summary and the reports."""

from __future__ import annotations


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def seconds(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


def spread(median: float | None, lo: float | None, hi: float | None, n: int) -> str:
    if median is None:
        return "-"
    return f"{median:.1f} s" if n < 2 else f"{median:.1f} s [{lo:.1f}-{hi:.1f}]"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.1f} ms"


def flag(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")
