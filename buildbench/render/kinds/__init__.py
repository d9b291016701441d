"""The report of each kind of smoke test, found by the kind's name: the kinds are the
registry's (`measure/smoke/kinds`), in its order; a kind without one adds nothing."""

from __future__ import annotations

from buildbench.measure.smoke.kinds import KINDS
from buildbench.render.kinds import http, model
from buildbench.render.kinds.base import KindReport

REPORTS: dict[str, KindReport] = {"model": model.REPORT, "http": http.REPORT}


def kind_reports() -> list[KindReport]:
    return [REPORTS[kind.name] for kind in KINDS if kind.name in REPORTS]
