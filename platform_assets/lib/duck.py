"""DuckDB connections that give the same bytes on every host."""

from typing import Any

import duckdb


def connect(config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A connection whose session time zone is UTC. DuckDB otherwise takes the host's: zone-less
    timestamps would be read, truncated to days and printed in local time."""
    con = duckdb.connect(config=config or {})
    con.execute("SET TimeZone = 'UTC'")  # not in `config`: the ICU setting exists only once connected
    return con
