"""What the `cluster_workers` sensor says, from the workers' answers (the live check is in
test_cluster.py)."""

from platform_assets.lib.cluster.health import queue_health


def test_every_queue_served_names_its_workers() -> None:
    health = queue_health({"gpu-a@h2": ["gpu"], "cpu-b@h1": ["cpu"], "cpu-a@h1": ["cpu", "gpu"]}, ["cpu", "gpu"])
    assert health.healthy
    assert health.summary() == "every queue served (cpu: cpu-a@h1, cpu-b@h1; gpu: cpu-a@h1, gpu-a@h2)"


def test_a_queue_nobody_serves_is_named() -> None:
    health = queue_health({"cpu-a@h1": ["cpu"]}, ["cpu", "gpu"])
    assert not health.healthy and health.unserved == ["gpu"]
    assert health.summary().startswith("no live worker serves 'gpu'; start one")
    assert "(cpu: cpu-a@h1)" in health.summary()
    assert "no worker answered" in queue_health({}, ["cpu", "gpu"]).summary()
    assert queue_health({}, ["cpu", "gpu"]).unserved == ["cpu", "gpu"]
