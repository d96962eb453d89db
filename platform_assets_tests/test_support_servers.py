"""The tests' own servers start clean: a test never sees what another one on its worker left."""

import boto3
import pytest

from platform_assets_tests.support.s3_server import make_bucket, s3_server

pytestmark = pytest.mark.slow


def buckets(endpoint: str) -> list[str]:
    return [b["Name"] for b in boto3.client("s3", endpoint_url=endpoint).list_buckets()["Buckets"]]


def test_each_s3_server_holds_only_its_own_buckets() -> None:
    """moto's state is process-wide: as threads of the test's process, a second server listed
    the first's bucket (test_daemon_e2e found a day test_cluster had appended, on one xdist
    worker). Open at once (a module's server and a test's own) or one after the other."""
    with s3_server() as first:
        make_bucket(first, "lake")
        with s3_server() as second:
            assert buckets(second) == []
            make_bucket(second, "other")
            assert buckets(first) == ["lake"]
    with s3_server() as third:
        assert buckets(third) == []
