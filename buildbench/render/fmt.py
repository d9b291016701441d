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


def parity(summary: dict | None) -> str:
    if not summary:
        return "-"
    return f"{'ok' if summary['ok'] else 'FAIL'} ({summary['max_abs_diff']:.1e})"


def times(x: float | None) -> str:
    """A factor such as "how many times faster": 7.00x."""
    return "-" if x is None else f"{x:.2f}x"


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def one_line(text: str, width: int) -> str:
    """Whitespace collapsed to single spaces, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def md_cell(text: str) -> str:
    """Text that stays inside one cell of a Markdown table."""
    return text.replace("|", "\\|")
