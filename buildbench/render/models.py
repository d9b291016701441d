"""The report's model sections: what each smoke-test model is, parity of every output, and each
runtime setting's load time, graph size and latency (the course's exercise 5.3 in numbers)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tabulate import tabulate

from buildbench.analyze.course import Entry, entries
from buildbench.analyze.derived import quantiles
from buildbench.measure.smoke.program.parity import ACCURACY_NOTE
from buildbench.record import (
    ModelDetail,
    ModelInfo,
    OutputParity,
    RuntimeSetting,
    TensorInfo,
    model_of,
)
from buildbench.render import fmt
from buildbench.render.torchforms import forms_table
from buildbench.results import RunResults


def models_section(runs: Sequence[RunResults]) -> str:
    """One part per model (by content), every cell that ran it; empty without models."""
    found: dict[str, list[tuple[Entry, ModelDetail]]] = {}
    models: dict[str, ModelInfo] = {}
    for entry, smoke in _model_smokes(entries(runs)):
        assert smoke.model is not None
        models.setdefault(smoke.model.sha256, smoke.model)
        found.setdefault(smoke.model.sha256, []).append((entry, smoke))
    if not found:
        return ""
    several = len({e.machine for cells in found.values() for e, _ in cells}) > 1
    parts = ["## Models"]
    for sha, cells in found.items():
        parts += _model_part(models[sha], cells, several)
    parts.append(
        "Parity: every output against the host's reference (the torch form where there is "
        "one, else ONNX Runtime on the host's CPU), worst over the batch sizes; integers and "
        "booleans exactly, floats within atol + rtol x |reference|. Settings: the same "
        "container, one after another; load is the session (or module) load, for ONNX Runtime "
        "each made after the first, cold one (that one is the start-up's model load); nodes are "
        "the ONNX graph's as given and after optimisation at that level (the optimised model "
        "saved once and its nodes counted); offline loads that saved model with "
        "optimisation off." + (_ACCURACY if "| " + ACCURACY_NOTE in "\n".join(parts) else "")
    )
    return "\n\n".join(parts)


_ACCURACY = (
    " An int8 form (onnx-int8) is compared for accuracy against the fp32 reference: a value "
    "is within tolerance within 5% of its output's largest magnitude plus 5% of its own, an "
    "output passes when 99% of its values are; top-1 agreement for a classifier's scores."
)


def _model_smokes(cells: Sequence[Entry]) -> Iterator[tuple[Entry, ModelDetail]]:
    for entry in cells:
        first = model_of(entry.record.smoke)
        for one in (first, *map(model_of, first.more_models)):
            if one.model is not None:
                yield entry, one


def _cell(entry: Entry, several: bool) -> str:
    return f"{entry.machine}: {entry.record.key}" if several else entry.record.key


def _model_part(
    model: ModelInfo, cells: list[tuple[Entry, ModelDetail]], several: bool
) -> list[str]:
    facts = [
        f"{model.kind}",
        f"sha256 `{model.sha256[:12]}`",
        fmt.size(model.size_bytes),
        *([f"opset {model.opset}"] if model.opset else []),
        *([model.producer] if model.producer else []),
        *([f"{model.nodes} nodes"] if model.nodes is not None else []),
    ]
    parts = [f"### `{model.source}`", ", ".join(facts)]
    rows = [["input", *_tensor(t)] for t in model.inputs]
    rows += [["output", *_tensor(t)] for t in model.outputs]
    parts.append(tabulate(rows, ["", "name", "dtype", "shape"], tablefmt="github"))
    if model.fixed_batch:
        parts.append(
            f"Fixed batch {model.fixed_batch}: timed at its own batch only (--batch-sizes "
            "does not apply to this model)."
        )
    for framework, reason in sorted(model.not_applicable.items()):
        parts.append(f"{framework}: not applicable ({reason}).")
    parity = _parity_table(cells, several)
    if parity:
        parts.append(parity)
    settings = _settings_table(cells, several)
    if settings:
        parts.append(settings)
    offline = _offline_lines(cells, several)
    if offline:
        parts.append("\n".join(offline))
    forms = forms_table([(_cell(entry, several), smoke) for entry, smoke in cells])
    if forms:
        parts.append(forms)
    notes = [
        f"- {_cell(entry, several)}: {s.note}"
        for entry, smoke in cells
        for s in smoke.settings
        if s.note
    ]
    if notes:
        parts.append("\n".join(notes))
    return parts


def _tensor(t: TensorInfo) -> list[str]:
    shape = "?" if t.shape is None else " x ".join(map(str, t.shape)) or "scalar"
    return [f"`{t.name}`", t.dtype, shape]


def _parity_table(cells: list[tuple[Entry, ModelDetail]], several: bool) -> str:
    rows = []
    for entry, smoke in cells:
        if smoke.not_applicable:
            continue
        by_output: dict[str, list[OutputParity]] = {}
        for outputs in smoke.outputs.values():
            for name, parity in outputs.items():
                by_output.setdefault(name, []).append(parity)
        worst = _worst_name(smoke)
        for name, found in by_output.items():
            ok = all(p.ok for p in found)
            notes = [p.note for p in found if p.note and p.note.startswith(ACCURACY_NOTE)]
            rows.append(
                [
                    _cell(entry, several),
                    f"`{name}`" + (" (worst)" if name == worst and len(by_output) > 1 else ""),
                    "exact" if found[0].exact else notes[-1] if notes else "rtol/atol",
                    f"{max(p.max_abs_diff for p in found):.1e}",
                    f"{max(p.max_rel_diff for p in found):.1e}",
                    sum(p.mismatches for p in found),
                    "ok" if ok else "FAIL",
                ]
            )
    if not rows:
        return ""
    headers = ["cell", "output", "compared", "max abs diff", "max rel diff", "mismatches", ""]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _worst_name(smoke: ModelDetail) -> str | None:
    """The output furthest from its reference over every batch size."""
    scored = [
        (not p.ok, p.ratio, name)
        for outputs in smoke.outputs.values()
        for name, p in outputs.items()
    ]
    worst = max(scored, default=None)
    return worst[2] if worst and (worst[0] or worst[1] > 0) else None  # all exact: none


def _settings_table(cells: list[tuple[Entry, ModelDetail]], several: bool) -> str:
    batches = sorted({b for _, smoke in cells for s in smoke.settings for b in s.latency}, key=int)
    rows = []
    for entry, smoke in cells:
        for setting in smoke.settings:
            rows.append(
                [
                    _cell(entry, several),
                    setting.label,
                    fmt.seconds(setting.load_seconds),
                    _nodes(setting),
                    *(_p50(setting, b) for b in batches),
                    setting.error
                    or ("-" if setting.parity is None else "ok" if setting.parity.ok else "FAIL"),
                ]
            )
    if not rows:
        return ""
    headers = ["cell", "setting", "load", "nodes before -> after"]
    headers += [f"b={b} p50" for b in batches] + ["parity"]
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def _nodes(setting: RuntimeSetting) -> str:
    if setting.nodes_before is None:
        return "-"
    return f"{setting.nodes_before} -> {setting.nodes_after if setting.nodes_after else '?'}"


def _p50(setting: RuntimeSetting, batch: str) -> str:
    found = setting.latency.get(batch)
    return fmt.ms(quantiles(found).p50) if found else "-"


def _offline_lines(cells: list[tuple[Entry, ModelDetail]], several: bool) -> list[str]:
    """Online against offline optimisation at the same level, where a cell timed both."""
    lines = []
    for entry, smoke in cells:
        online = {s.setting.get("level"): s for s in smoke.settings if _plain(s, offline=False)}
        for offline in (s for s in smoke.settings if _plain(s, offline=True)):
            level = offline.setting.get("level")
            other = online.get(level)
            if other is None or other.load_seconds is None or offline.load_seconds is None:
                continue
            lines.append(
                f"- {_cell(entry, several)}: optimised at `{level}` online, the session loads "
                f"in {fmt.seconds(other.load_seconds)}; the offline-optimised model (made once "
                f"in {fmt.seconds(offline.optimise_seconds)}) loads in "
                f"{fmt.seconds(offline.load_seconds)}; the graph has {_nodes(offline)} nodes."
            )
    return lines


def _plain(setting: RuntimeSetting, offline: bool) -> bool:
    """A setting that differs from the default in its level and offline flag only."""
    s = setting.setting
    return (
        bool(s.get("offline")) == offline
        and not s.get("threads")
        and not s.get("providers")
        and setting.error is None
    )
