"""Fixtures: small generated lakes and a throwaway Dagster instance (helpers are in `helpers`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from platform_assets_tests.support import two_models as scenario
from platform_assets_tests.support.helpers import Lake, make_lake

# The tests' own `dvc` commands, like the registry's, start no analytics daemon (DVC's own
# suite sets DVC_TEST for the same reason): each would cost a second of CPU and write a
# report file to /tmp that, with no network to send it to, is never removed.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def small_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A read-only small lake shared by tests that do not change it."""
    return make_lake(tmp_path_factory.mktemp("small_lake"))


@pytest.fixture
def fresh_lake(tmp_path: Path) -> Lake:
    """A small lake a test may change."""
    return make_lake(tmp_path)


@pytest.fixture(scope="session")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Two data versions with a model on each (support/two_models.py): built once per process,
    for test_reproduce and test_data_diff, which xdist runs in one process (`SHARED`)."""
    with scenario.two_models(tmp_path_factory.mktemp("two_models")) as built:
        yield built


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as inst:
        yield inst


# Modules that share a session fixture: `make test`'s workers (`--dist loadfile`) take each
# group whole, so the fixture is built once. (xdist's own `--dist loadgroup` groups nothing on
# pytest 9.2: pytest-xdist issue 1386.)
SHARED = {
    "platform_assets_tests/test_data_diff.py": "two_models",
    "platform_assets_tests/test_reproduce.py": "two_models",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile`, with the modules of a `SHARED` group as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return SHARED.get(module, module)

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first: real processes (e2e), then the other slow modules, then the rest (stable
    within each), so `make test`'s workers, which take whole modules in this order, never start
    a minutes-long module last."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2)
