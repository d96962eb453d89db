"""Fixtures: small generated lakes and a throwaway Dagster instance (helpers are in `helpers`)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from platform_assets_tests.support.helpers import Lake, make_lake


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A read-only small lake shared by tests that do not change it."""
    return make_lake(tmp_path_factory.mktemp("small_lake"))


@pytest.fixture
def fresh_lake(tmp_path: Path) -> Lake:
    """A small lake a test may change."""
    return make_lake(tmp_path)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first: real processes (e2e), then the other slow modules, then the rest (stable
    within each), so `make test`'s workers, which take whole modules in this order, never start
    a minutes-long module last."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2)
