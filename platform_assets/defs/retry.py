"""Retries for what can heal, and only that.

The clients retry each request first (S3: the AWS SDKs' standard mode; the app database:
tenacity around the whole read; DVC: its lock). A transient fault that outlasts them fails the
step and Dagster reruns it after 2, 4 and 8 seconds (with jitter): steps are safe to rerun,
their outputs deterministic and written atomically. Every other error (a setting, a missing
table, a bad partition key) would fail the same way again, so `@fail_fast_unless_transient` turns it into
a failure that skips the retry policy: the run fails on its first attempt, naming the cause.
"""

import functools
import inspect
from collections.abc import Callable
from typing import TypeVar

import dagster as dg
from filelock import Timeout as LockTimeout

from platform_assets.defs.resources import AppDatabaseUnavailableError
from platform_assets.lib.lake_store import LakeUnavailableError
from platform_assets.lib.registry import RegistryUnavailableError

IO_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
TRANSIENT = (
    LakeUnavailableError,
    AppDatabaseUnavailableError,
    RegistryUnavailableError,
    LockTimeout,
    ConnectionError,
    TimeoutError,
)
PASSED_ON = (*TRANSIENT, dg.Failure, dg.RetryRequested)  # Dagster's own signals keep their meaning
F = TypeVar("F", bound=Callable)


def _at_once(exc: Exception) -> dg.Failure:
    return dg.Failure(f"{type(exc).__name__}: {exc}", allow_retries=False)


def fail_fast_unless_transient(fn: F) -> F:
    """Fail at once, with no retry, on anything but a transient fault: `IO_RETRY` (put this under
    `@dg.asset(retry_policy=IO_RETRY)`) then retries only what may pass on a second try."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def generator(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except PASSED_ON:
                raise
            except Exception as exc:
                raise _at_once(exc) from exc

        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def function(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PASSED_ON:
            raise
        except Exception as exc:
            raise _at_once(exc) from exc

    return function  # type: ignore[return-value]
