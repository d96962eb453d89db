"""Materialization metadata every table asset reports: rows, bytes, schema, location, preview."""

import dagster as dg
import polars as pl
import pyarrow as pa


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """Dagster's column schema from an Arrow schema, descriptions taken from field metadata."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=f.name,
                type=str(f.type),
                description=(f.metadata or {}).get(b"description", b"").decode() or None,
            )
            for f in schema
        ]
    )


def preview(table: pa.Table, rows: int = 5) -> dg.MetadataValue:
    """The first rows as a Markdown table (long strings cut, so the UI stays readable)."""
    df = pl.from_arrow(table.slice(0, rows))
    assert isinstance(df, pl.DataFrame)
    df = df.with_columns(pl.col(pl.String).str.slice(0, 80))
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=rows,
        tbl_cols=-1,
        fmt_str_lengths=80,
        tbl_width_chars=10_000,
    ):
        return dg.MetadataValue.md(str(df))


def table_metadata(table: pa.Table, uri: str, size: int, row_count: int | None = None) -> dict:
    """`table` may be only the first rows of a table written elsewhere; `row_count` then counts all."""
    return {
        "dagster/row_count": table.num_rows if row_count is None else row_count,
        "dagster/column_schema": column_schema(table.schema),
        "dagster/uri": dg.MetadataValue.path(uri),
        "bytes": size,
        "preview": preview(table),
    }
