"""Augmented, fixed-size, deterministic training shards (Parquet) and their torch reader."""
