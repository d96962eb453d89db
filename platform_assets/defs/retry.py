"""The retry policy of every step that talks to the lake, the app database or a DVC remote.

The clients retry each request first (S3: the AWS SDKs' standard mode; the app database:
tenacity around the whole read). A fault that outlasts them fails the step, and Dagster
reruns it after 2, 4 and 8 seconds (with jitter). Steps are safe to rerun: outputs are
deterministic and written atomically.
"""

import dagster as dg

IO_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
