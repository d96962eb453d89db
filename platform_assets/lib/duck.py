"""DuckDB connections that give the same bytes on every host and hold bounded memory."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from platform_assets.lib.cpu import usable_cores

# DuckDB's memory per thread of a connection. Its default is 80 % of the machine's memory, so it
# keeps whatever a day's sort or window touched; within a limit it spills to its temporary
# directory instead, and a 100x day costs it no more memory than a 10x one (docs/BENCHMARKS.md,
# "scale"). A 10 M-event day's sort failed at 48 MiB a thread: 128 MiB leaves a margin.
MEMORY_PER_THREAD_MB = 128


@contextmanager
def connect(memory_limit: str | None = None, threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection of `threads` (the cores this process may use) whose session time zone is UTC,
    whose memory is `memory_limit` (MEMORY_PER_THREAD_MB a thread) and which spills past it to
    a temporary directory removed on close. DuckDB otherwise takes the host's time zone:
    zone-less timestamps would be read, truncated to days and printed in local time."""
    threads = threads or usable_cores()
    with tempfile.TemporaryDirectory(prefix="duckdb-spill-") as spill:
        config = {
            "threads": threads,
            "memory_limit": memory_limit or f"{MEMORY_PER_THREAD_MB * threads}MB",
            "temp_directory": spill,
        }
        con = duckdb.connect(config=config)
        try:
            con.execute("SET TimeZone = 'UTC'")  # not in `config`: the ICU setting exists only once connected
            yield con
        finally:
            con.close()
