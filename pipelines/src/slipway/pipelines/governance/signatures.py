"""Proven approval identity: SSH signatures over one canonical statement, as git signs commits.

An approval names its approver, but a name is only a claim (`--by`, SLIPWAY_ACTOR and git's
user.email are whatever the caller typed). What proves it is a signature by a key the spoke
lists for that name in its allowed_signers file (`[governance] allowed_signers`, committed
and reviewed like code). `ssh-keygen -Y sign/verify` does the cryptography: no new library,
the same tool and file format git uses for SSH-signed commits, and any team member can check
an approval offline with the command this module runs.

The statement binds everything the gate relies on: the model, the version number and the run
it was registered from (a re-registered number is a different model), the decision, the
signer, the reason and the time. Editing any of the version's approval tags breaks it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from slipway.pipelines.errors import SlipwayError

# The signature namespace: a signature made for git commits (namespace "git") or for files
# ("file") cannot be replayed as an approval, and an approval signature as neither.
NAMESPACE = "slipway-approval"
STATEMENT_KIND = "slipway approval statement v1"


class SignatureError(SlipwayError):
    """A signature could not be made or checked; the message says what to do."""


@dataclass(frozen=True)
class Statement:
    """What an approver signs: the one canonical form of a decision on one model version."""

    model: str
    version: str
    run_id: str
    decision: str
    signer: str
    reason: str
    at: str

    def canonical(self) -> bytes:
        """Sorted-key JSON, one line: the same bytes on every machine, no field able to
        smuggle a newline into another (json escapes it)."""
        fields = {"kind": STATEMENT_KIND, **asdict(self)}
        return (json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise SignatureError(
            "ssh-keygen is not installed, so approval signatures can be neither made nor "
            "checked; install OpenSSH's client (Debian: apt-get install openssh-client)"
        )
    return found


def sign(statement: Statement, key: Path) -> str:
    """The armored SSH signature of `statement` by the private key at `key` (or, given a
    public key, by the matching key in ssh-agent, as `git commit -S` does)."""
    if not key.expanduser().is_file():
        raise SignatureError(f"signing key {key} does not exist")
    done = subprocess.run(
        [_ssh_keygen(), "-Y", "sign", "-f", str(key.expanduser()), "-n", NAMESPACE],
        input=statement.canonical(),
        capture_output=True,
        check=False,
    )
    signature = done.stdout.decode(errors="replace")
    if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in signature:
        why = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise SignatureError(f"ssh-keygen could not sign with {key}: {why}")
    return signature


def verification_problem(statement: Statement, signature: str, allowed_signers: Path) -> str | None:
    """Why `signature` does not prove that `statement.signer` made `statement`, or None.

    Verified against `allowed_signers` for exactly the identity the statement names, so a
    valid signature by someone else's listed key does not count for this name either.
    """
    if not signature.strip():
        return "it is not signed"
    if not allowed_signers.is_file():
        return (
            f"{allowed_signers} does not exist, so no signature can be checked; commit the "
            "approvers' public keys there (docs/spoke/governance.md)"
        )
    try:
        keygen = _ssh_keygen()
    except SignatureError as exc:
        return str(exc)
    with tempfile.TemporaryDirectory(prefix="slipway-sig-") as tmp:
        sig_file = Path(tmp) / "approval.sig"
        sig_file.write_text(signature)
        done = subprocess.run(
            [
                keygen,
                "-Y",
                "verify",
                "-f",
                str(allowed_signers),
                "-I",
                statement.signer,
                "-n",
                NAMESPACE,
                "-s",
                str(sig_file),
            ],
            input=statement.canonical(),
            capture_output=True,
            check=False,
        )
    if done.returncode == 0:
        return None
    said = (
        " ".join((done.stderr + done.stdout).decode(errors="replace").split())
        or f"exit {done.returncode}"
    )
    return (
        f"its signature does not verify as {statement.signer} against {allowed_signers.name} "
        f"(ssh-keygen: {said})"
    )


def signing_key_blob(signature: str) -> bytes | None:
    """The public key (wire blob) an armored SSH signature was made with, or None when it
    is not one. The SSHSIG format (OpenSSH PROTOCOL.sshsig) starts with the magic "SSHSIG",
    a uint32 version, then the public key as an SSH string: enough to name the key that
    signed, so a gate can refuse the author's own key whatever name it was listed under."""
    import base64
    import binascii
    import struct

    body = "".join(
        line.strip() for line in signature.strip().splitlines() if not line.startswith("-----")
    )
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(blob) < 14 or blob[:6] != b"SSHSIG":
        return None
    (length,) = struct.unpack(">I", blob[10:14])
    key = blob[14 : 14 + length]
    return key if len(key) == length else None
