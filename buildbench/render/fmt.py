"""Number formatting shared by the terminal, the reports and the messages."""

from __future__ import annotations

from collections.abc import Mapping


def size(n: float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.2f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def number(x: float) -> str:
    """Enough digits to tell 0.55 from 0.6, and no more than a reader can use."""
    if x == 0:
        return "0.0"
    # Judged on the rounded text: 0.0999 is "0.10", not "0.100"; 99.97 is "100".
    for least, digits in ((100, 0), (1, 1), (0.1, 2)):
        text = f"{x:.{digits}f}"
        if abs(float(text)) >= least:
            return text
    return f"{x:.3f}"


def seconds(x: float | None) -> str:
    return "-" if x is None else f"{number(x)} s"


def ms(x: float | None) -> str:
    return "-" if x is None else f"{number(x * 1000)} ms"


def interval(value: float | None, low: float | None, high: float | None, show: str = "s") -> str:
    """`12.3 s [11.9-13.0]`: a figure with its interval (or range), when it has one."""
    if value is None:
        return "-"
    scale, unit = (1000.0, " ms") if show == "ms" else (1.0, " s")
    text = f"{number(value * scale)}{unit}"
    if low is None or high is None or low == high:
        return text
    return f"{text} [{number(low * scale)}-{number(high * scale)}]"


def flag(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def times(x: float | None) -> str:
    """A factor such as "how many times faster": 7.00x."""
    return "-" if x is None else f"{x:.2f}x"


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def percent(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def one_line(text: str, width: int) -> str:
    """Whitespace collapsed to single spaces, cut to `width` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def md_cell(text: str) -> str:
    """Text that stays inside one cell of a Markdown table."""
    return text.replace("|", "\\|")


def metric_value(unit: str, x: float | None) -> str:
    """A metric's value as its unit reads (`analyze.metrics.Unit`)."""
    return {"seconds": seconds, "ms": ms, "bytes": size}[unit](x)


def grouped(reasons: Mapping[str, str]) -> list[str]:
    """`key: reason` pairs as lines, keys that share a reason on one: `a, b: why`."""
    keys: dict[str, list[str]] = {}
    for key, reason in reasons.items():
        keys.setdefault(reason, []).append(key)
    return [f"{', '.join(names)}: {reason}" for reason, names in keys.items()]
