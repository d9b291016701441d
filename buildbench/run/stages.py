"""The values a cell's stages return (`Builds`, `Measurement`, `SmokeResult`, `Shipping`,
`Slimmed`, or a `Failure`), and `apply`, which files each on the cell's record: the one place a
record changes."""

from __future__ import annotations

from dataclasses import dataclass, replace

from buildbench.analyze.interference import interference_warnings
from buildbench.labels import masked_build_args
from buildbench.measure.slim import Slimmed
from buildbench.record import BuildRecord, CellRecord, Measurement, Shipping, SmokeResult
from buildbench.run.matrix import Cell
from buildbench.status import Status


@dataclass(frozen=True)
class Builds:
    """Every build sample of a cell that finished, and the image the last one made."""

    record: BuildRecord
    image_id: str | None
    warnings: tuple[str, ...] = ()
    cache_records: tuple[str, ...] = ()  # BuildKit's records of the kept image


@dataclass(frozen=True)
class Failure:
    status: Status
    message: str
    log_tail: tuple[str, ...] = ()


Value = Builds | Measurement | SmokeResult | Shipping | Slimmed | Failure


def apply(record: CellRecord, value: Value) -> None:
    """File a stage's value on the cell's record: the one place a record changes."""
    match value:
        case Builds():
            record.build = value.record
            record.image_id = value.image_id
            record.warn(*value.warnings, *interference_warnings(record))
        case Measurement():
            record.image, record.contents = value.image, value.contents
            record.warn(*value.warnings)
        case SmokeResult():
            record.smoke = value
            record.warn(*interference_warnings(record))
            if value.status != Status.OK:
                record.fail(value.status, value.message)
        case Shipping():
            record.registry = value
            if record.image is not None:  # the registry's own figure replaces the estimate
                record.image = replace(
                    record.image,
                    compressed_size_bytes=value.stored_bytes,
                    compressed_size_source="registry",
                )
        case Slimmed():  # the candidate's failure is its own: the cell stays as measured
            record.trace, record.slim = value.trace, value.candidate
        case Failure():
            record.fail(value.status, value.message, list(value.log_tail))


def new_record(cell: Cell, builder: str) -> CellRecord:
    return CellRecord(
        name=cell.name,
        variant=cell.variant,
        framework=cell.framework,
        dockerfile=str(cell.dockerfile),
        build_args=masked_build_args(cell.build_args),
        config_hash=cell.config_hash(),
        builder=builder,
    )
