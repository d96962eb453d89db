"""Point-in-time features, labels and the training set, as DuckDB SQL over Arrow tables."""
