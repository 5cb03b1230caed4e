"""Where a model came from: the facts every registered version carries as tags.

Some facts are known only where the run is started (the spoke's git commit, the compiled
pipeline file), others only where the step runs (the data, the installed libraries), so
each has its own small function and the pipeline passes the first kind in as parameters.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

ANSWERS_FILE = ".copier-answers.yml"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class GitState:
    sha: str
    dirty: bool


def git_state(root: Path) -> GitState:
    """The spoke's HEAD commit and whether tracked files differ from it (untracked ignored).

    A spoke outside git (or a fresh one without a commit) reports "unknown" and dirty,
    so a version trained from it can never pass for a reproducible one.
    """

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return GitState(sha=UNKNOWN, dirty=True)
    status = git("status", "--porcelain", "--untracked-files=no")
    return GitState(sha=head.stdout.strip(), dirty=bool(status.stdout.strip()))


def data_digest(frame: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and every value: same data, same digest."""
    import pandas as pd

    hash_pandas_object: Any = pd.util.hash_pandas_object  # pyright: ignore[reportAttributeAccessIssue]

    digest = hashlib.sha256()
    digest.update("\0".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    digest.update(hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """In blocks: the files hashed include model tarballs, not only compiled pipelines."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def template_version(root: Path) -> str:
    """The template release the spoke was copied or last updated from (`_commit`)."""
    answers = root / ANSWERS_FILE
    if not answers.is_file():
        return UNKNOWN
    for line in answers.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "_commit":
            return value.strip().strip("'\"") or UNKNOWN
    return UNKNOWN


def slipway_version() -> str:
    from slipway.pipelines import __version__

    return __version__
