"""Re-cutting a stream of Arrow tables into batches of a fixed number of rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa


def rebatched(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The tables' rows in order, `rows` at a time (the last batch may be short; none for no
    rows): memory holds about one batch, whatever the tables' sizes."""
    pending: list[pa.Table] = []
    have = 0
    for table in tables:
        pending.append(table)
        have += table.num_rows
        while have >= rows:
            block = pa.concat_tables(pending)
            yield block.slice(0, rows)
            pending, have = [block.slice(rows)], have - rows
    if have:
        yield pa.concat_tables(pending)
