"""The hub's view of its spokes: which template version each runs, how far it lags, who owns
it, and whether its last `copier update` left conflicts behind.

A spoke's template version is the `_commit` copier wrote to `.copier-answers.yml` (a release
tag such as `v0.2.0`, or `git describe` output such as `v0.2.0-3-gabc1234` when copied from
an untagged commit). The latest version is the highest release tag of the template source,
ordered by PEP 440 like copier orders them (pre-releases left out): the source is the
spoke's own `_src_path` unless the caller names one (the hub checkout or its URL). "Behind"
counts the releases newer than the spoke's, up to the latest.

Conflicts are what `copier update` leaves while exiting 0: unmerged paths in the index,
`*.rej` files, and conflict markers in files. Reading is all this module does: it never
changes a spoke.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version

from slipway.pipelines.config import CONFIG_FILE, ConfigError, load_config
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit

ANSWERS_FILE = ".copier-answers.yml"
_DESCRIBE_RE = re.compile(r"^(?P<tag>.+?)-(?P<ahead>\d+)-g[0-9a-f]+$")
_MARKER_RE = re.compile(r"^(<<<<<<<|>>>>>>>)( |$)", re.MULTILINE)


class NotASpoke(SlipwayError):
    """The path is not a spoke made by `copier copy`; the message says what is missing."""

    exit_code = Exit.CONFIG


@dataclass(frozen=True)
class SpokeStatus:
    path: str
    project: str
    team: str
    contact: str
    risk_tier: str
    template_source: str
    template_version: str
    latest_version: str | None  # None: the template source could not be read
    behind: int | None
    conflicts: list[str]
    note: str = ""  # why latest_version is unknown, if it is

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_version(ref: str) -> Version | None:
    """The PEP 440 version of a tag or `git describe` ref; None for anything else."""
    match = _DESCRIBE_RE.match(ref)
    tag = match.group("tag") if match else ref
    if "." not in tag:  # a commit hash of digits would parse as a version
        return None
    try:
        return Version(tag)
    except InvalidVersion:
        return None


def git_url(source: str) -> str:
    """What git understands, from a copier source (`gh:`/`gl:` shortcuts, `git+` prefix)."""
    for short, full in (("gh:", "https://github.com/"), ("gl:", "https://gitlab.com/")):
        if source.startswith(short):
            return full + source[len(short) :]
    return source.removeprefix("git+")


def release_tags(source: str) -> list[Version]:
    """Release versions tagged in the template repository at `source` (a path or URL)."""
    url = git_url(source)
    done = subprocess.run(
        ["git", "ls-remote", "--tags", "--refs", url], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise OSError(f"cannot list the tags of {source}: {done.stderr.strip()}")
    versions = []
    for line in done.stdout.splitlines():
        version = parse_version(line.split("refs/tags/", 1)[-1])
        if version is not None and not version.is_prerelease:
            versions.append(version)
    return sorted(versions)


def find_conflicts(root: Path) -> list[str]:
    """Unmerged paths, rejected hunks and conflict markers left in the spoke."""
    found: list[str] = []
    if (root / ".git").exists():
        unmerged = subprocess.run(
            ["git", "ls-files", "-u"], cwd=root, capture_output=True, text=True
        ).stdout
        found += sorted({f"unmerged: {line.split(chr(9))[-1]}" for line in unmerged.splitlines()})
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in {".git", ".venv", ".tools", ".slipway", "build"} or not path.is_file():
            continue
        if path.suffix == ".rej":
            found.append(f"rejected hunk: {rel}")
        elif path.stat().st_size < 2_000_000:
            text = path.read_text(encoding="utf-8", errors="replace")
            if _MARKER_RE.search(text):
                found.append(f"conflict markers: {rel}")
    return found


def _read_answers(root: Path) -> dict[str, Any]:
    path = root / ANSWERS_FILE
    if not (root / CONFIG_FILE).is_file() or not path.is_file():
        missing = CONFIG_FILE if not (root / CONFIG_FILE).is_file() else ANSWERS_FILE
        raise NotASpoke(
            f"{root} is not a Slipway spoke: {missing} is missing. "
            "Pass the directory of a project made with `copier copy`."
        )
    answers = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key in ("_commit", "_src_path"):
        if not answers.get(key):
            raise NotASpoke(
                f"{path} has no {key}: this copy was not made from a git "
                "template, so its version cannot be compared. Copy it again "
                "from the hub's repository."
            )
    return answers


def spoke_status(
    root: Path, template: str | None = None, tags_cache: dict[str, list[Version]] | None = None
) -> SpokeStatus:
    """Everything the fleet view shows about one spoke; raises NotASpoke with what to do."""
    answers = _read_answers(root)
    try:
        config = load_config(root)
    except ConfigError as exc:
        raise NotASpoke(str(exc)) from exc
    source = template or str(answers["_src_path"])
    ref = str(answers["_commit"])
    current = parse_version(ref)
    cache = tags_cache if tags_cache is not None else {}
    latest: Version | None = None
    behind: int | None = None
    note = ""
    try:
        if source not in cache:
            cache[source] = release_tags(source)
        releases = cache[source]
    except (OSError, subprocess.TimeoutExpired) as exc:
        note = str(exc)
    else:
        if not releases:
            note = f"{source} has no release tags"
        else:
            latest = releases[-1]
            if current is None:
                note = f"{ref} is not a version tag: cannot say how far behind"
            else:
                behind = sum(1 for v in releases if v > current)
    return SpokeStatus(
        path=str(root),
        project=config.project.name,
        team=config.project.team,
        contact=config.project.contact,
        risk_tier=str(config.governance.risk_tier),
        template_source=source,
        template_version=ref,
        latest_version=str(latest) if latest else None,
        behind=behind,
        conflicts=find_conflicts(root),
        note=note,
    )
