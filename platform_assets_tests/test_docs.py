"""What the repository promises a newcomer who reads it: docs/ARCHITECTURE.md's Layout names every
module and make target; commit subjects fit a 72-column `git log --oneline`."""

import re
import subprocess
from pathlib import Path

from platform_assets_tests.support.helpers import ROOT


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


SUBJECTS_SINCE = "eb1c99f"  # the last commit whose subject ran past 72 characters


def test_commit_subjects_since_the_rule_fit_72_characters() -> None:
    """Every subject after SUBJECTS_SINCE (only HEAD's where a shallow clone lacks it)."""
    since = subprocess.run(["git", "cat-file", "-e", f"{SUBJECTS_SINCE}^{{commit}}"], cwd=ROOT).returncode == 0
    commits = [f"{SUBJECTS_SINCE}..HEAD"] if since else ["-1", "HEAD"]
    log = subprocess.run(["git", "log", "--format=%h %s", *commits], cwd=ROOT, capture_output=True, text=True)
    long = [line for line in log.stdout.splitlines() if len(line.split(" ", 1)[1]) > 72]
    assert log.returncode == 0 and not long, long or log.stderr
