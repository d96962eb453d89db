"""Run tags the instance's run queue limits (`tag_concurrency_limits` in deploy/*/dagster.yaml).

Follow-on work (the ranged features rebuild a day's new events set off, the shards the
rewritten training days set off) runs in the background lane, one run at a time: on one host
a new log file's events run then always finds a queue slot and a core, instead of starting
while three follow-on runs of the file before hold the CPUs."""

LANE_TAG = "platform_assets/lane"
BACKGROUND = {LANE_TAG: "background"}
