"""Copier migration: a template file was renamed; carry the team's version to the new name.

Without it, `copier update` deletes the old file (edits and all, exit code 0) and writes the
new one from the template: the team's edits are silently lost. Run it in the `after` stage:

    _migrations:
      - version: v0.3.0
        when: "{{ _stage == 'after' }}"
        command:
          - "{{ _copier_python }}"
          - "{{ _copier_conf.src_path }}/migrations/keep_renamed.py"
          - OLD
          - NEW

It reads the team's last committed version of OLD (copier updates only a clean working
tree, so HEAD is exactly what the team had) and writes it to NEW. Use it for a pure rename:
change the content in another release, and copier merges that change normally.
Idempotent (a second run writes the same bytes), offline, and it touches nothing when OLD
was never committed or still exists.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def committed(path: str) -> bytes | None:
    """The team's last committed version of `path`, or None if it was not committed."""
    done = subprocess.run(["git", "show", f"HEAD:{path}"], capture_output=True)
    return done.stdout if done.returncode == 0 else None


def keep_renamed(old: str, new: str) -> str:
    if Path(old).exists():
        return f"{old} still exists: nothing to carry"
    team = committed(old)
    if team is None:
        return f"{old} was never committed: nothing to carry"
    Path(new).parent.mkdir(parents=True, exist_ok=True)
    Path(new).write_bytes(team)
    return f"carried {old} to {new}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: keep_renamed.py OLD NEW (paths relative to the spoke)")
    print(keep_renamed(sys.argv[1], sys.argv[2]))
