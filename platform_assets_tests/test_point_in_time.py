"""The as-of join against the brute-force reference (`point_in_time_reference`, what the
`point_in_time_correct` check recomputes), on data built to hit the edges: feature events
exactly at posted_at and just after, users with no history, events given out of order, and
events that arrive late (a day's events appended after the others)."""

import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from platform_assets.lib.features import training_set as ts_lib
from platform_assets.lib.features.labels import compute_labels
from platform_assets.lib.features.photo_features import compute_photo_features
from platform_assets.lib.features.point_in_time_reference import (
    FEATURES,
    Mismatch,
    author_features_as_of,
    compare,
    sample_rows,
)
from platform_assets.lib.features.training_set import (
    ACTIVITY_FEATURES,
    compute_training_set,
    point_in_time_violations,
)
from platform_assets.lib.features.user_activity import compute_user_activity
from platform_assets.lib.staging.app_tables import PHOTOS_SCHEMA, USERS_SCHEMA
from platform_assets.lib.staging.arrow_utils import conform_to
from platform_assets.lib.staging.events import EVENTS_SCHEMA

T0 = datetime(2026, 10, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return conform_to(pa.table({k: pa.array(v, schema.field(k).type) for k, v in cols.items()}), schema)


def build(users, photos, events):
    users_t = table(users, USERS_SCHEMA)
    photos_t = table(photos, PHOTOS_SCHEMA)
    events_t = table(events, EVENTS_SCHEMA)
    start, end = T0, T0 + timedelta(days=60)
    activity = compute_user_activity(events_t, photos_t, users_t, start, end)
    labels = compute_labels(photos_t, events_t.to_batches(), start, end)
    return compute_training_set(compute_photo_features(photos_t, users_t), labels, activity, start, end)


def reference(result: pa.Table, photos: list[dict], events: list[dict]) -> dict[int, dict[str, int]]:
    """Each row's author features by brute force from the events and photos: the reference the
    `point_in_time_correct` check recomputes on a sample of every run's rows."""
    return author_features_as_of(result, table(photos, PHOTOS_SCHEMA), table(events, EVENTS_SCHEMA))


def ev(n, user, ts, kind, photo=None):
    return {
        "event_id": f"e{n}",
        "ts": ts,
        "event_type": kind,
        "user_id": user,
        "photo_id": photo,
        "client": "ios",
        "source_file": "f",
    }


def test_edges_match_the_brute_force_reference() -> None:
    users = [
        {"user_id": u, "username": f"u{u}", "signup_at": T0 - timedelta(days=10), "timezone": "UTC"} for u in (1, 2, 3)
    ]
    p_at = T0 + timedelta(days=20, hours=12)
    photos = [
        {"photo_id": 1, "user_id": 1, "posted_at": T0 + timedelta(days=1), "image_key": "images/1.jpg"},
        {"photo_id": 2, "user_id": 1, "posted_at": p_at, "image_key": "images/2.jpg"},
        {"photo_id": 3, "user_id": 3, "posted_at": p_at, "image_key": "images/3.jpg"},  # user with no history
    ]
    events = [
        ev(1, 1, p_at, "login"),  # exactly at posted_at: counts
        ev(2, 1, p_at + US, "login"),  # just after: must not count
        ev(3, 2, p_at, "like", 1),  # a like received exactly at posted_at
        ev(4, 2, p_at - timedelta(days=7), "like", 1),  # exactly 7 days before: inside the window
        ev(5, 2, p_at - timedelta(days=7) - US, "like", 1),  # just outside
        ev(6, 1, p_at - timedelta(days=7), "like", 1),  # a like the author gives (to their own photo)
        ev(7, 1, T0 + timedelta(days=1), "post", 1),
        ev(8, 1, p_at, "post", 2),
        ev(9, 1, p_at - timedelta(days=1), "login"),  # yesterday's login: not today
        ev(10, 2, p_at + timedelta(hours=3), "view", 2),  # label window
        ev(11, 2, p_at + timedelta(hours=30), "view", 2),  # closes the label window, outside it
    ]
    random.Random(0).shuffle(events)  # events out of order
    result = build(users, photos, events)
    expected = reference(result, photos, events)
    assert compare(result, expected) == []
    assert expected[2] == {  # the reference, by hand: events 1; 6; 3, 4, 6; photos 1, 2; events 6, 9, 1 start sessions
        "author_logins_today": 1,
        "author_likes_given_7d": 1,
        "author_likes_received_7d": 3,
        "author_posts_30d": 2,
        "author_sessions_7d": 3,
    }
    rows = {r["photo_id"]: r for r in result.to_pylist()}
    assert rows[2]["author_logins_today"] == 1 and rows[2]["author_likes_received_7d"] == 3
    assert rows[2]["features_as_of"] == p_at and rows[2]["views"] == 1
    assert rows[3]["features_as_of"] == p_at and rows[3]["author_posts_30d"] == 1  # its own post is its only activity


def test_posts_30d_counts_the_authors_photos_in_the_app_database_not_post_events() -> None:
    users = [{"user_id": 1, "username": "u1", "signup_at": T0 - timedelta(days=10), "timezone": "UTC"}]
    p_at = T0 + timedelta(days=20)
    photos = [
        {
            "photo_id": 1,
            "user_id": 1,
            "posted_at": T0 + timedelta(days=1),
            "image_key": "images/1.jpg",
        },  # no post event
        {"photo_id": 2, "user_id": 1, "posted_at": p_at, "image_key": "images/2.jpg"},
        {"photo_id": 3, "user_id": 1, "posted_at": p_at - timedelta(days=30) - US, "image_key": "images/3.jpg"},
    ]
    events = [
        ev(1, 1, T0 + timedelta(days=5), "post", 99),  # a post event for no photo in the app database
        ev(2, 1, p_at + timedelta(hours=30), "view", 2),
    ]  # closes photo 2's label window
    rows = {r["photo_id"]: r for r in build(users, photos, events).to_pylist()}
    assert rows[2]["author_posts_30d"] == 2  # photos 1 and 2; photo 3 is 1 µs older than 30 days


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_histories_match_the_brute_force_reference(seed: int) -> None:
    rnd = random.Random(seed)
    users = [
        {"user_id": u, "username": f"u{u}", "signup_at": T0 - timedelta(days=5), "timezone": "Asia/Tokyo"}
        for u in range(1, 6)
    ]
    photos, events = [], []
    for pid in range(1, 41):
        posted = T0 + timedelta(minutes=rnd.randrange(0, 45 * 24 * 60))
        author = rnd.randrange(1, 6)
        photos.append({"photo_id": pid, "user_id": author, "posted_at": posted, "image_key": f"images/{pid}.jpg"})
        events.append(ev(len(events), author, posted, "post", pid))
    for _ in range(600):
        ts = T0 + timedelta(minutes=rnd.randrange(0, 50 * 24 * 60))
        kind = rnd.choice(["login", "like", "view", "comment"])
        photo = rnd.choice(photos)["photo_id"] if kind != "login" else None
        events.append(ev(len(events), rnd.randrange(1, 6), ts, kind, photo))
    late = [e for e in events if e["ts"].day == 10]  # one day's events delivered after the rest
    events = [e for e in events if e["ts"].day != 10] + late
    result = build(users, photos, events)
    assert result.num_rows > 20 and point_in_time_violations(result) == 0
    assert compare(result, reference(result, photos, events)) == []


def test_the_reference_covers_every_author_feature() -> None:
    """A feature added to `user_activity` without a brute-force counterpart would go unchecked."""
    assert set(FEATURES) == {f"author_{c}" for c in ACTIVITY_FEATURES}


def test_the_check_names_the_photo_and_feature_of_a_join_that_leaks(monkeypatch) -> None:
    """A join that may take a row up to an hour after posted_at picks, for photo 2, the row of
    the login 1 µs after it: the reference names that photo and feature with both values."""
    users = [{"user_id": 1, "username": "u1", "signup_at": T0 - timedelta(days=10), "timezone": "UTC"}]
    p_at = T0 + timedelta(days=20, hours=12)
    photos = [{"photo_id": 2, "user_id": 1, "posted_at": p_at, "image_key": "images/2.jpg"}]
    events = [
        ev(1, 1, p_at, "login"),
        ev(2, 1, p_at + US, "login"),  # the future
        ev(3, 1, p_at + timedelta(hours=30), "view", 2),  # closes the label window
    ]
    shipped = build(users, photos, events)
    assert compare(shipped, reference(shipped, photos, events)) == []
    leaking_sql = ts_lib.CHUNK_SQL.replace("e.posted_at >= ua.ts", "e.posted_at + INTERVAL 1 HOUR >= ua.ts")
    assert leaking_sql != ts_lib.CHUNK_SQL
    monkeypatch.setattr(ts_lib, "CHUNK_SQL", leaking_sql)
    leaking = build(users, photos, events)
    assert compare(leaking, reference(leaking, photos, events)) == [Mismatch(2, "author_logins_today", 1, 2)]


def test_the_check_counts_a_leaking_row() -> None:
    leaking = pa.table({"posted_at": [T0, T0], "features_as_of": [T0, T0 + US]})
    assert point_in_time_violations(leaking) == 1


def test_the_sample_is_bounded_and_the_same_on_every_run() -> None:
    """Up to 200 rows of at most two posting days (the last, and one by a hash of the date),
    by a hash of photo_id: the same rows however the table is ordered."""
    rnd = random.Random(7)
    posted = [T0 + timedelta(days=rnd.randrange(10), minutes=rnd.randrange(1440)) for _ in range(3000)]
    rows = pa.table(
        {"photo_id": rnd.sample(range(1, 10**9), 3000), "posted_at": pa.array(posted, pa.timestamp("us", tz="UTC"))}
    )
    sample = sample_rows(rows)
    days = {t.date() for t in sample["posted_at"].to_pylist()}
    assert sample.num_rows == 200 and len(days) == 2 and (T0 + timedelta(days=9)).date() in days
    assert sample_rows(rows.take(rnd.sample(range(3000), 3000))).equals(sample)
    assert sample_rows(rows.slice(0, 50), photos=200, days=10).num_rows == 50  # a small run: every row


@pytest.mark.parametrize("seed", [4, 5])
def test_a_day_from_tiles_and_edge_days_equals_the_day_from_every_raw_event(seed: int) -> None:
    """What a day's rows read does not grow with the window (raw events of 2 days, tiles of the 6
    between), and the rows are the same, byte for byte, as from all 30 days of raw events: on
    random histories with events at midnight, exactly 7 days before one another, and sessions
    that cross midnight."""
    from platform_assets.lib.features.user_activity import (
        EVENTS_PER_USER_RANGE,
        DayEvents,
        before_from_events,
        compute_activity_tile,
        compute_user_activity,
        user_activity_of_day,
        user_ranges,
    )

    rnd = random.Random(seed)
    users = [
        {"user_id": u, "username": f"u{u}", "signup_at": T0 - timedelta(days=5), "timezone": "UTC"} for u in range(1, 7)
    ]
    photos = [
        {
            "photo_id": pid,
            "user_id": rnd.randrange(1, 7),
            "posted_at": T0 + timedelta(minutes=rnd.randrange(0, 20 * 24 * 60)),
            "image_key": f"images/{pid}.jpg",
        }
        for pid in range(1, 31)
    ]
    events = []
    for _ in range(900):
        kind = rnd.choice(["login", "like", "like", "view", "comment"])
        ts = T0 + timedelta(minutes=rnd.randrange(0, 20 * 24 * 60))
        ts = rnd.choice([ts, ts.replace(hour=0, minute=0), ts.replace(hour=23, minute=50)])  # midnights, late sessions
        photo = rnd.choice(photos)["photo_id"] if kind != "login" else None
        events.append(ev(len(events), rnd.randrange(1, 7), ts, kind, photo))
        if rnd.random() < 0.1:  # the same act 7 days on: it leaves one window as the other enters
            events.append(ev(len(events), events[-1]["user_id"], ts + timedelta(days=7), kind, photo))
    users_t, photos_t, events_t = table(users, USERS_SCHEMA), table(photos, PHOTOS_SCHEMA), table(events, EVENTS_SCHEMA)
    days = {
        T0.date() + timedelta(days=d): [e for e in events if e["ts"].date() == T0.date() + timedelta(days=d)]
        for d in range(-9, 21)
    }

    def events_of(day):  # in batches of 7 events: a range's events come from several
        events = table(days.get(day, []), EVENTS_SCHEMA)
        return DayEvents(events.num_rows, events.to_batches(7))

    def tile_of(day, per_range=EVENTS_PER_USER_RANGE):
        before = before_from_events(events_of(day - timedelta(days=1)), day)
        return compute_activity_tile(events_of(day), before, photos_t, users_t, day, per_range)

    compared = 0
    for d in range(8, 20):
        day = T0.date() + timedelta(days=d)
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        reference = compute_user_activity(events_t, photos_t, users_t, start, start + timedelta(days=1))
        (from_tiles,) = user_activity_of_day(day, events_of, lambda t, r: r.rows(tile_of(t)), photos_t, users_t)
        assert from_tiles.equals(reference), day
        compared += reference.num_rows
        if d % 5 == 0:  # a range of users at a time (3 to 6 ranges of about 15 edge events): the same rows
            edges = sum(events_of(day - timedelta(days=k)).rows for k in (0, 7))
            assert len(user_ranges(users_t["user_id"], edges, 15)) >= 3, day
            by_range = user_activity_of_day(
                day, events_of, lambda t, r: r.rows(tile_of(t, 15)), photos_t, users_t, per_range=15
            )
            assert pa.concat_tables(by_range).equals(reference), day
            assert tile_of(day, 15).equals(tile_of(day)), day
    assert compared > 500


def test_a_day_joined_against_the_day_befores_state_equals_the_join_over_31_days() -> None:
    """What a training day reads does not grow with the history (its own activity rows and one
    row per user from `latest_activity`), and its rows are those of the as-of join over the 31
    days of activity rows before it: on random activity rows over 80 days, with users silent for
    40 days (no row: older ones fall out of the lookback) and rows and photos at midnight."""
    from platform_assets.lib.features.latest_activity import AS_OF_DAYS, fold_latest, rebuild_latest
    from platform_assets.lib.features.user_activity import USER_ACTIVITY_SCHEMA

    rnd = random.Random(6)
    span, users = 80, range(1, 9)
    quiet = {u: rnd.randrange(0, span - 40) for u in users}  # each user: 40 days without a row
    instants = set()
    while len(instants) < 1200:
        user, minute = rnd.choice(users), rnd.randrange(0, span * 24 * 60)
        if not quiet[user] * 1440 <= minute < (quiet[user] + 40) * 1440:
            instants.add((user, T0 + timedelta(minutes=rnd.choice([minute, minute // 1440 * 1440]))))
    activity = table(
        [
            {"user_id": u, "ts": ts, "days_since_signup": rnd.random() * 100}
            | {c: rnd.randrange(0, 5) for c in ("logins_today", "likes_given_7d", "likes_received_7d", "posts_30d")}
            | {"sessions_7d": rnd.randrange(0, 5)}
            for u, ts in sorted(instants)
        ],
        USER_ACTIVITY_SCHEMA,
    )
    users_t = table(
        [{"user_id": u, "username": f"u{u}", "signup_at": T0, "timezone": "UTC"} for u in users], USERS_SCHEMA
    )
    photos = [
        {"photo_id": pid, "user_id": rnd.choice(users), "image_key": "x"}
        | {"posted_at": T0 + timedelta(days=rnd.randrange(0, span), minutes=rnd.choice([0, rnd.randrange(1440)]))}
        for pid in range(1, 241)
    ]
    photos_t = table(photos, PHOTOS_SCHEMA)
    closing = [ev(0, 1, T0 + timedelta(days=span + 2), "view", 1)]  # every 24 h label window closes
    labels = compute_labels(photos_t, table(closing, EVENTS_SCHEMA).to_batches(), T0, T0 + timedelta(days=span))
    features = compute_photo_features(photos_t, users_t)
    day_of = pa.compute.strftime(activity["ts"], format="%Y-%m-%d").to_pylist()

    def rows_of(day) -> pa.Table:
        return activity.filter(pa.array([d == day.isoformat() for d in day_of]))

    def batches_of(day) -> list[pa.RecordBatch]:  # of 7 rows: a user's rows of a day span batches
        return rows_of(day).to_batches(7)

    state = rebuild_latest(T0.date() - timedelta(days=1), lambda d: None)
    compared = silent = 0
    for n in range(span):
        day, start = T0.date() + timedelta(days=n), T0 + timedelta(days=n)
        window = pa.concat_tables([rows_of(day - timedelta(days=k)) for k in range(AS_OF_DAYS, -1, -1)])
        expected = compute_training_set(features, labels, window, start, start + timedelta(days=1))
        got = compute_training_set(
            features, labels, pa.concat_tables([state, rows_of(day)]), start, start + timedelta(days=1)
        )
        assert got.equals(expected), day
        compared, silent = compared + got.num_rows, silent + got["features_as_of"].null_count
        state = fold_latest(state, batches_of(day), day)
        if n % 20 == 19:  # a state rebuilt from the 31 days is the state folded day by day
            assert state.equals(rebuild_latest(day, batches_of)), day
    assert compared > 200 and silent > 5  # authors whose rows all fell out of the lookback: NULL
