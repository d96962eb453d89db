"""What the cluster's workers report about themselves (no Celery, no Dagster: plain answers in)."""
