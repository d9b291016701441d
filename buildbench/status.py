"""What became of a cell, and of a run: the statuses the results file and the exit code use."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A cell's outcome, in pipeline order. Anything but OK makes `buildbench run` exit 1."""

    OK = "ok"
    BUILD_FAILED = "build_failed"
    MEASURE_FAILED = "measure_failed"
    SMOKE_FAILED = "smoke_failed"
    SMOKE_TIMEOUT = "smoke_timeout"
    INVALID_VARIANT = "invalid_variant"
    INTERRUPTED = "interrupted"
    ENGINE_LOST = "engine_lost"
    ERROR = "error"  # anything unexpected: the cell's error says what


class ExitReason(StrEnum):
    """Why a run stopped; None in the results file while it is still going."""

    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    ENGINE_LOST = "engine_lost"


# Cells whose image is missing or is not the variant it claims: left out of ratios and compare.
NO_IMAGE = frozenset({Status.BUILD_FAILED, Status.MEASURE_FAILED, Status.INVALID_VARIANT})
