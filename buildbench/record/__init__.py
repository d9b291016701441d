"""What a run records: typed values that serialise to the results schema (see README).

Each stage of a cell returns one of these values (a build, the image's measurement, its smoke
test, its trip through a registry); the pipeline applies them to the cell's `CellRecord` in one
place. JSON is the contract: one cattrs converter (convert.py) writes and reads every value.
Values hold what was measured; statistics derived from raw samples are computed by
`buildbench.analyze`. A module per part: stats, build (and shipping), contents, smoke (the
header every kind shares) with each kind's detail (model, command, http), slim, run.
"""

from buildbench.record.build import (
    BuildMode,
    BuildRecord,
    Download,
    ImageFacts,
    Measurement,
    Shipping,
    Step,
)
from buildbench.record.command import CommandDetail
from buildbench.record.contents import (
    Attribution,
    DistributionShare,
    Finding,
    FindingKind,
    ImageContents,
    LayerShare,
    PackageShare,
)
from buildbench.record.convert import DETAILS, Figures, from_json, make_converter, to_json
from buildbench.record.http import (
    SERVED_LEVELS,
    Batching,
    LoadLevel,
    RateStep,
    Served,
    ServedAnswers,
)
from buildbench.record.model import (
    Latency,
    ModelDetail,
    ModelInfo,
    NetworkProbe,
    OutputParity,
    Parity,
    RuntimeSetting,
    Startup,
    TensorInfo,
    model_of,
)
from buildbench.record.run import (
    BUILD_TIMING,
    LATENCY_METHOD,
    CellRecord,
    EngineFacts,
    Phase,
    RunInfo,
    Shard,
    cell_key,
)
from buildbench.record.slim import SlimCandidate, SlimStatus, TouchedShare, Trace, Untouched
from buildbench.record.smoke import COLD_START, SmokeDetail, SmokeMetric, SmokeResult
from buildbench.record.stats import CiMethod, Interval, Quantiles, Summary

SCHEMA_VERSION = 7

__all__ = [
    "BUILD_TIMING",
    "COLD_START",
    "DETAILS",
    "LATENCY_METHOD",
    "SCHEMA_VERSION",
    "SERVED_LEVELS",
    "Attribution",
    "Batching",
    "BuildMode",
    "BuildRecord",
    "CellRecord",
    "CiMethod",
    "CommandDetail",
    "DistributionShare",
    "Download",
    "EngineFacts",
    "Figures",
    "Finding",
    "FindingKind",
    "ImageContents",
    "ImageFacts",
    "Interval",
    "Latency",
    "LayerShare",
    "LoadLevel",
    "Measurement",
    "ModelDetail",
    "ModelInfo",
    "NetworkProbe",
    "OutputParity",
    "PackageShare",
    "Parity",
    "Phase",
    "Quantiles",
    "RateStep",
    "RunInfo",
    "RuntimeSetting",
    "Served",
    "ServedAnswers",
    "Shard",
    "Shipping",
    "SlimCandidate",
    "SlimStatus",
    "SmokeDetail",
    "SmokeMetric",
    "SmokeResult",
    "Startup",
    "Step",
    "Summary",
    "TensorInfo",
    "TouchedShare",
    "Trace",
    "Untouched",
    "cell_key",
    "from_json",
    "make_converter",
    "model_of",
    "to_json",
]
