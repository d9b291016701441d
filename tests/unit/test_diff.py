"""`buildbench diff`: two images read through a (fake) engine, or two results files cell by
cell; what differs, with versions and bytes, adding up to the change; exit codes and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buildbench.analyze.sizediff import Inventory, Owned, diff_inventories, normalized
from buildbench.analyze.steps import step_changes
from buildbench.cli import cli
from buildbench.engine import factory
from buildbench.record import Step
from tests.fakes import FakeEngine
from tests.unit.references import DATA
from tests.unit.test_archive import layer, run, save
from tests.unit.test_compare import edited
from tests.unit.test_contents import BASE, distribution, file, size_of

VM = DATA / "vm.json"  # schema 1: no contents
SCHEMA2 = DATA / "vm-schema2.json"  # contents, which the tests replace


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["diff", *args])
    return result.exit_code, result.stdout, result.stderr


def with_contents(cell: dict[str, Any], *distributions: tuple[str, str, int]) -> None:
    """Give a cell contents: these distributions over the base, in its last layer, and an image
    size that agrees with them."""
    total = sum(size for _, _, size in distributions)
    base = cell["image"]["size_bytes"]
    cell["image"]["size_bytes"] = base + total
    cell["image"]["bytes_over_base"] = total
    cell["build"]["steps"] = [
        {"index": 1, "instruction": "FROM python:3.11-slim", "seconds": [0.0]},
        {"index": 2, "instruction": "RUN pip install -r requirements.txt", "seconds": [9.0]},
    ]
    cell["contents"] = {
        "attribution": {
            "bytes_over_base": total,
            "layers": [
                {
                    "index": 3,
                    "instruction": "RUN pip install -r requirements.txt",
                    "size_bytes": total,
                }
            ],
            "distributions": [
                {"name": n, "version": v, "bytes": size, "layer": 3} for n, v, size in distributions
            ],
            "packages": [],
            "deleted_or_overwritten_bytes": 0,
            "unowned_bytes": 0,
        },
        "findings": [],
        "wasted_bytes": 0,
        "efficiency": 1.0,
    }


def inventory(label: str, distributions: list[Owned], layers: list[Owned], **kw: Any) -> Inventory:
    total = sum(o.bytes for o in layers)
    return Inventory(
        label=label,
        size_bytes=total,
        scope_bytes=total,
        distributions=distributions,
        packages=[],
        other_bytes=total - sum(o.bytes for o in distributions),
        layers=layers,
        **kw,
    )


# ---------------------------------------------------------------------------------------------
# The diff itself


def test_owners_changed_added_and_removed_add_up_to_the_change():
    before = inventory(
        "a",
        [Owned("sympy", 30_000, "1.13.3", 1), Owned("six", 1_000, "1.16.0", 1)],
        [Owned("FROM base", 5_000, layer=0), Owned("RUN pip install x", 31_500, layer=1)],
    )
    after = inventory(
        "b",
        [Owned("SymPy", 32_000, "1.14.0", 2), Owned("idna", 4_000, "3.7", 2)],
        [
            Owned("FROM base", 5_000, layer=0),
            Owned("RUN echo extra", 100, layer=1),
            Owned("RUN pip install x", 36_500, layer=2),
        ],
    )
    found = diff_inventories(before, after)
    assert found.delta == sum(part.delta for part in found.parts) == 5_100
    changes = {c.name: (c.change, c.old_version, c.new_version, c.delta) for c in found.items()}
    # Names are matched as PEP 503 normalises them.
    assert changes == {
        "idna": ("added", "", "3.7", 4_000),
        "SymPy": ("upgraded", "1.13.3", "1.14.0", 2_000),
        "six": ("removed", "1.16.0", "", -1_000),
    }
    assert [c.name for c in found.items()] == ["idna", "SymPy", "six"]  # largest first
    # Layers by instruction, not position: the pip layer moved from 1 to 2 and grew by 5000.
    layers = {c.name: (c.change, c.delta) for c in found.layers}
    assert layers == {"RUN pip install x": ("changed", 5_000), "RUN echo extra": ("added", 100)}
    assert found.largest_cause() is not None and found.largest_cause().name == "idna"


def test_content_hashes_and_run_labels_do_not_unmatch_instructions():
    assert normalized("COPY dir:8030b2eb117ee6b8c8c6c4b63fb2bac7 in /opt/venv") == normalized(
        "COPY   dir:0123456789abcdef0123456789abcdef in /opt/venv"
    )
    assert normalized("LABEL buildbench.run-id=20261126T01Z-69bd") == normalized(
        "LABEL buildbench.run-id=20261127T02Z-aaaa"
    )


def test_steps_are_matched_by_instruction_and_the_largest_change_first():
    before = [Step(1, "FROM x", [0.0]), Step(2, "RUN pip install a", [10.0, 12.0, 11.0])]
    after = [
        Step(1, "FROM x", [0.0]),
        Step(2, "RUN apt-get update", [5.0]),
        Step(3, "RUN pip install a", [30.0]),
    ]
    found = step_changes(before, after)
    assert [(c.instruction, c.old_seconds, c.new_seconds) for c in found[:2]] == [
        ("RUN pip install a", 11.0, 30.0),
        ("RUN apt-get update", None, 5.0),
    ]
    assert (found[0].old_index, found[0].new_index) == (2, 3)


def test_a_step_whose_instruction_changed_in_place_is_one_change():
    before = [Step(1, "FROM x", [0.0]), Step(2, "RUN pip install six==1.16.0", [2.0])]
    after = [Step(1, "FROM x", [0.0]), Step(2, "RUN pip install six==1.17.0 idna", [2.5])]
    [changed, same] = step_changes(before, after)
    assert (changed.old_instruction, changed.instruction) == (
        "RUN pip install six==1.16.0",
        "RUN pip install six==1.17.0 idna",
    )
    assert (changed.old_seconds, changed.new_seconds, changed.delta) == (2.0, 2.5, 0.5)
    assert same.instruction == "FROM x" and same.delta == 0


# ---------------------------------------------------------------------------------------------
# Two results files


def test_two_results_files_name_each_cause_with_bytes_and_versions(tmp_path: Path):
    old = edited(
        tmp_path, SCHEMA2, lambda c: with_contents(c, ("numpy", "1.26.4", 20_000_000)), "a"
    )
    new = edited(
        tmp_path,
        SCHEMA2,
        lambda c: with_contents(c, ("numpy", "2.1.0", 21_000_000), ("sympy", "1.13.3", 27_000_000)),
    )
    code, out, err = invoke(str(old), str(new), "--cell", "onnx/cpu")
    assert code == 0, err
    assert "diff: onnx/cpu" in out and "diff: pytorch/cpu" not in out
    assert "size: +28.00 MB = base image 0 B + Python distributions +28.00 MB" in out
    cause = "+27.00 MB: sympy 1.13.3 added by step 2 `RUN pip install -r requirements.txt`"
    assert f"largest cause: {cause}" in out
    assert "+1.00 MB   upgraded  numpy   1.26.4  2.1.0" in out
    code, out, _ = invoke(str(old), str(new), "--format", "json")
    document = json.loads(out)
    assert document["format"] == "buildbench-diff/1"
    onnx = next(d for d in document["diffs"] if d["title"] == "onnx/cpu")
    assert onnx["delta_bytes"] == 28_000_000 == sum(p["delta_bytes"] for p in onnx["parts"])
    assert [(d["name"], d["change"], d["step"]) for d in onnx["distributions"]] == [
        ("sympy", "added", 2),
        ("numpy", "upgraded", 2),
    ]
    code, out, _ = invoke(str(old), str(new), "--format", "csv")
    assert "onnx/cpu,distribution,sympy,added,,1.13.3,0,27000000,27000000,2," in out
    code, out, _ = invoke(str(old), str(new), "--format", "markdown")
    assert "## buildbench diff: onnx/cpu" in out and "| +27.00 MB | added" in out


def test_fail_over_exits_1_when_the_newer_grew_more_than_that(tmp_path: Path):
    old = edited(
        tmp_path, SCHEMA2, lambda c: with_contents(c, ("numpy", "1.26.4", 20_000_000)), "a"
    )
    new = edited(tmp_path, SCHEMA2, lambda c: with_contents(c, ("numpy", "1.26.4", 25_000_000)))
    assert invoke(str(old), str(new), "--fail-over", "5MB")[0] == 0
    assert invoke(str(old), str(new), "--fail-over", "4.5MiB")[0] == 1
    assert invoke(str(old), str(new), "--fail-over", "4999999")[0] == 1
    code, _, err = invoke(str(old), str(new), "--fail-over", "lots")
    assert code == 2 and "not a byte count" in err


def test_records_without_contents_still_diff_their_sizes(tmp_path: Path):
    new = edited(tmp_path, VM, lambda c: c.update(image_size_bytes=c["image_size_bytes"] + 1000))
    code, out, err = invoke(str(VM), str(new))
    assert code == 0, err
    assert "base image, or all (not read) +1 KB" in out


def test_bad_input_is_one_line_and_a_tip(tmp_path: Path):
    other = edited(tmp_path, VM, lambda c: c.update(name=f"other-{c['name']}"))
    code, out, err = invoke(str(VM), str(other))
    assert code == 2 and out == ""
    assert err.startswith("ERROR: the two runs have no measured cell in common")
    assert "TIP:" in err and "Traceback" not in err
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**json.loads(VM.read_text()), "schema_version": 99}))
    code, _, err = invoke(str(VM), str(newer))
    assert code == 2 and "newer than this buildbench reads" in err
    code, _, err = invoke(str(VM), "no-such-image:latest")
    assert code == 2 and "not one of each" in err


# ---------------------------------------------------------------------------------------------
# Two images, through the engine


def image_archive(*layers_: tuple[str, bytes]) -> bytes:
    return save(
        [BASE, *(data for _, data in layers_)], history=[run("base")] + [run(c) for c, _ in layers_]
    )


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeEngine:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fake = FakeEngine()
    monkeypatch.setattr(factory, "make_engine", lambda endpoint=None: fake)
    return fake


def add(engine: FakeEngine, ref: str, archive: bytes, size: int) -> None:
    info = engine.add_image(f"sha256:{ref}", size=size, tags=(ref,))
    engine.archives[info.id] = archive


def test_two_images_are_read_through_the_engine(engine: FakeEngine):
    six = distribution("six", "1.16.0", {"six.py": 30_000})
    six_new = distribution("six", "1.17.0", {"six.py": 31_000})
    idna = distribution("idna", "3.7", {"idna/__init__.py": 50_000, "idna/idnadata.py": 200_000})
    old = layer(*six)
    new = layer(*six_new, *idna, file("opt/data.bin", 10_000))
    base_size = 5_000  # what the engine says of the base layer: the rest is "other"
    add(engine, "app:1", image_archive(("pip install six==1.16.0", old)), base_size + size_of(six))
    new_size = base_size + size_of([*six_new, *idna]) + 10_000
    add(engine, "app:2", image_archive(("pip install six==1.17.0 idna", new)), new_size)
    code, out, err = invoke("app:1", "app:2")
    assert code == 0, err
    assert "reading app:1" in err and "read app:2 in" in err
    assert "diff: app:1 -> app:2" in out
    assert (
        "largest cause: +250 KB: idna 3.7 added by layer `RUN pip install six==1.17.0 idna`" in out
    )
    assert "upgraded  six     1.16.0  1.17.0" in out
    assert "/usr/local/lib/python3.11/site-packages/idna/idnadata.py" in out
    assert "/opt/data.bin" in out
    document = json.loads(invoke("app:1", "app:2", "--format", "json")[1])
    found = document["diffs"][0]
    assert found["delta_bytes"] == new_size - base_size - size_of(six)
    assert sum(p["delta_bytes"] for p in found["parts"]) == found["delta_bytes"]
    # Nothing was handed to the engine but the image references: it streamed them.
    assert all(call[0] != "fill_volume" for call in engine.calls) and engine.runs == []


def test_an_image_the_engine_lacks_is_named_before_anything_is_read(engine: FakeEngine):
    add(engine, "app:1", image_archive(), 100)
    code, out, err = invoke("app:1", "app:nope")
    assert code == 2 and out == ""
    assert err.splitlines()[0] == "ERROR: the engine has no image 'app:nope'"
    assert "TIP:" in err and "reading" not in err
