"""Test tiers (as pypa/build does): unit tests need no engine; `--integration` adds the tests
that build real images on a real Docker engine. CI always passes `--integration`."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--integration",
        action="store_true",
        help="also run the tests that build real images on a real Docker engine",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--integration"):
        return
    skip = pytest.mark.skip(reason="builds real images: run with --integration")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)
