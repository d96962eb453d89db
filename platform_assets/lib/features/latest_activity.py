"""`latest_activity`: each user's latest `user_activity` row over the 31 days up to a day's end.

The training set's as-of join looks back 31 days. Read raw, that is 31 days of activity rows
for every day it builds (about 2 rows per event: hundreds of millions at 10 M events a day). A
day's state folds that day's rows into the day before's state, so the join reads one day of
rows and one state of at most a row per user, whatever the history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from platform_assets.lib import duck
from platform_assets.lib.features.user_activity import LOOKBACK_DAYS, USER_ACTIVITY_SCHEMA
from platform_assets.lib.staging.arrow_utils import conform_to

LATEST_ACTIVITY_SCHEMA = USER_ACTIVITY_SCHEMA
AS_OF_DAYS = LOOKBACK_DAYS + 1  # the days a state covers: the day and the 30 before it

# A user's latest row is the day's last one if the day has any, else the state's, unless that
# one fell out of the 31 days. The day's rows arrive a batch at a time, each cut to its users'
# last rows (`LAST_SQL`): memory holds a batch and about a row per user, not the day.
LAST_SQL = "SELECT * FROM batch QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY ts DESC) = 1"
FOLD_SQL = """
SELECT * FROM (
    SELECT * FROM previous WHERE ts >= $since
    UNION ALL BY NAME
    SELECT * FROM day_rows
) QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY ts DESC) = 1
ORDER BY user_id
"""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def fold_latest(previous: pa.Table, day_rows: Iterable[pa.RecordBatch], day: date) -> pa.Table:
    """The state of `day` from the state of the day before and `day`'s activity rows."""
    with duck.connect() as con:
        last = [USER_ACTIVITY_SCHEMA.empty_table()]
        for batch in day_rows:
            con.register("batch", batch)
            last.append(conform_to(con.sql(LAST_SQL).to_arrow_table(), USER_ACTIVITY_SCHEMA))
        con.register("previous", previous)
        con.register("day_rows", pa.concat_tables(last))
        since = _midnight(day - timedelta(days=LOOKBACK_DAYS))
        return conform_to(con.sql(FOLD_SQL, params={"since": since}).to_arrow_table(), LATEST_ACTIVITY_SCHEMA)


def rebuild_latest(day: date, activity_of: Callable[[date], Iterable[pa.RecordBatch] | None]) -> pa.Table:
    """The state of `day` from the activity rows of its 31 days, a day at a time: what a missing
    or outdated state is replaced by. Days never computed (`activity_of` gives None) are not
    folded; what fell out of the 31 days goes once, at the end."""
    state = LATEST_ACTIVITY_SCHEMA.empty_table()
    for back in range(AS_OF_DAYS - 1, -1, -1):
        d = day - timedelta(days=back)
        if (rows := activity_of(d)) is not None:
            state = fold_latest(state, rows, d)
    return fold_latest(state, [], day)
