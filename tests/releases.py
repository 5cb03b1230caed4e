"""Rebuild the hub's releases in a temporary clone, so update tests never need real tags.

CHANGELOG.md names each release's commit (`Commit: <sha>` under `## X.Y.Z`). A clone of
the hub's history gets a tag `vX.Y.Z` on each of those commits, and one more commit on top
holding the working tree under test, tagged as the next version: `v{VERSION}` when VERSION
is not released yet, else `v{VERSION}.post1` (the working tree after that release). Spokes
copy from `git+file://<clone>`, exactly like a copy from a remote: their pyproject pins the
libraries by a git source at the tag, and `copier update --vcs-ref <tag>` moves the pin.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

from tests.hub import GIT_ENV, HUB, VERSION, git, snapshot_working_tree

RELEASE_RE = re.compile(
    r"^## (\d+\.\d+\.\d+)\b.*?(?:^Commit: ([0-9a-f]{40})\s*$)", re.MULTILINE | re.DOTALL
)
SECTION_RE = re.compile(r"^## ", re.MULTILINE)
COPIER = str(Path(sys.executable).parent / "copier")


@dataclass(frozen=True)
class Release:
    version: str
    commit: str

    @property
    def tag(self) -> str:
        return f"v{self.version}"


@dataclass(frozen=True)
class ReleaseRepo:
    path: Path
    releases: tuple[Release, ...]  # oldest first
    current: str  # the tag of the working-tree snapshot

    @property
    def url(self) -> str:
        """Copy from a URL, not a path, so the spoke pins the libraries as a remote would."""
        return f"git+file://{self.path}"

    @property
    def previous(self) -> str:
        return self.releases[-1].tag


def released(changelog: str) -> list[Release]:
    """Every `## X.Y.Z` section of CHANGELOG.md that names its commit, oldest first."""
    out = []
    for section in SECTION_RE.split(changelog)[1:]:
        match = RELEASE_RE.match("## " + section)
        if match:
            out.append(Release(match.group(1), match.group(2)))
    return sorted(out, key=lambda r: tuple(int(p) for p in r.version.split(".")))


def assert_in_history(release: Release) -> None:
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{release.commit}^{{commit}}"], cwd=HUB, capture_output=True
    )
    assert found.returncode == 0, (
        f"release {release.version}'s commit {release.commit} is not in this checkout: "
        "fetch the full history (git fetch --unshallow) to run the update tests"
    )


def build_release_repo(dst: Path) -> ReleaseRepo:
    """A clone of the hub with every release tagged and the working tree as the next one."""
    releases = released((HUB / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert releases, "CHANGELOG.md names no released commit (`Commit: <sha>` under `## X.Y.Z`)"
    for release in releases:
        assert_in_history(release)
    # --no-tags: the releases are exactly what CHANGELOG.md names, whatever tags (real ones
    # included) the checkout under test carries.
    subprocess.run(
        ["git", "clone", "-q", "--no-checkout", "--no-tags", str(HUB), str(dst)], check=True
    )
    for release in releases:
        git(dst, "tag", release.tag, release.commit)
    git(dst, "checkout", "-q", releases[-1].commit)
    git(dst, "switch", "-q", "-c", "next")
    git(dst, "rm", "-r", "-q", ".")
    is_released = any(r.version == VERSION for r in releases)
    current = f"v{VERSION}.post1" if is_released else f"v{VERSION}"
    snapshot_working_tree(dst, current)
    return ReleaseRepo(dst, tuple(releases), current)


def add_release(repo: ReleaseRepo, relpath: str, old: str, new: str) -> str:
    """Commit one more release on top (a line of a template file changed); return its tag."""
    base = Version(repo.current.removeprefix("v")).release
    tag = f"v{base[0]}.{base[1]}.{base[2] + 1}"
    path = repo.path / relpath
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{relpath} has no line {old!r} to change"
    path.write_text(text.replace(old, new), encoding="utf-8")
    git(repo.path, "commit", "-q", "-am", f"release {tag}: {relpath} changed")
    git(repo.path, "tag", tag)
    return tag


def copier(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COPIER, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    )


def copy(repo: ReleaseRepo, ref: str, dst: Path, answers: dict[str, str]) -> Path:
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    done = copier(
        "copy", "--defaults", "--quiet", "--vcs-ref", ref, *data, repo.url, str(dst), cwd=dst.parent
    )
    assert done.returncode == 0, done.stderr
    return dst


def commit_all(spoke: Path, message: str) -> None:
    if not (spoke / ".git").exists():
        git(spoke, "init", "-q", "-b", "main")
    git(spoke, "add", "-A")
    git(spoke, "commit", "-q", "-m", message)


def update(spoke: Path, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return copier("update", "--defaults", "--quiet", "--vcs-ref", ref, *extra, cwd=spoke)
