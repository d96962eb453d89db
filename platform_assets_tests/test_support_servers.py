"""The tests' own servers start clean: a test never sees what an earlier one on its worker left."""

import boto3
import pytest

from platform_assets_tests.support.s3_server import make_bucket, s3_server

pytestmark = pytest.mark.slow


def test_an_s3_server_started_after_another_in_the_process_is_empty() -> None:
    """moto's state is process-wide: without the reset, the second server listed the first's
    bucket (test_daemon_e2e found a day test_cluster had appended, on the same xdist worker)."""
    with s3_server() as first:
        make_bucket(first, "lake")
        boto3.client("s3", endpoint_url=first).put_object(Bucket="lake", Key="prod/x", Body=b"1")
    with s3_server() as second:
        assert boto3.client("s3", endpoint_url=second).list_buckets()["Buckets"] == []
