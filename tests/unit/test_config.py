"""The matrix from a config file: defaults, paths, built-ins, `--only`, and every bad input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.engine.dockerfile import unconsumed_warnings
from buildbench.errors import UsageError
from buildbench.measure.smoke.kinds.command.smoke import CommandSmoke
from buildbench.run.config import BuiltinImage, UserImage, load_config, load_matrix, select_cells
from buildbench.run.matrix import Cell, MatrixOptions, builtin_matrix

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "course"
ONE_IMAGE = '[[image]]\nname = "mine"\ndockerfile = "app/Dockerfile"\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with app/Dockerfile and nothing else."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM python:3.11-slim\nARG CUDA\n")
    return tmp_path


def _write(folder: Path, text: str, name: str = "buildbench.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_no_config_means_the_builtin_matrix(tmp_path: Path) -> None:
    options = MatrixOptions()
    assert load_config(directory=tmp_path) is None
    assert load_matrix(options, directory=tmp_path) == (None, builtin_matrix(options))


def test_a_minimal_image_gets_the_documented_defaults(project: Path) -> None:
    config = load_config(_write(project, ONE_IMAGE))
    assert config is not None
    assert config.images == (
        UserImage(
            name="mine",
            dockerfile=project / "app" / "Dockerfile",
            context=project / "app",
            cuda_arg="CUDA",
            variants={"cpu": "", "cuda": "true"},
            build_args={},
            build_inputs=False,
        ),
    )
    cells = config.cells(MatrixOptions())
    assert [(c.key, c.build_args) for c in cells] == [
        ("mine/cpu", {"CUDA": ""}),
        ("mine/cuda", {"CUDA": "true"}),
    ]


def test_paths_resolve_against_the_config_files_folder_not_the_cwd(
    project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "ctx").mkdir()
    path = _write(project, ONE_IMAGE + 'context = "ctx"\n')
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    (cell, _) = load_config(path).cells(MatrixOptions())  # type: ignore[union-attr]
    assert (cell.dockerfile, cell.context) == (project / "app" / "Dockerfile", project / "ctx")


def test_every_field(project: Path) -> None:
    config = load_config(
        _write(
            project,
            ONE_IMAGE
            + 'cuda_arg = "USE_GPU"\n'
            + 'variants = { cuda = "1" }\n'
            + 'build_args = { TORCH_VERSION = "2.3", EXTRA = "" }\n'
            + 'smoke = { command = ["python", "-c", "print(42)"], expect = "42" }\n'
            + "build_inputs = true\n",
        )
    )
    (cell,) = config.cells(MatrixOptions())  # type: ignore[union-attr]
    assert cell == Cell(
        name="mine",
        variant="cuda",
        dockerfile=project / "app" / "Dockerfile",
        context=project / "app",
        build_args={"USE_GPU": "1", "TORCH_VERSION": "2.3", "EXTRA": ""},
        framework=None,
        build_inputs=True,
        smoke=CommandSmoke(("python", "-c", "print(42)"), "42"),
    )


def test_builtin_images_take_the_cli_options(project: Path) -> None:
    path = _write(project, '[[image]]\nbuiltin = "onnx"\n\n' + ONE_IMAGE + 'smoke = "pytorch"\n')
    options = MatrixOptions(variants=("cpu",), base_image="local/python:3.11")
    config = load_config(path)
    assert config is not None and config.images[0] == BuiltinImage("onnx")
    onnx, mine = config.cells(options)
    assert [onnx] == builtin_matrix(replace(options, frameworks=("onnx",)))
    assert onnx.build_args["BASE_IMAGE"] == "local/python:3.11" and onnx.build_inputs
    assert (mine.key, mine.framework) == ("mine/cpu", "pytorch")


def test_buildbench_toml_is_found_before_pyproject(project: Path) -> None:
    _write(project, ONE_IMAGE.replace("image", "tool.buildbench.image"), "pyproject.toml")
    config = load_config(directory=project)
    assert config is not None and config.source == project / "pyproject.toml"
    _write(project, ONE_IMAGE.replace("mine", "own"))
    config = load_config(directory=project)
    assert config is not None and config.images[0].name == "own"


def test_a_pyproject_without_the_table_is_not_a_config(project: Path) -> None:
    _write(project, '[project]\nname = "x"\n', "pyproject.toml")
    assert load_config(directory=project) is None


def test_the_course_example_benchmarks_the_course_files_next_to_the_builtins() -> None:
    source, cells = load_matrix(MatrixOptions(), config=EXAMPLES / "buildbench.toml")
    assert source == EXAMPLES / "buildbench.toml"
    assert [c.key for c in cells] == [
        *("pytorch/cpu", "pytorch/cuda", "onnx/cpu", "onnx/cuda"),
        *("course-pytorch/cpu", "course-pytorch/cuda", "course-onnx/cpu", "course-onnx/cuda"),
    ]
    course = {c.key: c for c in cells if c.name.startswith("course-")}
    for cell in course.values():
        assert cell.dockerfile_text().startswith("# A stand-in for the DTU MLOps course")
        assert "FROM python:3.11-slim\n" in cell.dockerfile_text()
        assert not cell.build_inputs and cell.context == EXAMPLES
    assert course["course-onnx/cuda"].build_args == {"CUDA": "true"}
    assert course["course-onnx/cpu"].build_args == {"CUDA": ""}  # flagged on both cells
    # The ONNX file never declares ARG CUDA: its CUDA variant is flagged, the PyTorch one is not.
    onnx, pytorch = course["course-onnx/cuda"], course["course-pytorch/cuda"]
    assert unconsumed_warnings(onnx.dockerfile_text(), onnx.build_args) == [
        "build-args never consumed by the Dockerfile: CUDA"
    ]
    assert unconsumed_warnings(pytorch.dockerfile_text(), pytorch.build_args) == []


@pytest.mark.parametrize(
    ("dockerfile", "variants", "expected"),
    [
        # CPU only, no ARG CUDA: the arg could change nothing, so it is not passed (nor warned).
        ("FROM python:3.11-slim\n", '{ cpu = "" }', {"mine/cpu": {}}),
        # Declared: passed, empty, as the Dockerfile may give it a default of its own.
        ("FROM python:3.11-slim\nARG CUDA=1\n", '{ cpu = "" }', {"mine/cpu": {"CUDA": ""}}),
        # A variant gives it a value the Dockerfile ignores: both cells get it, and the warning.
        (
            "FROM python:3.11-slim\n",
            '{ cpu = "", cuda = "true" }',
            {"mine/cpu": {"CUDA": ""}, "mine/cuda": {"CUDA": "true"}},
        ),
    ],
)
def test_the_cuda_arg_is_passed_where_it_can_change_something(
    project: Path, dockerfile: str, variants: str, expected: dict[str, dict[str, str]]
) -> None:
    (project / "app" / "Dockerfile").write_text(dockerfile)
    config = _write(project, ONE_IMAGE + f"variants = {variants}\n")
    _, cells = load_matrix(MatrixOptions(), config=config)
    assert {c.key: c.build_args for c in cells} == expected
    warned = {c.key: unconsumed_warnings(c.dockerfile_text(), c.build_args) for c in cells}
    ignored = "CUDA" not in dockerfile and "cuda" in variants
    assert warned == {
        key: ["build-args never consumed by the Dockerfile: CUDA"] if ignored else []
        for key in expected
    }


def test_framework_narrows_a_config_to_its_images_of_that_framework() -> None:
    options = MatrixOptions(frameworks=("onnx",), variants=("cpu",))
    _, cells = load_matrix(options, config=EXAMPLES / "buildbench.toml")
    assert [(c.key, c.framework) for c in cells] == [
        ("onnx/cpu", "onnx"),
        ("course-onnx/cpu", "onnx"),
    ]


def test_images_without_a_framework_are_built_only_with_every_framework(project: Path) -> None:
    path = _write(project, '[[image]]\nbuiltin = "pytorch"\n\n' + ONE_IMAGE)
    keys = [c.key for c in load_matrix(MatrixOptions(variants=("cpu",)), config=path)[1]]
    assert keys == ["pytorch/cpu", "mine/cpu"]
    both = MatrixOptions(frameworks=("onnx", "pytorch"), variants=("cpu",))  # --framework x2
    assert [c.key for c in load_matrix(both, config=path)[1]] == keys
    only = MatrixOptions(frameworks=("pytorch",), variants=("cpu",))
    assert [c.key for c in load_matrix(only, config=path)[1]] == ["pytorch/cpu"]


@pytest.mark.parametrize(
    ("image", "options"),
    [
        (ONE_IMAGE, MatrixOptions(frameworks=("onnx",))),
        (ONE_IMAGE + 'smoke = "pytorch"\n', MatrixOptions(frameworks=("onnx",))),
        (ONE_IMAGE + 'variants = { cuda = "1" }\n', MatrixOptions(variants=("cpu",))),
    ],
    ids=["no-framework", "other-framework", "no-such-variant"],
)
def test_a_selection_without_cells_is_a_usage_error(
    project: Path, image: str, options: MatrixOptions
) -> None:
    path = _write(project, image)
    with pytest.raises(UsageError) as error:
        load_matrix(options, config=path)
    assert error.value.message == "the selection leaves no cell to build"
    variants = "mine/cuda" if "variants" in image else "mine/cpu, mine/cuda"
    assert error.value.tip == f"valid cells: {variants}"


@pytest.mark.parametrize(
    "args",
    [["list", "--cuda", "cpu"], ["run", "--framework", "onnx", "--no-smoke"]],
    ids=["list", "run"],
)
def test_run_and_list_refuse_an_empty_selection(project: Path, args: list[str]) -> None:
    path = _write(project, ONE_IMAGE + 'variants = { cuda = "1" }\n')
    result = CliRunner().invoke(cli, [*args, "--config", str(path)])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "ERROR: the selection leaves no cell to build\nTIP: valid cells: mine/cuda\n"
    )


# Every mistake: one line naming the file and the key, and a tip.
BAD_CONFIGS = [
    ("image = [", "not valid TOML: Invalid value (at end of document)"),
    ("images = []", 'top level: unknown key "images"'),
    ('[image]\nname = "x"', '"image" must be an array, not a table'),
    ("image = []", "top level: declares no images"),
    ("[[image]]\nname = 3", '[[image]] #1: "name" must be a string, not an integer'),
    ('[[image]]\nname = "x"', '[[image]] #1: "dockerfile" is required'),
    ('[[image]]\ndockerfile = "app/Dockerfile"', '[[image]] #1: "name" is required'),
    (ONE_IMAGE + "smok = 1", '[[image]] #1: unknown key "smok"'),
    (ONE_IMAGE.replace("mine", "My Image"), 'name "My Image" cannot be part of an image tag'),
    (ONE_IMAGE.replace("mine", "onnx"), 'the name "onnx" is a built-in image\'s'),
    (ONE_IMAGE + "cuda_arg = 1", '"cuda_arg" must be a string, not an integer'),
    (ONE_IMAGE + 'cuda_arg = ""', '"cuda_arg" is empty'),
    (ONE_IMAGE + "build_args = { V = 2.10 }", '"build_args.V" must be a string, not a float'),
    (ONE_IMAGE + 'build_args = "A=1"', '"build_args" must be a table, not a string'),
    (ONE_IMAGE + 'build_args = { CUDA = "1" }', '"build_args.CUDA" is the CUDA build-arg'),
    (ONE_IMAGE + 'build_inputs = "yes"', '"build_inputs" must be a boolean, not a string'),
    (ONE_IMAGE + 'variants = { gpu = "1" }', 'unknown variant "gpu"'),
    (ONE_IMAGE + "variants = {}", '"variants" is empty'),
    (ONE_IMAGE + 'smoke = "tensorflow"', 'unknown smoke test "tensorflow"'),
    (ONE_IMAGE + "smoke = 3", "[[image]] #1: smoke: must be a table, not an integer"),
    (ONE_IMAGE + "smoke = { command = [] }", '"command" must be a non-empty array of strings'),
    (ONE_IMAGE + 'smoke = { command = ["x", 1] }', '"command" must be a non-empty array'),
    (ONE_IMAGE + 'smoke = { command = ["x"], expekt = "y" }', 'smoke: unknown key "expekt"'),
    ('[[image]]\nbuiltin = "tensorflow"', 'unknown builtin "tensorflow"'),
    ('[[image]]\nbuiltin = "onnx"\ndockerfile = "x"', 'unknown key "dockerfile"'),
    ('[[image]]\nbuiltin = "onnx"\n[[image]]\nbuiltin = "onnx"', 'the name "onnx" is already'),
    (ONE_IMAGE + ONE_IMAGE, '[[image]] #2: the name "mine" is already used'),
    (ONE_IMAGE.replace("app/Dockerfile", "nope"), "cannot read dockerfile"),
    (ONE_IMAGE + 'context = "app/Dockerfile"', "is not a directory"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_is_one_clear_usage_error(project: Path, text: str, message: str) -> None:
    path = _write(project, text)
    with pytest.raises(UsageError) as error:
        load_config(path)
    assert error.value.message.startswith(f"{path}: ")
    assert message in error.value.message
    assert "\n" not in error.value.message and error.value.tip
    assert error.value.exit_code == 2


def test_bad_pyproject_config_names_its_table(project: Path) -> None:
    path = _write(project, '[[tool.buildbench.image]]\nname = "x"\n', "pyproject.toml")
    with pytest.raises(UsageError, match=r'\[\[tool.buildbench.image\]\] #1: "dockerfile"'):
        load_config(path)


def test_explicit_pyproject_without_the_table(project: Path) -> None:
    with pytest.raises(UsageError, match=r"has no \[tool.buildbench\] table"):
        load_config(_write(project, "[tool.other]\n", "pyproject.toml"))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read config .*: No such file or directory"):
        load_config(tmp_path / "nope.toml")


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read config .*: Is a directory"):
        load_config(tmp_path)


CELLS = builtin_matrix(MatrixOptions())


def test_only_selects_cells_and_whole_images_in_matrix_order() -> None:
    assert select_cells(CELLS, ()) == CELLS
    chosen = select_cells(CELLS, ("onnx/cuda", "pytorch", "onnx/cuda"))
    assert [c.key for c in chosen] == ["pytorch/cpu", "pytorch/cuda", "onnx/cuda"]


def test_only_with_an_unknown_cell_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError) as error:
        select_cells(CELLS[:2], ("onnx/cpu",))
    assert error.value.message == '--only "onnx/cpu" names no cell of the matrix'
    assert error.value.tip == "valid cells: pytorch/cpu, pytorch/cuda"
