"""The report's PyTorch forms table (`--torch-forms`): each form's start-up, timed in fresh
containers that load that form alone and split by phase, beside its latency."""

from __future__ import annotations

from statistics import median

from tabulate import tabulate

from buildbench.record import ModelDetail, RuntimeSetting, Startup
from buildbench.render import fmt


def forms_table(cells: list[tuple[str, ModelDetail]]) -> str:
    """A row per cell and form where a cell timed more than one form's start-up; empty else.
    The first row of a cell is its headline's form (the cell's cold start)."""
    rows = []
    found = sorted({b for _, smoke in cells for s in smoke.settings for b in s.latency}, key=int)
    batches = list(dict.fromkeys(found[:1] + found[-1:]))  # the smallest and the largest
    for name, smoke in cells:
        timed = [s for s in smoke.settings if s.startup and s.setting.get("form")]
        if len(timed) < 2:
            continue
        for setting in timed:
            rows.append([name, _form(setting, setting is smoke.settings[0]), *_phases(setting)])
            rows[-1] += [_p50(setting, b) for b in batches]
    if not rows:
        return ""
    headers = ["cell", "form", "cold start", "import", "load", "first inference"]
    table = tabulate(
        rows, headers + [f"b={b} p50" for b in batches], tablefmt="github", disable_numparse=True
    )
    return (
        "PyTorch's forms: each form's start-up in its own fresh containers (median of the cold "
        "starts, split by phase), its latency in the cell's container.\n\n" + table
    )


def _form(setting: RuntimeSetting, headline: bool) -> str:
    name = str(setting.setting.get("form"))
    return f"{name} (headline)" if headline else name


def _phases(setting: RuntimeSetting) -> list[str]:
    runs: list[Startup] = setting.startup

    def mid(values: list[float]) -> str:
        return fmt.seconds(median(values)) if values else "-"

    return [
        mid([s.total for s in runs]),
        mid([s.framework_import for s in runs]),
        mid([s.model_load for s in runs]),
        mid([s.first_inference for s in runs]),
    ]


def _p50(setting: RuntimeSetting, batch: str) -> str:
    from buildbench.analyze.derived import quantiles

    found = setting.latency.get(batch)
    return fmt.ms(quantiles(found).p50) if found else "-"
