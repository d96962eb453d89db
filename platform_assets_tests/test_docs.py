"""What docs/ARCHITECTURE.md's Layout promises a newcomer: every module and every make target named."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout() -> str:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    return text.split("## Layout", 1)[1].split("```")[1]


def test_the_layout_names_every_module_of_the_package() -> None:
    tracked = subprocess.run(["git", "ls-files", "platform_assets"], cwd=ROOT, capture_output=True, text=True).stdout
    modules = {Path(f).name for f in tracked.split() if f.endswith(".py") and not f.endswith("__init__.py")}
    named = set(re.findall(r"[\w]+\.py", layout()))
    assert modules - named == set(), "add them to the Layout in docs/ARCHITECTURE.md"


def test_the_layout_names_every_make_target() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    (line,) = [line for line in layout().splitlines() if line.startswith("Makefile ")]
    assert set(line.split(None, 1)[1].split(", ")) == targets
