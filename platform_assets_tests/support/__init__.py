"""What the tests share: servers started for real on loopback (PostgreSQL, the S3 API server,
Redis), the production and cluster stacks, lakes and helpers, and the child processes some
tests start. Nothing here is a test."""
