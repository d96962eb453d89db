"""Where the local deployment keeps its data when the environment names no other place: the
demo's lake and app database under `.demo/`, the data registry in `data/`, its DVC remote in
`.dvc-remote/`. Production sets every location (see deploy/README.md)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = PROJECT_ROOT / ".demo"
DEMO_LAKE = DEMO_DIR / "lake"
DEMO_APP_DB_URL = f"sqlite:///{DEMO_DIR / 'app.db'}"
LOCAL_REGISTRY = PROJECT_ROOT / "data"
LOCAL_DVC_REMOTE = PROJECT_ROOT / ".dvc-remote"
