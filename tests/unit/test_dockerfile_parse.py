"""Reading a Dockerfile the way the engine does: continuations, comments, the escape directive,
several ARGs in one, quotes, heredocs, FROM flags; and real public Dockerfiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildbench.engine.dockerfile import (
    declared_args,
    final_base,
    stage_names,
    unconsumed_warnings,
)

DATA = Path(__file__).parent / "data" / "dockerfiles"


def test_a_line_continued_arg_is_consumed() -> None:
    text = "FROM base\nARG \\\n    CUDA=\nRUN true\n"
    assert declared_args(text) == {"CUDA"}
    assert unconsumed_warnings(text, {"CUDA": "true"}) == []


def test_a_comment_line_inside_a_continuation_is_skipped() -> None:
    text = "FROM base\nARG \\\n# empty for a CPU build\n    CUDA=\n"
    assert declared_args(text) == {"CUDA"}


def test_a_continued_from_names_its_stage() -> None:
    text = "FROM python:3.11-slim \\\n    AS builder\nRUN true\nFROM builder\n"
    assert stage_names(text) == ["builder", "stage-1"]
    assert final_base(text, {}) == "python:3.11-slim"


def test_the_escape_directive_makes_backtick_the_continuation() -> None:
    text = "# escape=`\nFROM base\nARG `\n    CUDA=\nRUN dir C:\\\n"
    assert declared_args(text) == {"CUDA"}


def test_several_args_in_one_instruction_across_a_continuation() -> None:
    text = "ARG REGISTRY=quay.io \\\n    IMAGE=python:3.11\nFROM $REGISTRY/$IMAGE\nARG A=1 B=2\n"
    assert declared_args(text) == {"REGISTRY", "IMAGE", "A", "B"}
    assert final_base(text, {}) == "quay.io/python:3.11"


def test_a_quoted_value_is_one_word() -> None:
    text = 'FROM base\nARG NOTE="built with CUDA=1"\n'
    assert declared_args(text) == {"NOTE"}
    assert unconsumed_warnings(text, {"CUDA": "1"}) == [
        "build-args never consumed by the Dockerfile: CUDA"
    ]


def test_heredoc_bodies_are_not_instructions() -> None:
    text = (
        "FROM base\n"
        "RUN <<EOF\nFROM evil AS other\nARG CUDA\nEOF\n"
        "COPY <<-'EOT' /etc/motd\n\tARG ALSO_NOT\nEOT\n"
    )
    assert stage_names(text) == [""]
    assert declared_args(text) == set()
    assert final_base(text, {}) == "base"


def test_from_with_a_platform_flag_on_a_continued_line() -> None:
    text = (
        "ARG BASE=golang:1.21\n"
        "FROM --platform=$BUILDPLATFORM \\\n    ${BASE} AS build\n"
        "FROM --platform=linux/amd64 build\n"
    )
    assert stage_names(text) == ["build", "stage-1"]
    assert final_base(text, {}) == "golang:1.21"
    assert final_base(text, {"BASE": "golang:1.22"}) == "golang:1.22"


def test_arg_defaults_use_earlier_args_and_the_default_forms() -> None:
    text = "ARG OWNER=jupyter\nARG BASE=quay.io/$OWNER/scipy\nFROM ${BASE}\n"
    assert final_base(text, {}) == "quay.io/jupyter/scipy"
    assert final_base(text, {"OWNER": "me"}) == "quay.io/me/scipy"
    assert final_base("ARG BASE\nFROM ${BASE:-python:3.11-slim}\n", {}) == "python:3.11-slim"


def test_only_args_before_the_first_from_reach_a_from() -> None:
    # As in the engine: a build-arg nothing declares before FROM expands to nothing there.
    assert final_base("FROM ${BASE}\nARG BASE\n", {"BASE": "python:3.11-slim"}) is None


def test_onbuild_arg_declares_nothing_for_this_build() -> None:
    assert declared_args("FROM base\nONBUILD ARG CUDA\n") == set()


def test_a_text_the_engine_refuses_reads_as_nothing() -> None:
    text = "FROM base\nRUN <<EOF\nnever ended\n"
    assert (stage_names(text), declared_args(text), final_base(text, {})) == ([""], set(), None)


@pytest.mark.parametrize(
    ("name", "stages", "args", "base"),
    [
        (
            "pytorch.dockerfile",
            ["dev-base", "conda", "submodule-update", "build", "conda-installs", "official", "dev"],
            {
                "BASE_IMAGE",
                "PYTHON_VERSION",
                "TARGETPLATFORM",
                "CMAKE_VARS",
                "CUDA_VERSION",
                "CUDA_CHANNEL",
                "INSTALL_CHANNEL",
                "PYTORCH_VERSION",
                "TRITON_VERSION",
            },
            "ubuntu:22.04",
        ),
        (
            "jupyter-docker-stacks-foundation.dockerfile",
            ["default_root_image", "micromamba", "stage-2"],
            {"ROOT_IMAGE", "NB_USER", "NB_UID", "NB_GID", "PYTHON_VERSION"},
            "ubuntu:24.04@sha256:561618e2c15bf2397621dd04f96926663a3b5616c189cf7e38db7e82f5c538ea",
        ),
        (
            "jupyter-pyspark-notebook.dockerfile",
            [""],
            {
                "REGISTRY",
                "OWNER",
                "BASE_IMAGE",
                "openjdk_version",
                "spark_version",
                "hadoop_version",
                "scala_version",
                "spark_download_url",
                "derby_version",
                "derby_sha256",
            },
            "quay.io/jupyter/scipy-notebook",
        ),
    ],
)
def test_real_public_dockerfiles(name: str, stages: list[str], args: set[str], base: str) -> None:
    text = (DATA / name).read_text()
    assert stage_names(text) == stages
    assert declared_args(text) == args
    assert final_base(text, {}) == base
