"""`make demo` (run.py): a sample lake generated where the local deployment reads it, the whole
graph materialized on it. The local deployment's locations (`.demo/`, `data/`, `.dvc-remote/`)
are settings, in `platform_assets/settings.py`: production definitions import nothing from here."""
