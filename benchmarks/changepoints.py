"""Which change-point method `buildbench history` uses, and the evidence for it.

Generates many synthetic histories (one value per run, as a cell's median build time or its
image size), runs each candidate on them and prints two Markdown tables. The first scores
detection on its own, as % of series:

- step12-NOISE: 12 runs, one +15% step at run index 7 (the 8th run), under uniform +-5%
  noise, gaussian noise (sigma 2.5%, so 95% of runs within +-5%; and sigma 5%), and "spiky"
  noise (gaussian 2.5% with an 8% chance per run of a +20..40% slow outlier): the share whose
  only shift is at index 7 (exact location, no extra shift);
- late12: the step in the last 2 runs of 12; small8%: an 8% step; revert24: +15% for runs
  8..15 of 24, then fixed (both shifts exact);
- nullN-NOISE: step-free series of 12 and 50 runs: the share with any shift (false positives);
- const: image sizes are often exactly constant: none must be found, and a jump (+15%, +0.5%,
  or +15% and back) must be found exactly;
- bytes=seconds: the share of step12-uniform5 series with the same shifts in seconds and in
  bytes (x 2e6); then the run time per series of 12 and of 50 runs.

The second simulates `history --fail-on-regression` after every run of growing histories
(12..24 runs, +15% from run index 16) under several rules for "the newest run starts a worse
segment": how many regressions fail the gate, how soon, how often, and how often step-free
histories fail it.

Candidates: ruptures PELT with the l2, l1, rbf and normal costs on the series divided by its
median ("rel") or standardised by a robust noise estimate ("z"), at several penalties;
buildbench's own E-divisive (buildbench.analyze.changepoints) at two alphas; and, with
`--edivisive PYTHON`, MongoDB's E-divisive means (signal-processing-algorithms) run in the
Python named: a separate venv, as the package pins numpy<2, gevent and setuptools<71 and so
cannot share buildbench's environment:

    python3 -m venv /tmp/edm && /tmp/edm/bin/pip install signal-processing-algorithms
    .venv/bin/python benchmarks/changepoints.py --edivisive /tmp/edm/bin/python

--only NAME runs the candidates whose name contains NAME, --no-gate and --gate-only one table,
--check-gate checks newest_starts_worse_segment against the simulated rule it ships. The full
run takes about 20 minutes on 2 cores, most of it in PELT (pure Python) on 50-run series.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path

import numpy as np
import ruptures as rpt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from buildbench.analyze.changepoints import (
    Shift,
    detect_shifts,
    newest_starts_worse_segment,
)

Detector = Callable[[np.ndarray], list[int]]
Noise = Callable[[np.random.Generator, int], np.ndarray]

MIN_SIZE = 2
BASE_SECONDS = 600.0
BASE_BYTES = 1.2e9
BYTES_PER_SECOND = 2e6  # the scale check: seconds become ~1e9 "bytes"
NOISE_FLOOR = 1e-3


# ---------------------------------------------------------------------------------------------
# Synthetic histories


def uniform5(rng: np.random.Generator, n: int) -> np.ndarray:
    return 1.0 + rng.uniform(-0.05, 0.05, n)


def gauss(sigma: float) -> Noise:
    def noise(rng: np.random.Generator, n: int) -> np.ndarray:
        return 1.0 + rng.normal(0.0, sigma, n)

    return noise


def spiky(rng: np.random.Generator, n: int) -> np.ndarray:
    """Build times as CI sees them: mostly quiet, now and then one slow run (network, cache)."""
    spikes = np.where(rng.random(n) < 0.08, rng.uniform(1.2, 1.4, n), 1.0)
    return (1.0 + rng.normal(0.0, 0.025, n)) * spikes


NOISES: dict[str, Noise] = {
    "uniform5": uniform5,
    "gauss2.5": gauss(0.025),
    "gauss5": gauss(0.05),
    "spiky": spiky,
}


def stepped(
    noise: Noise, n: int, at: int | None, step: float, until: int | None = None
) -> Callable[[int], np.ndarray]:
    """Build times: +`step` from run index `at` (to `until`, where it is fixed again)."""

    def make(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        level = np.ones(n)
        if at is not None:
            level[at:until] *= 1.0 + step
        return BASE_SECONDS * level * noise(rng, n)

    return make


def constant(
    n: int, at: int | None, step: float, until: int | None = None
) -> Callable[[int], np.ndarray]:
    """Image sizes: exactly constant, + `step` from run index `at` (to `until`)."""

    def make(seed: int) -> np.ndarray:
        values = np.full(n, BASE_BYTES)
        if at is not None:
            values[at:until] = round(BASE_BYTES * (1.0 + step))
        return values

    return make


@dataclass(frozen=True)
class Scenario:
    name: str
    make: Callable[[int], np.ndarray]
    expected: list[int]  # the shifts; [] for step-free series, where any shift is false
    trials: int | None = None  # None: --trials; 1 for deterministic series


def scenarios() -> list[Scenario]:
    found = [
        Scenario(f"step12-{name}", stepped(noise, 12, 7, 0.15), [7])
        for name, noise in NOISES.items()
    ]
    found += [
        Scenario("late12-uniform5", stepped(uniform5, 12, 10, 0.15), [10]),
        Scenario("small8%-uniform5", stepped(uniform5, 12, 7, 0.08), [7]),
        Scenario("revert24-uniform5", stepped(uniform5, 24, 8, 0.15, until=16), [8, 16]),
    ]
    for n in (12, 50):
        found += [
            Scenario(f"null{n}-{name}", stepped(noise, n, None, 0.0), [])
            for name, noise in NOISES.items()
        ]
    found += [
        Scenario("const12", constant(12, None, 0.0), [], trials=1),
        Scenario("const12-jump15%", constant(12, 7, 0.15), [7], trials=1),
        Scenario("const12-jump0.5%", constant(12, 7, 0.005), [7], trials=1),
        Scenario("const50-jump0.5%", constant(50, 30, 0.005), [30], trials=1),
        Scenario("const24-revert15%", constant(24, 8, 0.15, until=16), [8, 16], trials=1),
    ]
    return found


# ---------------------------------------------------------------------------------------------
# Candidates


def relative(x: np.ndarray) -> np.ndarray:
    """The series in units of its median: 1.0 is typical, 1.15 is 15% above it."""
    scale = abs(float(np.median(x))) or 1.0
    return x / scale


def standardised(x: np.ndarray) -> np.ndarray:
    """Relative series in units of its noise, estimated from run-to-run differences (MAD)."""
    rel = relative(x)
    sigma = 1.0484 * float(np.median(np.abs(np.diff(rel)))) if len(rel) > 1 else 0.0
    return (rel - float(np.median(rel))) / max(sigma, NOISE_FLOOR)


def pelt(model: str, pen: float, norm: Callable[[np.ndarray], np.ndarray]) -> Detector:
    def run(x: np.ndarray) -> list[int]:
        if len(x) < 2 * MIN_SIZE:
            return []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CostNormal warns on every construction
            algo = rpt.Pelt(model=model, min_size=MIN_SIZE, jump=1)
        return [int(b) for b in algo.fit(norm(x)).predict(pen=pen)[:-1]]

    return run


def own_edivisive(alpha: float) -> Detector:
    """buildbench's own E-divisive (buildbench.analyze.changepoints), deterministic."""

    def run(x: np.ndarray) -> list[int]:
        return [s.index for s in detect_shifts(x.tolist(), min_size=MIN_SIZE, alpha=alpha)]

    return run


def candidates() -> dict[str, Detector]:
    found: dict[str, Detector] = {}
    for pen in (0.01, 0.02):
        found[f"PELT l2 rel pen={pen}"] = pelt("l2", pen, relative)
    for pen in (8.0, 12.0, 16.0, 25.0):
        found[f"PELT l2 z pen={pen:g}"] = pelt("l2", pen, standardised)
    for pen in (5.0, 7.0, 9.0):
        found[f"PELT l1 z pen={pen:g}"] = pelt("l1", pen, standardised)
    for pen in (2.0, 3.0):
        found[f"PELT rbf rel pen={pen:g}"] = pelt("rbf", pen, relative)
    found["PELT normal rel pen=20"] = pelt("normal", 20.0, relative)
    for alpha in (0.03, 0.05):
        found[f"buildbench E-divisive alpha={alpha}"] = own_edivisive(alpha)
    return found


# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass
class Outcome:
    detections: list[list[int]]
    seconds: list[float]


Runner = Callable[[list[np.ndarray]], Outcome]


def run_detector(detect: Detector, series: list[np.ndarray]) -> Outcome:
    detections, seconds = [], []
    for x in series:
        start = time.perf_counter()
        detections.append(detect(x))
        seconds.append(time.perf_counter() - start)
    return Outcome(detections, seconds)


EDIVISIVE = """
import json, sys, time
import numpy as np
from signal_processing_algorithms.energy_statistics.energy_statistics import e_divisive
job = json.load(sys.stdin)
np.random.seed(job["seed"])  # e_divisive permutes with numpy's global generator
out = {"detections": [], "seconds": []}
for x in job["series"]:
    start = time.perf_counter()
    found = e_divisive(np.asarray(x), pvalue=job["pvalue"], permutations=job["permutations"])
    out["seconds"].append(time.perf_counter() - start)
    out["detections"].append(sorted(int(i) for i in found))
json.dump(out, sys.stdout)
"""


def edivisive(python: str, pvalue: float, permutations: int) -> Runner:
    def run(series: list[np.ndarray]) -> Outcome:
        job = {
            "seed": 0,
            "pvalue": pvalue,
            "permutations": permutations,
            "series": [x.tolist() for x in series],
        }
        done = subprocess.run(
            [python, "-c", EDIVISIVE], input=json.dumps(job), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"E-divisive failed:\n{done.stderr}")
        data = json.loads(done.stdout)
        return Outcome(data["detections"], data["seconds"])

    return run


def score(scenario: Scenario, outcome: Outcome) -> str:
    """Step scenarios: % of series whose shifts are exactly the steps; step-free: % with any."""
    found = outcome.detections
    if not scenario.expected:
        return _pct(sum(1 for d in found if d) / len(found))
    return _pct(sum(1 for d in found if d == scenario.expected) / len(found))


def _pct(share: float) -> str:
    return f"{100 * share:.1f}"


def scale_free(outcome_s: Outcome, outcome_b: Outcome) -> str:
    same = sum(a == b for a, b in zip(outcome_s.detections, outcome_b.detections, strict=True))
    return _pct(same / len(outcome_s.detections))


# ---------------------------------------------------------------------------------------------
# The gate: `history --fail-on-regression` run after every run of a growing history

GATE_RUNS = 24
GATE_STEP_AT = 16
GATE_FIRST = 12  # the gate is evaluated on histories of 12..24 runs
# The gate simulation is slow (14 detections a history): only these candidates run it.
GATE_CANDIDATES = ("E-divisive", "l1 z pen=7", "l2 z pen=12")


def as_shifts(x: np.ndarray, indices: list[int]) -> list[Shift]:
    bounds = [0, *indices, len(x)]
    medians = [float(np.median(x[a:b])) for a, b in pairwise(bounds)]
    return [
        Shift(i, before, after, after / before)
        for i, before, after in zip(indices, medians[:-1], medians[1:], strict=True)
    ]


def worse_newest(x: np.ndarray, indices: list[int]) -> Shift | None:
    shifts = as_shifts(x, indices)
    return shifts[-1] if shifts and shifts[-1].after > shifts[-1].before else None


def gate_young(x: np.ndarray, now: list[int], before: list[int]) -> bool:
    """Fails when the newest run is among the first MIN_SIZE runs of a worse newest segment."""
    shift = worse_newest(x, now)
    return shift is not None and shift.index >= len(x) - MIN_SIZE


def gate_new(max_age: int | None) -> Gate:
    """Fails when the newest segment is worse, at most `max_age` runs long, and the history
    without the newest run did not show it yet (no worse shift within MIN_SIZE runs of it):
    once per regression, however many runs its detection took. With max_age 6 this is
    newest_starts_worse_segment's rule (checked against it by `--check-gate`)."""

    def fails(x: np.ndarray, now: list[int], before: list[int]) -> bool:
        shift = worse_newest(x, now)
        if shift is None or (max_age is not None and shift.index < len(x) - max_age):
            return False
        if shift.index >= len(x) - MIN_SIZE:
            return True
        seen = as_shifts(x[:-1], before)
        return not any(abs(s.index - shift.index) <= MIN_SIZE and s.after > s.before for s in seen)

    return fails


Gate = Callable[[np.ndarray, list[int], list[int]], bool]


def gate_belongs(max_age: int) -> Gate:
    """Fails while the newest run belongs to a worse newest segment of at most max_age runs."""

    def fails(x: np.ndarray, now: list[int], before: list[int]) -> bool:
        shift = worse_newest(x, now)
        return shift is not None and shift.index >= len(x) - max_age

    return fails


GATES: dict[str, Gate] = {
    "young": gate_young,
    "belongs, age<=4": gate_belongs(4),
    "new, age<=4": gate_new(4),
    "new, age<=6 (shipped)": gate_new(6),
    "new": gate_new(None),
}


GATE_NOISES = ("uniform5", "gauss2.5", "spiky")
GATE_LENGTHS = range(GATE_FIRST - 1, GATE_RUNS + 1)  # one shorter: the first "before"


@dataclass
class GateRun:
    """One candidate's detections on every prefix of the stepped and the step-free histories."""

    stepped: list[tuple[np.ndarray, list[list[int]]]]
    null: list[tuple[np.ndarray, list[list[int]]]]


def gate_run(run: Runner, noise: Noise, trials: int) -> GateRun:
    stepped_h = [stepped(noise, GATE_RUNS, GATE_STEP_AT, 0.15)(s) for s in range(trials)]
    null_h = [stepped(noise, GATE_RUNS, None, 0.0)(s + 10**6) for s in range(trials)]
    found = iter(run([h[:n] for h in stepped_h + null_h for n in GATE_LENGTHS]).detections)
    per_history = [(h, [next(found) for _ in GATE_LENGTHS]) for h in stepped_h + null_h]
    return GateRun(per_history[:trials], per_history[trials:])


def fired(gate: Gate, history: np.ndarray, found: list[list[int]]) -> list[int]:
    """The history lengths at which the gate fails."""
    steps = zip(GATE_LENGTHS[1:], found[1:], found[:-1], strict=True)
    return [n for n, now, was in steps if gate(history[:n], now, was)]


def gate_scores(done: GateRun, gate: Gate) -> list[str]:
    """Over growing histories: the regression caught (%), runs after the step until the gate
    fails (median; 1 = on the step's 2nd run), fails per regression, and on step-free
    histories the % of gate evaluations that fail."""
    on_step = [fired(gate, h, found) for h, found in done.stepped]
    on_null = [fired(gate, h, found) for h, found in done.null]
    caught = [f for f in on_step if any(n > GATE_STEP_AT for n in f)]
    delays = [min(n for n in f if n > GATE_STEP_AT) - GATE_STEP_AT - 1 for f in caught]
    evaluations = len(on_null) * (len(GATE_LENGTHS) - 1)
    return [
        _pct(len(caught) / len(on_step)),
        f"{np.median(delays):.0f}" if delays else "-",
        f"{np.mean([sum(n > GATE_STEP_AT for n in f) for f in caught]):.2f}" if caught else "-",
        _pct(sum(len(f) for f in on_null) / evaluations),
    ]


def gate_table(runners: dict[str, Runner], trials: int) -> None:
    print(
        f"\nThe gate over growing histories ({GATE_FIRST}..{GATE_RUNS} runs; +15% from run "
        f"index {GATE_STEP_AT}), {trials} histories per noise: caught %, delay (median runs "
        "after the step's first until the gate fails), fails per regression caught, and false "
        "fails as % of gate evaluations on step-free histories\n"
    )
    headers = ["candidate", "gate"]
    for noise in GATE_NOISES:
        headers += [f"{noise} caught", "delay", "fails", "false fails"]
    table(headers)
    for name, run in runners.items():
        done = {noise: gate_run(run, NOISES[noise], trials) for noise in GATE_NOISES}
        for rule, gate in GATES.items():
            cells = [cell for noise in GATE_NOISES for cell in gate_scores(done[noise], gate)]
            row([name, rule, *cells])


# ---------------------------------------------------------------------------------------------


def table(headers: list[str]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers), flush=True)


def row(cells: list[str]) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=500, help="series per scenario")
    parser.add_argument("--edivisive", metavar="PYTHON", help="a Python with E-divisive")
    parser.add_argument("--only", help="only candidates whose name contains this")
    parser.add_argument("--gate-trials", type=int, default=200, help="histories per noise")
    parser.add_argument("--no-gate", action="store_true", help="skip the gate simulation")
    parser.add_argument("--gate-only", action="store_true", help="only the gate simulation")
    parser.add_argument(
        "--check-gate",
        action="store_true",
        help="check that newest_starts_worse_segment agrees with its simulated rule, and stop",
    )
    args = parser.parse_args()

    runners: dict[str, Runner] = {
        name: partial(run_detector, detect)
        for name, detect in candidates().items()
        if not args.only or args.only in name
    }
    if args.edivisive:
        for pvalue, perms in ((0.05, 100), (0.01, 200)):
            name = f"MongoDB E-divisive p={pvalue} perm={perms}"
            if not args.only or args.only in name:
                runners[name] = edivisive(args.edivisive, pvalue, perms)

    if args.check_gate:
        check_gate(args.gate_trials)
        return
    if not args.gate_only:
        detection_table(runners, args.trials)
    if not args.no_gate:
        gated = {n: run for n, run in runners.items() if any(k in n for k in GATE_CANDIDATES)}
        gate_table(gated, args.gate_trials)


def detection_table(runners: dict[str, Runner], trials: int) -> None:
    cases = scenarios()
    data = {c.name: [c.make(seed) for seed in range(c.trials or trials)] for c in cases}
    scale_case = "step12-uniform5"
    in_bytes = [x * BYTES_PER_SECOND for x in data[scale_case]]

    print(f"Detection and false positives, % of {trials} series per scenario\n")
    table(["candidate", *(c.name for c in cases), "bytes=seconds", "ms n=12", "ms n=50"])
    for name, run in runners.items():
        outcomes = {case.name: run(data[case.name]) for case in cases}
        cells = [score(case, outcomes[case.name]) for case in cases]
        cells.append(scale_free(outcomes[scale_case], run(in_bytes)))
        cells.append(f"{1000 * np.mean(outcomes['null12-gauss2.5'].seconds):.2f}")
        cells.append(f"{1000 * np.mean(outcomes['null50-gauss2.5'].seconds):.2f}")
        row([name, *cells])


def check_gate(trials: int) -> None:
    """newest_starts_worse_segment, run on its own, against the simulated rule it ships."""
    simulated = gate_new(6)
    done = gate_run(partial(run_detector, own_edivisive(0.05)), NOISES["spiky"], trials)
    checked = disagreements = 0
    for history, found in done.stepped + done.null:
        for n, now, was in zip(GATE_LENGTHS[1:], found[1:], found[:-1], strict=True):
            x = history[:n].tolist()
            shipped = newest_starts_worse_segment(x, detect_shifts(x), min_size=MIN_SIZE)
            checked += 1
            disagreements += (shipped is not None) != simulated(history[:n], now, was)
    print(f"newest_starts_worse_segment vs its simulated rule: {disagreements} of {checked} differ")


if __name__ == "__main__":
    main()
