"""Plain Python the assets call: testable without Dagster."""
