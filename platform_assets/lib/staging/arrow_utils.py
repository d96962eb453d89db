"""Small Arrow helpers shared by the staging transforms."""

import pyarrow as pa


def described_schema(*fields: tuple[str, pa.DataType, str]) -> pa.Schema:
    """An Arrow schema whose fields carry their description: one contract for data and docs."""
    return pa.schema([pa.field(name, type_, metadata={"description": doc}) for name, type_, doc in fields])


def conform_to(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast `table` to the contract `schema` (same columns, same order)."""
    return table.select(schema.names).cast(schema)
