"""The app database the platform extracts from: SQLite by default, any SQLAlchemy URL."""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa

_META = sa.MetaData()
USERS = sa.Table(
    "users",
    _META,
    sa.Column("user_id", sa.BigInteger, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("signup_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("country", sa.String(2)),
    sa.Column("timezone", sa.String(64)),
)
PHOTOS = sa.Table(
    "photos",
    _META,
    sa.Column("photo_id", sa.BigInteger, primary_key=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("image_key", sa.String(255), nullable=False),
)


def write_app_db(url: str, users: pl.DataFrame, photos: pl.DataFrame, batch: int = 5000) -> None:
    """Replace the users and photos tables with the simulated rows."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            _META.drop_all(conn)
            _META.create_all(conn)
            for table, df in ((USERS, users), (PHOTOS, photos)):
                rows = df.select([c.name for c in table.columns]).to_dicts()
                for i in range(0, len(rows), batch):
                    conn.execute(table.insert(), rows[i : i + batch])
    finally:
        engine.dispose()
