"""`platform-assets`: generate a lake, append logs, run the demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from platform_assets import settings
from platform_assets.lib.lake_store import LakeStore
from platform_assets.lib.simulator import LakeScale, append_hour, generate_lake


def _store(args: argparse.Namespace) -> LakeStore:
    return LakeStore(_lake(args), args.s3_endpoint_url or settings.s3_endpoint_url())


def _lake(args: argparse.Namespace) -> str:
    """`--lake`, else the setting: read when a command runs, so that a bad or missing one is the
    command's error (exit 2, one line), not the parser's."""
    return args.lake or settings.lake_root()


def _lake_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lake",
        default=None,
        help=f"lake root: a directory or s3://bucket/prefix (default: the setting {settings.LAKE.name}, README)",
    )
    p.add_argument(
        "--s3-endpoint-url",
        default=None,
        help=f"S3 API endpoint (default: the setting {settings.S3_ENDPOINT_URL.name})",
    )


def cmd_generate(args: argparse.Namespace) -> None:
    scale = LakeScale(
        users=args.users,
        photos=args.photos,
        days=args.days,
        events_per_day=args.events_per_day,
        files_per_hour=args.files_per_hour,
        defect_rate=args.defect_rate,
        start_date=args.start_date,
        seed=args.seed,
        image_width=args.image_width,
        image_height=args.image_height,
    )
    store = _store(args)
    if not store.is_s3:
        Path(_lake(args)).mkdir(parents=True, exist_ok=True)
    manifest = generate_lake(store, args.app_db or settings.app_db_url(), scale)
    print(json.dumps({"lake": _lake(args), "app_db": manifest["app_db_url"], "planted": manifest["total"]}, indent=2))


def cmd_append(args: argparse.Namespace) -> None:
    for key in append_hour(_store(args), late_day=args.late_day):
        print(f"wrote {key}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    from platform_assets.defs.resources import workspace_resource
    from platform_assets.lib.lake_layout import GROUND_TRUTH_FILE
    from platform_assets.lib.model.run import reproduce

    truth = _store(args).read_parquet_if_exists(GROUND_TRUTH_FILE)
    print(json.dumps(reproduce(workspace_resource().registry(), args.model_id, truth), indent=2))


def cmd_verify(args: argparse.Namespace) -> None:
    from platform_assets.defs.resources import workspace_resource
    from platform_assets.lib.model.restore import verify_model, verify_workspace

    registry = workspace_resource().registry()
    report = verify_model(registry, args.model_id) if args.model_id else verify_workspace(registry)
    print(json.dumps(report, indent=2))


def cmd_diff(args: argparse.Namespace) -> None:
    from platform_assets.defs.resources import workspace_resource
    from platform_assets.lib.diff.report import diff_versions, render
    from platform_assets.lib.diff.versions import fetch_tags

    registry = workspace_resource().registry()
    fetch_tags(registry)
    diff = diff_versions(registry, args.a, args.b)
    print(diff.to_json() if args.json else render(diff))


def cmd_worker(args: argparse.Namespace) -> None:
    """A cluster worker: runs `--concurrency` steps of the queues it serves at once, each in a
    process of its own started from a thread of Celery's threads pool (cluster_worker.py)."""
    from platform_assets.defs.executors import QUEUES, reachable_broker

    if (deployment := settings.deployment()) != "cluster":
        raise ValueError(
            f"{settings.DEPLOYMENT.name}={deployment!r}: a worker runs the cluster's steps; set "
            f"{settings.DEPLOYMENT.name}=cluster and the cluster's settings (deploy/cluster/README.md)"
        )
    queues = args.queues.split(",")
    if unknown := [q for q in queues if q not in QUEUES]:
        raise ValueError(f"--queues {args.queues}: no queue {unknown}; the queues are {', '.join(QUEUES)}")
    reachable_broker(settings.broker_url())
    from platform_assets.cluster_worker import app

    name = args.name or f"{'+'.join(queues)}-{os.getpid()}@%h"
    app.worker_main(
        ["worker", "--queues", ",".join(queues), "--pool", "threads", "--concurrency", str(args.concurrency)]
        + ["--hostname", name]
        + ["--prefetch-multiplier", "1", "--loglevel", args.loglevel, "--without-gossip", "--without-mingle"]
    )


def _demo(args: argparse.Namespace) -> None:
    """The demo tells its story, not Dagster's: Beta notices about our own definitions are
    silenced before they are imported (the runs' full logs stay in the instance)."""
    from dagster import BetaWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    from platform_assets.demo.run import run

    run(fresh=args.fresh)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="platform-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lake = sub.add_parser("lake", help="the simulated photo-app lake").add_subparsers(
        dest="lake_command", required=True
    )

    gen = lake.add_parser("generate", help="write a seeded lake: app database, images, hourly logs")
    _lake_args(gen)
    default = LakeScale()
    gen.add_argument(
        "--app-db",
        default=None,
        help=f"SQLAlchemy URL of the app database (default: the setting {settings.APP_DB_URL.name}, README)",
    )
    for name in ("users", "photos", "days", "events_per_day", "files_per_hour", "seed", "image_width", "image_height"):
        gen.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(default, name))
    gen.add_argument("--defect-rate", type=float, default=default.defect_rate)
    gen.add_argument("--start-date", default=default.start_date)
    gen.set_defaults(func=cmd_generate)

    app = lake.add_parser("append-hour", help="deliver the next hour of logs (and optionally a late file)")
    _lake_args(app)
    app.add_argument("--late-day", default=None, help="also deliver a late file for this earlier day (YYYY-MM-DD)")
    app.set_defaults(func=cmd_append)

    catalog = sub.add_parser("catalog", help="print the feature catalog (docs/FEATURES.md)")
    catalog.set_defaults(
        func=lambda a: print(
            __import__("platform_assets.lib.features.catalog", fromlist=["x"]).render_catalog(), end=""
        )
    )

    registry = f"the data registry is {settings.WORKSPACE.name}, its remote {settings.DVC_REMOTE.name}"
    rep = sub.add_parser(
        "reproduce",
        help="restore a model's exact shards in a temporary checkout of its tag, verify "
        "every byte (healing from the remote), retrain, compare metrics",
        description=registry,
    )
    rep.add_argument("model_id")
    _lake_args(rep)
    rep.set_defaults(func=cmd_reproduce)

    ver = sub.add_parser(
        "verify",
        help="hash the workspace's pinned shards and models (or, given a model id, that "
        "model's data version) against DVC's records; heal bad cache objects from the remote",
        description=registry,
    )
    ver.add_argument("model_id", nargs="?")
    ver.set_defaults(func=cmd_verify)

    dif = sub.add_parser(
        "diff",
        help="what changed between two models (or registry revisions): partitions, samples by photo id, "
        "feature and label shift, metrics (docs/DIFF.md)",
        description=registry,
    )
    dif.add_argument("a", help="model id, model tag or registry revision (the earlier)")
    dif.add_argument("b", help="model id, model tag or registry revision (the later)")
    dif.add_argument("--json", action="store_true", help="JSON for scripts instead of the table")
    dif.set_defaults(func=cmd_diff)

    demo = sub.add_parser("demo", help="generate the demo lake and materialize the whole graph")
    demo.add_argument("--fresh", action="store_true", help="regenerate the lake even if it exists")
    demo.set_defaults(func=_demo)

    worker = sub.add_parser("worker", help="a cluster worker: run the steps of these queues (deploy/cluster)")
    worker.add_argument("--queues", default="cpu,gpu", help="comma-separated: cpu, gpu (default both)")
    worker.add_argument("--concurrency", type=int, default=1, help="steps at once, a process each (default 1)")
    worker.add_argument("--name", help="worker name, shown in each step's events (default QUEUES-PID@HOST)")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=cmd_worker)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"platform-assets: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
