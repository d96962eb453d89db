"""The data registry: a git repository whose history is the history of the data.

DVC's data-registry pattern. Shards and models are DVC outputs of this repository (one `.dvc`
file per partition or model); a pin is one commit of one `.dvc` file, made only after its
objects are on the DVC remote, and a trained model is a tag. So any commit or tag names bytes
the remote has, and `git checkout <tag> -- shards && dvc checkout` (or `dvc pull`) restores them.

Why the registry is a repository of its own: pins are commits, and committing them into the
project's source history would interleave data commits with the user's work (and pick up
whatever they had staged). Why DVC runs as a command-line tool from its own environment and
is never imported: its dependencies (hydra-core's antlr4 pin) break Dagster's selection parser.

Why the cache type is `reflink,copy`: a hard-linked or symlinked workspace file *is* the cache
object, so an in-place write corrupts the cache and every later checkout. Copies (or
copy-on-write reflinks) keep the two apart. `dvc checkout` trusts the cache and re-hashes
nothing, so `verify` here hashes every restored file against its DVC listing and heals a bad
object from the remote.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from filelock import FileLock

from platform_assets.lib.cpu import usable_cores
from platform_assets.lib.lake_store import TEMP_PREFIX, LakeStore
from platform_assets.settings import DVC, dvc_path

DVC_ENV = DVC.name  # the dvc executable, when it is not `.venv/bin/dvc` or on PATH
# Every dvc command otherwise starts a detached `dvc daemon analytics` that reports the
# command to dvc.org: pins are the platform's calls, not the user's, and that daemon cost
# more CPU than the command (1.0 s against 0.7 s for a `dvc status`, measured here).
NO_ANALYTICS = {"DVC_NO_ANALYTICS": "1"}
REMOTE = "storage"  # the registry's one DVC remote
BRANCH = "main"
CACHE_TYPE = "reflink,copy"  # never hard links or symlinks: see the module docstring
LOCK_TIMEOUT_S = 600
HEAL_PASSES = 3
STALE_BUILD_S = 86_400  # a build folder this old was left by a killed run
GIT_LOCKS = ("config.lock", "index.lock", "HEAD.lock", f"refs/heads/{BRANCH}.lock", "packed-refs.lock")
GIT_PUSH_ATTEMPTS = 5
IDENTITY = ("platform-assets", "platform-assets@localhost")  # used only where git has none configured
SHARDS = "shards"
MODELS = "models/popularity"
# One wildcard pair per output folder instead of DVC's one line per output: DVC matches every
# `.gitignore` line against every `.dvc` file, which makes thousands of partitions quadratic.
GITIGNORES = {SHARDS: "/dt=*\n!/dt=*.dvc\n", MODELS: "/*\n!/*.dvc\n!/.gitignore\n"}
ROOT_GITIGNORE = "/.platform-assets.lock\n"
QUARANTINE = "quarantine"  # on the DVC remote: corrupt objects moved aside, outside DVC's files/md5/
# The latest model's metrics, git-tracked and committed with its pin, so its tag holds its own:
# `dvc metrics diff popularity-model/<a> popularity-model/<b>` and `dvc metrics show -T` just work.
METRICS_FILE = "metrics/popularity_model.json"
DVC_YAML = f"# Declared for DVC's own tools; Dagster runs the pipeline (no stages).\nmetrics:\n- {METRICS_FILE}\n"
# Two hosts that tag models at once both rewrite the metrics file: a rebase keeps the replayed
# (newer) commit's copy instead of stopping on the conflict. The driver is per clone (git config).
METRICS_MERGE = "platform-assets-latest"
GITATTRIBUTES = f"/{METRICS_FILE} merge={METRICS_MERGE}\n"


def shard_dir(day: str) -> str:
    """A day's training shards, relative to the registry root (`shards/dt=YYYY-MM-DD`)."""
    return f"{SHARDS}/dt={day}"


def model_dir(model_id: str) -> str:
    return f"{MODELS}/{model_id}"


def model_tag(model_id: str) -> str:
    """The git tag of a trained model: the commit whose `.dvc` files are its data version."""
    return f"popularity-model/{model_id}"


class RegistryError(RuntimeError):
    """A registry operation that cannot succeed as configured (the message says what to do)."""


class RegistryUnavailableError(RegistryError):
    """The DVC remote or the git remote could not be reached: transient, worth a retry."""


class RestoreError(RegistryError):
    """Bytes that could not be restored to their recorded hashes from the cache or the remote."""


@dataclass(frozen=True)
class Pin:
    path: str  # relative to the registry root
    dvc_file: str
    md5: str  # DVC's hash of the output: "<md5>.dir" for a directory
    files: int
    bytes: int
    commit: str  # the registry commit that holds this `.dvc` file
    seconds: float


@dataclass(frozen=True)
class Damage:
    """A workspace file whose bytes are not the ones its `.dvc` file records."""

    file: Path
    cache_object: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.file} ({self.reason}; cache object {self.cache_object})"


def dvc_executable() -> str:
    """`$PLATFORM_ASSETS_DVC`, else the `dvc` beside this Python (the Makefile links the tool
    environment's there), else `dvc` on PATH."""
    for candidate in (dvc_path(), str(Path(sys.executable).with_name("dvc")), shutil.which("dvc")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RegistryError(
        f"no dvc executable: run `make env` (it installs DVC in .venv-dvc/ and links .venv/bin/dvc), "
        f"or set {DVC_ENV} to a dvc 3.x executable"
    )


def _md5(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _intact(obj: Path) -> bool:
    """A cache object's name is the md5 of its bytes."""
    return obj.is_file() and _md5(obj) == obj.parent.name + obj.name.removesuffix(".dir")


def _evict(obj: Path) -> str:
    """Remove a cache object whose bytes do not match its name (DVC would use it as it is);
    returns what it found: "absent", "intact" or "corrupt" (one hash of the object)."""
    if not obj.is_file():
        return "absent"
    if _intact(obj):
        return "intact"
    obj.chmod(0o644)
    obj.unlink()
    return "corrupt"


def object_key(md5: str) -> str:
    """Where DVC 3 keeps the object with this hash, in a cache or on a remote (a directory
    listing's hash ends in `.dir`)."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def cache_object(cache: Path, md5: str) -> Path:
    return cache / object_key(md5)


def write_stub(repo: Path, rel: str) -> None:
    """A `.dvc` file naming an output not yet hashed. `dvc commit` fills it in and, unlike
    `dvc add`, never loads every other `.dvc` file to do so: pin cost stays flat with history."""
    target = repo / f"{rel}.dvc"
    temp = target.with_name(f"{TEMP_PREFIX}{target.name}")  # written whole, then renamed: a kill never leaves it torn
    # JSON is YAML with every string quoted: an id like 1e5 or 0123 stays a name, not a number
    temp.write_text(json.dumps({"outs": [{"path": Path(rel).name}]}) + "\n")
    temp.replace(target)


def read_dvc_file(path: Path) -> dict:
    """The single output recorded by a `.dvc` file."""
    return yaml.safe_load(path.read_text())["outs"][0]


def pinned_md5(repo: Path, rel: str, strict: bool = True) -> str | None:
    """The hash the checked-out `.dvc` file of `rel` records (None: not pinned; with `strict`
    False, also None for a file that is not a `.dvc` file, e.g. one cut short by a kill)."""
    path = repo / f"{rel}.dvc"
    if not path.exists():
        return None
    try:
        return read_dvc_file(path).get("md5")
    except (yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError):
        if strict:
            raise
        return None


def verify(repo: Path, cache: Path, rels: Sequence[str]) -> list[Damage]:
    """Hash every file of every output in `rels` against the listing its `.dvc` file names.

    The listing itself is checked too: a `.dir` object's name is the md5 of its bytes."""
    damage = []
    for rel in rels:
        md5 = pinned_md5(repo, rel)
        if md5 is None:
            damage.append(Damage(repo / rel, repo / f"{rel}.dvc", "not pinned: no .dvc file"))
            continue
        if not md5.endswith(".dir"):
            entries, base = [{"relpath": "", "md5": md5}], repo / rel
        else:
            listing = cache_object(cache, md5)
            if not _intact(listing):
                state = "missing" if not listing.exists() else "corrupt"
                damage.append(Damage(repo / rel, listing, f"directory listing {state} in the cache"))
                continue
            entries, base = json.loads(listing.read_bytes()), repo / rel
        for entry in entries:
            file = base / entry["relpath"] if entry["relpath"] else base
            expected = entry["md5"]
            if not file.is_file():
                damage.append(Damage(file, cache_object(cache, expected), "missing from the workspace"))
            elif (got := _md5(file)) != expected:
                damage.append(Damage(file, cache_object(cache, expected), f"md5 {got}, recorded {expected}"))
    return damage


@dataclass
class Registry:
    """The registry at `root` (created on first use), pushing objects to `remote_url` (a
    directory or s3://bucket/prefix) and, when `git_remote` is set, commits and tags there."""

    root: Path
    remote_url: str
    s3_endpoint_url: str | None = None
    git_remote: str | None = None
    _ready: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()  # clones and config.local need an absolute path

    @property
    def cache(self) -> Path:
        return self.root / ".dvc" / "cache"

    # --- commands -------------------------------------------------------------------------

    def _run(
        self, cmd: list[str], cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(cmd, cwd=cwd or self.root, capture_output=True, text=True, env=env)
        if check and done.returncode:
            raise RegistryError(f"`{' '.join(cmd[1:3])}` failed in {cwd or self.root}: {_tail(done)}")
        return done

    def git(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        return self._run(["git", *args], cwd, check).stdout.strip()

    def dvc(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self._run([dvc_executable(), "--wait-for-lock", *args], cwd, check, {**os.environ, **NO_ANALYTICS})

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Pins, tags and registry set-up from parallel runs on one machine, one at a time."""
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / ".platform-assets.lock"), timeout=LOCK_TIMEOUT_S):
            self._clear_stale_git_locks()
            yield

    def _clear_stale_git_locks(self) -> None:
        """A git command killed mid-write leaves its `.lock` file, and every later git command
        refuses to run. Under our lock no git command of ours runs here, so one left is stale."""
        git_dir = self.root / ".git"
        for name in GIT_LOCKS:
            (git_dir / name).unlink(missing_ok=True)

    # --- set-up ---------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the registry (or clone it from `git_remote`) and point it at the remote.

        It counts as set up only once its first commit exists; until then every step is
        repeated (each is safe to repeat), so a run killed mid set-up is finished by the next."""
        if self._ready:
            return
        with self.locked():
            if not self._has_commit():
                self._set_up()
            elif self.git_remote and self._run(["git", "remote", "get-url", "origin"], check=False).returncode:
                self.git("remote", "add", "origin", self.git_remote)  # a registry that gets a git remote later
                self._publish()
            if not self._remote_configured():
                self._configure_remote()
                self._commit([".dvc/config"], f"DVC remote {REMOTE} -> {self.remote_url}")
                self._publish()
            if not (self.root / "dvc.yaml").exists():  # a registry set up before metrics were declared
                self._commit(self._declare_metrics(), "DVC metrics declared")
                self._publish()
            self._configure_host()
        self._ready = True

    def _configure_host(self) -> None:
        """Hash with a thread per core this process may use: DVC's default on a 2-core host is
        one, and hashing is most of a pin. In `.dvc/config.local`: a host's own, never committed."""
        line = f"checksum_jobs = {self.jobs}"
        local = self.root / ".dvc" / "config.local"
        if line not in {row.strip() for row in (local.read_text().splitlines() if local.exists() else [])}:
            self.dvc("config", "--local", "core.checksum_jobs", str(self.jobs))
        if not self.git("config", f"merge.{METRICS_MERGE}.driver", check=False):
            self.git("config", f"merge.{METRICS_MERGE}.driver", "cp %B %A")  # %B: the commit replayed

    def _declare_metrics(self) -> list[str]:
        """The registry-root `dvc.yaml` naming the metrics file, and its merge rule; returns them."""
        (self.root / "dvc.yaml").write_text(DVC_YAML)
        (self.root / ".gitattributes").write_text(GITATTRIBUTES)
        return ["dvc.yaml", ".gitattributes"]

    @property
    def jobs(self) -> int:
        return usable_cores()

    def _has_commit(self) -> bool:
        return (self.root / ".git").exists() and self._run(
            ["git", "rev-parse", "-q", "--verify", "HEAD"], check=False
        ).returncode == 0

    def _set_up(self) -> None:
        self.git("init", "-q", "-b", BRANCH)  # also repairs a .git left half-made by a kill
        if not self.git("config", "user.email", check=False):
            self.git("config", "user.name", IDENTITY[0])
            self.git("config", "user.email", IDENTITY[1])
        if self.git_remote:
            if self._run(["git", "remote", "get-url", "origin"], check=False).returncode:
                self.git("remote", "add", "origin", self.git_remote)
            listed = self._run(["git", "ls-remote", "--heads", "origin", BRANCH], check=False)
            if listed.returncode:
                raise RegistryUnavailableError(f"git remote {self.git_remote} unreachable: {_tail(listed)}")
            if listed.stdout.strip():  # the registry exists: this host joins it
                self._fetch_git()
                self.git("checkout", "-q", "-B", BRANCH, f"origin/{BRANCH}")
                return
        self.dvc("init", "-q", "--force")  # --force: over a .dvc/ a killed set-up left
        self.dvc("config", "cache.type", CACHE_TYPE)
        for folder, patterns in GITIGNORES.items():
            (self.root / folder).mkdir(parents=True, exist_ok=True)
            (self.root / folder / ".gitignore").write_text(patterns)
        (self.root / ".gitignore").write_text(ROOT_GITIGNORE)
        (self.root / ".dvcignore").write_text(f"{TEMP_PREFIX}*\n")  # a killed writer's temp file
        self._configure_remote()
        ours = [
            ".dvc/config",
            ".dvc/.gitignore",
            ".dvcignore",
            ".gitignore",
            *(f"{folder}/.gitignore" for folder in GITIGNORES),
            *self._declare_metrics(),
        ]  # never a file we did not write
        self._commit(ours, "data registry: DVC initialised, remote configured")
        self._publish()

    def _remote_lines(self) -> list[str]:
        lines = [f"url = {self.remote_url}"]
        return lines + ([f"endpointurl = {self.s3_endpoint_url}"] if self.s3_endpoint_url else [])

    def _remote_configured(self) -> bool:
        config = {line.strip() for line in (self.root / ".dvc" / "config").read_text().splitlines()}
        return f"remote = {REMOTE}" in config and all(line in config for line in self._remote_lines())

    def _configure_remote(self) -> None:
        """The remote is committed in `.dvc/config` (its URL only; credentials come from the
        environment), so a clone, `dvc pull` and `dvc get` find the bytes without set-up."""
        self.dvc("remote", "add", "--force", "--default", REMOTE, self.remote_url)
        if self.s3_endpoint_url:
            self.dvc("remote", "modify", REMOTE, "endpointurl", self.s3_endpoint_url)

    # --- pins -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def building(self, rel: str) -> Iterator[str]:
        """A fresh folder to build output `rel` in (relative to the root, under `.dvc/tmp/`, which
        DVC and git ignore); `pin(rel, built=...)` swaps it into place under the registry's lock.
        A build that fails or is killed leaves the workspace's `rel` as it was."""
        self.ensure()
        builds = self.root / ".dvc" / "tmp" / "build"
        builds.mkdir(parents=True, exist_ok=True)
        for stale in builds.iterdir():  # left by killed runs
            if time.time() - stale.stat().st_mtime > STALE_BUILD_S:
                shutil.rmtree(stale, ignore_errors=True)
        where = Path(tempfile.mkdtemp(prefix=f"{Path(rel).name}-", dir=builds))
        try:
            yield where.relative_to(self.root).as_posix()
        finally:
            shutil.rmtree(where, ignore_errors=True)

    def _swap_in(self, built: str, rel: str) -> None:
        """The built folder becomes `rel`: two renames, so `rel` is never a mix of two builds."""
        target = self.root / rel
        old = Path(tempfile.mkdtemp(prefix="replaced-", dir=(self.root / built).parent)) / "old"
        if target.exists():
            target.rename(old)
        (self.root / built).rename(target)
        shutil.rmtree(old.parent, ignore_errors=True)

    def pin(self, rel: str, message: str, built: str | None = None) -> Pin:
        """Hash `rel` into the cache, push its objects to the remote, commit its `.dvc` file
        (and push the commit). Done only at the end; a rerun after a crash finishes the job.
        `built`: a folder from `building(rel)`, swapped into place first, under the lock (a
        workspace `verify` never sees half of it)."""
        self.ensure()
        started = time.perf_counter()
        with self.locked():
            if built is not None:
                self._swap_in(built, rel)
            self._catch_up()
            self._pin_locked(rel, message)
            self._publish()
        return self._pin_result(rel, self.head(), time.perf_counter() - started)

    def pin_model(self, rel: str, tag: str, message: str, shards: dict[str, str], metrics: dict | None = None) -> Pin:
        """Pin a model directory and tag the commit. `shards` maps each shard output the model
        was trained on to its DVC hash; the tagged commit must hold exactly those `.dvc` files,
        so a partition re-pinned while the model trained fails the tag instead of lying. With
        `metrics`, the same commit rewrites `METRICS_FILE` (under the lock, after catching up:
        another host's model never finds it half-changed)."""
        self.ensure()
        started = time.perf_counter()
        with self.locked():
            self._catch_up()
            self._check_unmoved(shards)
            if metrics is not None:
                (self.root / METRICS_FILE).parent.mkdir(exist_ok=True)
                (self.root / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
            self._pin_locked(rel, message, [METRICS_FILE] if metrics is not None else [])
            self._publish()  # may rebase onto another host's pins: check again before tagging
            self._check_unmoved(shards)
            if self.git_remote:
                self._fetch_git()  # a host that trained the same id first owns its tag
            if not self.has_tag(tag):
                self.git("tag", "-a", tag, "-m", message)
                self._publish()  # pushes the new tag
        return self._pin_result(rel, self.git("rev-list", "-n1", tag), time.perf_counter() - started)

    def _check_unmoved(self, shards: dict[str, str]) -> None:
        moved = sorted(rel for rel, md5 in shards.items() if self.committed_md5(rel) != md5)
        if moved:
            raise RegistryError(
                f"shards re-pinned while the model trained (no tag made): {moved}; train again on the latest versions"
            )

    def _pin_locked(self, rel: str, message: str, also: Sequence[str] = ()) -> str:
        """Hash, push and commit `rel` (with the git-tracked files `also`, in the same commit)."""
        if (
            pinned_md5(self.root, rel, strict=False) is None
        ):  # a `.dvc` file a killed `dvc commit` left half-written too
            write_stub(self.root, rel)  # a complete one is kept: DVC's state then skips re-hashing unchanged files
        self.dvc("commit", "--force", "--quiet", f"{rel}.dvc")
        pushed = self.dvc("push", "--jobs", str(self.jobs), "--remote", REMOTE, f"{rel}.dvc", check=False)
        if pushed.returncode:
            raise RegistryUnavailableError(
                f"pushing {rel} to the DVC remote {self.remote_url} failed (the pin is "
                f"not done; a rerun finishes it): {_tail(pushed)}"
            )
        return self._commit([f"{rel}.dvc", *also], message)

    def _pin_result(self, rel: str, commit: str, seconds: float, out: dict | None = None) -> Pin:
        """The pin of `rel` from its `.dvc` output `out` (default: the workspace's `.dvc` file)."""
        out = out if out is not None else read_dvc_file(self.root / f"{rel}.dvc")
        return Pin(rel, f"{rel}.dvc", out["md5"], out.get("nfiles", 1), out.get("size", 0), commit, seconds)

    def _committed_out(self, rel: str, rev: str) -> dict | None:
        shown = self._run(["git", "show", f"{rev}:{rel}.dvc"], check=False)
        return yaml.safe_load(shown.stdout)["outs"][0] if shown.returncode == 0 else None

    def committed_md5(self, rel: str, rev: str = "HEAD") -> str | None:
        """The hash `rel`'s `.dvc` file records at `rev` (None: not pinned there)."""
        out = self._committed_out(rel, rev)
        return out.get("md5") if out else None

    def pin_at(self, rel: str, rev: str) -> Pin:
        """The pin of `rel` as recorded at `rev` (a tag: the commit it names)."""
        out = self._committed_out(rel, rev)
        if out is None:
            raise RegistryError(f"{rel} is not pinned at {rev} in the data registry {self.root}")
        return self._pin_result(rel, self.git("rev-list", "-n1", rev), 0.0, out)

    def _commit(self, paths: list[str], message: str) -> str:
        """Commit exactly `paths` (never another run's files); nothing to commit is fine."""
        self.git("add", "--", *paths)
        if self._run(["git", "diff", "--cached", "--quiet", "--", *paths], check=False).returncode:
            self.git("commit", "-q", "-m", message, "--", *paths)
        return self.git("rev-parse", "HEAD")

    def _fetch_git(self) -> None:
        """The remote's branch and every tag. A remote tag replaces a local one of the same name:
        the published tag is the model (a host that lost a race to tag the same id keeps its
        commit, not its tag)."""
        fetched = self._run(
            [
                "git",
                "fetch",
                "-q",
                "origin",
                f"+refs/heads/{BRANCH}:refs/remotes/origin/{BRANCH}",
                "+refs/tags/*:refs/tags/*",
            ],
            check=False,
        )
        if fetched.returncode:
            raise RegistryUnavailableError(f"git remote {self.git_remote} unreachable: {_tail(fetched)}")

    def _catch_up(self) -> None:
        if self.git_remote:
            self._fetch_git()
            self._rebase_onto_remote()

    def fetch(self) -> None:
        """Bring in the tags and branch other hosts pushed (a restore needs their tags), leaving
        the workspace as it is."""
        self.ensure()
        if self.git_remote:
            with self.locked():
                self._fetch_git()

    def sync(self) -> None:
        """Fetch, rebase this clone's branch onto the remote's (a fast-forward when it has nothing
        of its own), and push what the remote lacks (commits or tags whose push failed before):
        training compares the event log with the latest commit of all hosts, not of this one. A
        user's uncommitted checkout of old `.dvc` files is stashed around the rebase."""
        self.ensure()
        if self.git_remote:
            with self.locked():
                self._catch_up()
                self._publish()

    def _is_ancestor(self, older: str, newer: str) -> bool:
        return self._run(["git", "merge-base", "--is-ancestor", older, newer], check=False).returncode == 0

    def _rebase_onto_remote(self) -> None:
        """Bring the branch onto the remote's. Behind it (the usual case), a fast-forward that
        keeps a user's staged `git checkout <tag> -- shards` staged, and refuses, naming the
        fix, when the remote changed the same `.dvc` files; with commits of our own (a pin
        whose push failed), a rebase."""
        upstream = f"origin/{BRANCH}"
        if self._is_ancestor(upstream, "HEAD"):
            return  # nothing new on the remote
        if self._is_ancestor("HEAD", upstream):
            merged = self._run(["git", "merge", "-q", "--ff-only", upstream], check=False)
            if merged.returncode:
                raise RegistryError(
                    f"cannot bring {self.root} up to date with {self.git_remote}: its uncommitted changes touch "
                    f"files the remote changed ({_tail(merged, 300)}); put the workspace back on the latest data "
                    "(`git checkout HEAD -- shards && dvc checkout` in the registry) and rerun"
                )
            return
        rebased = self._run(["git", "rebase", "-q", "--autostash", upstream], check=False)
        unmerged = self.git("diff", "--name-only", "--diff-filter=U")
        if rebased.returncode or unmerged:
            self._run(["git", "rebase", "--abort"], check=False)
            if unmerged:  # the autostash did not apply cleanly: git keeps it in the stash
                self._run(["git", "reset", "-q", "--merge"], check=False)
            raise RegistryError(
                f"our pin conflicts with one on {self.git_remote} (the same output pinned on two hosts at "
                f"once, or a manual checkout of a .dvc file the remote changed: see `git stash list`): "
                f"resolve it in {self.root} and rerun"
            )

    def _publish(self) -> None:
        """Push the branch, and every model tag the remote lacks (`--follow-tags`: also the tags
        made before the git remote was configured), to the git remote. Hosts pinning at once
        race: fetch, rebase our one-file commits on theirs, try again."""
        if not self.git_remote:
            return
        for attempt in range(GIT_PUSH_ATTEMPTS):
            pushed = self._run(["git", "push", "-q", "--follow-tags", "origin", f"{BRANCH}:{BRANCH}"], check=False)
            if pushed.returncode == 0:
                return
            self._fetch_git()
            self._rebase_onto_remote()
            time.sleep(0.2 * 2**attempt)
        raise RegistryUnavailableError(
            f"pushing to git remote {self.git_remote} failed {GIT_PUSH_ATTEMPTS} times: {_tail(pushed)}"
        )

    # --- restores -------------------------------------------------------------------------

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def has_tag(self, tag: str) -> bool:
        return bool(self.git("tag", "--list", tag))

    def pinned(self) -> list[str]:
        """Every output whose `.dvc` file is committed, shards then models (a killed pin's
        uncommitted stub is not a pin)."""
        listed = self.git("ls-files", "--", *(f"{folder}/*.dvc" for folder in GITIGNORES)).splitlines()
        return [path.removesuffix(".dvc") for path in listed]

    @contextlib.contextmanager
    def checkout(self, rev: str) -> Iterator[Path]:
        """A temporary checkout of `rev` that shares this registry's cache and remote: restores
        and retraining happen there, so the workspace stays on the latest data whatever fails."""
        self.ensure()
        (self.root / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
        where = Path(tempfile.mkdtemp(prefix="restore-", dir=self.root / ".dvc" / "tmp"))
        try:
            self.git("clone", "-q", "--shared", "--no-checkout", str(self.root), str(where))
            found = self._run(["git", "checkout", "-q", rev], cwd=where, check=False)
            if found.returncode:
                raise RegistryError(f"{rev!r} is not a commit or tag of the data registry {self.root}")
            remote = "\n".join(f"    {line}" for line in self._remote_lines())
            (where / ".dvc" / "config.local").write_text(
                f"[cache]\n    dir = {self.cache}\n['remote \"{REMOTE}\"']\n{remote}\n"
            )
            yield where
        finally:
            shutil.rmtree(where, ignore_errors=True)

    def restore(self, repo: Path, rels: Sequence[str], checkout: bool = True) -> list[Damage]:
        """Make the outputs `rels` in the checkout `repo` hold exactly their recorded bytes.

        Check out from the cache, hash everything, and heal what differs: remove each cache
        object whose bytes do not match its name, fetch it again from the remote and check out
        again. Returns what was healed. With no good copy anywhere, raises `RestoreError` naming
        each lost object and where it was bad, after removing every bad copy (so neither
        `dvc checkout` nor `dvc pull` can hand those bytes out again) and the bad files."""
        if not rels:
            return []
        targets = [f"{rel}.dvc" for rel in rels]
        if checkout:  # objects missing from the cache fail here and are fetched below
            self.dvc("checkout", "--quiet", "--force", *targets, cwd=repo, check=False)
        healed: list[Damage] = []
        damage = verify(repo, self.cache, rels)
        first_seen: dict[Path, str] = {}  # each object's state in the cache before any heal
        fetched = None
        for _ in range(HEAL_PASSES):  # a corrupt listing hides its files' damage until it is healed
            if not damage:
                return healed
            healed += damage
            for d in damage:  # DVC re-creates neither: it trusts an object that exists, and a file its state knows
                first_seen.setdefault(d.cache_object, _evict(d.cache_object))
                self._adopt_from_workspace(repo, d)
                if d.file.is_file():
                    d.file.unlink()
            fetched = self.dvc("fetch", "--remote", REMOTE, *targets, cwd=repo, check=False)  # not quiet: its why
            self.dvc("checkout", "--quiet", "--force", *targets, cwd=repo, check=False)
            left = verify(repo, self.cache, rels)
            progress = {str(d) for d in left} != {str(d) for d in damage}
            damage = left
            if not progress:
                break  # the remote has no better copy
        if not damage:
            return healed
        raise self._unrestorable(repo, damage, first_seen, fetched)

    def _adopt_from_workspace(self, repo: Path, d: Damage) -> None:
        """Restoring into a temporary checkout, the live workspace may still hold the file with
        its recorded bytes (copies, never links, so its bytes are its own): a third good copy.
        The copy is hashed, not the source, so a file replaced meanwhile is never adopted."""
        obj = d.cache_object
        if repo.resolve() == self.root or obj.name.endswith(".dir") or obj.is_file():
            return
        source = self.root / d.file.relative_to(repo)
        if not source.is_file():
            return
        obj.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=obj.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, temp)
            if _md5(Path(temp)) == obj.parent.name + obj.name:
                os.chmod(temp, 0o444)  # as DVC leaves its cache objects
                os.replace(temp, obj)
        except OSError:
            pass  # the workspace copy went away: the remote is the next source
        finally:
            Path(temp).unlink(missing_ok=True)

    def _unrestorable(
        self,
        repo: Path,
        damage: list[Damage],
        first_seen: dict[Path, str],
        fetched: subprocess.CompletedProcess | None,
    ) -> RestoreError:
        """Remove every bad copy of each lost object and say what was lost, where, and what to do.

        A file whose cache object is intact is not lost: DVC only left it out because it will not
        check out a directory with a lost file, so it is not listed."""
        workspace = repo.resolve() == self.root
        lost, days, removed = [], set(), []
        for d in damage:
            if _evict(d.cache_object) == "intact":
                continue
            md5 = d.cache_object.parent.name + d.cache_object.name
            what = d.file.relative_to(repo).as_posix()
            if md5.endswith(".dir"):
                what = f"{what} (its directory listing)"
            if d.file.is_file():
                d.file.unlink()
                removed.append(what)
            cache = {"corrupt": "corrupt in the cache (removed)"}.get(
                first_seen.get(d.cache_object, ""), "absent from the cache"
            )
            lost.append(f"{what}: object {md5} ({d.cache_object}): {cache}; {self._remote_copy(md5)}")
            days.update(part.removeprefix("dt=") for part in Path(what).parts if part.startswith("dt="))
        if not workspace:
            where = "The workspace was not touched (the restore ran in a temporary checkout)."
        elif removed:
            where = f"Removed from the workspace, so no bad bytes are used: {', '.join(removed)}."
        else:
            where = "The workspace holds no bad copy of them."
        fix = [
            "copy a good copy of each object (from a DVC cache of another host, a backup) to the "
            "cache path named above, then run the command again"
        ]
        if days:
            fix.append(
                f"or materialize shards/training_shards for {', '.join(sorted(days))} again: the same "
                "inputs and code give the same bytes, and its pin pushes them to the remote"
            )
        said = f"\nDVC fetch said: {_tail(fetched)}" if fetched is not None and fetched.returncode else ""
        return RestoreError(
            f"no good copy of {len(lost)} object(s) in the cache or on the DVC remote {self.remote_url}:\n  "
            + "\n  ".join(lost)
            + f"\nNo bad copy is left where DVC looks (cache, remote), so neither `dvc checkout` nor `dvc pull` "
            f"hands those bytes out: both fail on them. {where}" + f"\nTo recover: {'; '.join(fix)}." + said
        )

    def remote_store(self) -> LakeStore:
        """The DVC remote as a store; a relative directory is relative to the registry, as DVC
        (which runs there) reads it."""
        url = self.remote_url
        return LakeStore(url if "://" in url or Path(url).is_absolute() else str(self.root / url), self.s3_endpoint_url)

    def _remote_copy(self, md5: str) -> str:
        """The state of the remote's copy, hashed here (DVC does not hash what it fetches). A
        copy that reads corrupt twice is moved aside on the server, not deleted: `dvc status
        --cloud` then reports it missing, `dvc pull` fails instead of handing it out, and a pin
        of good bytes pushes it again. Any doubt (an unreadable remote, two reads that differ)
        leaves it where it is."""
        key = object_key(md5)
        try:
            store = self.remote_store()
            if not store.exists(key):
                aside = [e.key for e in store.list_files(f"{QUARANTINE}/{posixpath.dirname(key)}")]
                earlier = [k for k in aside if posixpath.basename(k).startswith(posixpath.basename(key))]
                return "absent on the remote" + (
                    f" (a corrupt copy was moved aside earlier: {store.uri(earlier[-1])})" if earlier else ""
                )
            first, second = (hashlib.md5(store.read_bytes(key)).hexdigest() for _ in range(2))
        except Exception as exc:  # any failure to look is reported, never raised over the restore's own error
            return f"the remote's copy could not be read ({exc})"
        if md5.removesuffix(".dir") in (first, second):
            return f"intact on the remote ({store.uri(key)}) but DVC did not fetch it"
        if first != second:
            return f"read differently twice from the remote ({store.uri(key)}): left in place, check the remote"
        aside = f"{QUARANTINE}/{key}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        try:
            store.move(key, aside)
        except Exception as exc:
            return f"corrupt on the remote ({store.uri(key)}), and moving it aside failed ({exc}): `dvc pull` would fetch it"
        return f"corrupt on the remote too (moved aside to {store.uri(aside)}, so DVC reports it missing)"

    def missing_on_remote(self, rels: Sequence[str], repo: Path | None = None) -> list[str]:
        """Outputs among `rels` (as checked out in `repo`, default the registry) whose objects
        the DVC remote lacks."""
        status = self.dvc(
            "status", "--cloud", "--remote", REMOTE, "--json", *(f"{r}.dvc" for r in rels), cwd=repo, check=False
        )
        if status.returncode:
            raise RegistryUnavailableError(f"cannot list the DVC remote {self.remote_url}: {_tail(status)}")
        lacking = [key for key, state in json.loads(status.stdout or "{}").items() if state in ("new", "missing")]
        return sorted(rel for rel in rels if any(key == rel or key.startswith(f"{rel}/") for key in lacking))


def _tail(done: subprocess.CompletedProcess, chars: int = 600) -> str:
    text = (done.stderr or done.stdout or "").strip()
    return text[-chars:] or f"exit status {done.returncode}"
