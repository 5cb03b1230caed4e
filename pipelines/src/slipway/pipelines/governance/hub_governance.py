"""The hub's governance list: each spoke's risk tier, approvers and their SSH keys.

Why it lives here and not in the spoke: a control the governed party can edit is not a
control. The author of a version can change their spoke's slipway.toml and
approvers/allowed_signers; they cannot change the list the platform repository ships inside
the slipway-pipelines release their spoke is pinned to (``hub_governance.toml`` next to this
module). So every machine that runs a gate (a laptop, CI, a pipeline pod built from the
spoke's lock) reads exactly the list of the release it runs, with no network.

Production may point ``SLIPWAY_HUB_GOVERNANCE`` at the list the platform stack publishes (a
path, mounted into pipeline pods and set by the platform's CI runner). Whoever controls a
process's environment also controls the installed package, so this is no weaker; the spoke's
own files never are a source of keys. The list in force is named by its sha256 in every
decision's audit entry.

A spoke may tighten what the hub says (a higher tier, fewer approvers), never loosen it:
:func:`strictest` is the one rule every gate applies to the hub's tier, the tier the version
was registered with and the spoke's file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from slipway.pipelines.config import RiskTier
from slipway.pipelines.errors import SlipwayError
from slipway.pipelines.exitcodes import Exit
from slipway.pipelines.settings import Settings

HUB_LIST_ENV = "SLIPWAY_HUB_GOVERNANCE"
PACKAGED_LIST = "hub_governance.toml"
_ORDER = (RiskTier.low, RiskTier.medium, RiskTier.high)


class HubGovernanceError(SlipwayError):
    """The hub's governance list cannot be read; nothing is approved or promoted without it."""

    exit_code = Exit.CONFIG


@dataclass(frozen=True)
class HubApprover:
    name: str
    key: str  # one public key, as in allowed_signers: "ssh-ed25519 AAAA... comment"

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.key)


@dataclass(frozen=True)
class SpokeGovernance:
    """What the hub says about one spoke: its floor tier and who may approve, with keys."""

    spoke: str
    risk_tier: RiskTier
    approvers: tuple[HubApprover, ...]
    listed: bool  # False: the spoke is not named, so the list's [default] applies
    source: str
    digest: str  # sha256 of the list's bytes: which list decided, kept in the audit trail

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.name for a in self.approvers))

    def keys_of(self, name: str) -> tuple[HubApprover, ...]:
        wanted = name.strip().casefold()
        return tuple(a for a in self.approvers if a.name.strip().casefold() == wanted)

    def allowed_signers(self) -> str:
        """The approvers' keys in ssh-keygen's allowed_signers format, for `-Y verify`."""
        return "".join(f"{a.name} {a.key}\n" for a in self.approvers)


def key_fingerprint(public_key: str) -> str:
    """SHA256:... of an OpenSSH public key line (what `ssh-keygen -l` prints)."""
    parts = public_key.split()
    if len(parts) < 2:
        raise HubGovernanceError(f"{public_key!r} is not an OpenSSH public key (TYPE BASE64)")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise HubGovernanceError(f"{parts[1][:20]}... is not base64: not a public key") from None
    return blob_fingerprint(blob)


def blob_fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def strictest(*tiers: RiskTier | str | None) -> RiskTier:
    """The highest of the tiers given (None and unknown names are skipped; low if none)."""
    known = [RiskTier(t) for t in tiers if t is not None and str(t) in RiskTier._value2member_map_]
    return max(known, key=_ORDER.index, default=RiskTier.low)


def _list_text() -> tuple[bytes, str]:
    override = Settings.from_env().hub_governance or ""
    if override:
        path = Path(override).expanduser()
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise HubGovernanceError(
                f"{HUB_LIST_ENV}={override} cannot be read ({exc.strerror}); point it at the "
                "platform's governance list, or unset it to use the one pinned with this release"
            ) from None
    packaged = resources.files("slipway.pipelines.governance").joinpath(PACKAGED_LIST)
    return packaged.read_bytes(), f"slipway-pipelines:{PACKAGED_LIST}"


def _approvers(raw: object, where: str) -> tuple[HubApprover, ...]:
    if not isinstance(raw, list):
        raise HubGovernanceError(f"{where}: approvers must be a list of {{name, key}} tables")
    found = []
    for item in raw:
        if not isinstance(item, dict) or not item.get("name") or not item.get("key"):
            raise HubGovernanceError(f"{where}: each approver needs a name and a key: {item!r}")
        approver = HubApprover(str(item["name"]).strip(), str(item["key"]).strip())
        key_fingerprint(approver.key)  # a malformed key is refused when the list is read
        found.append(approver)
    return tuple(found)


def governance_for(spoke: str) -> SpokeGovernance:
    """The hub's word on `spoke` (its model name / project slug); [default] when unlisted."""
    data, source = _list_text()
    try:
        parsed = tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HubGovernanceError(
            f"the hub governance list {source} is not valid TOML: {exc}; ask the platform team"
        ) from None
    spokes = parsed.get("spokes", {})
    entry = spokes.get(spoke) if isinstance(spokes, dict) else None
    listed = isinstance(entry, dict)
    section = entry if listed else parsed.get("default", {})
    if not isinstance(section, dict):
        raise HubGovernanceError(f"{source}: [default] must be a table")
    where = f"{source} [spokes.{spoke}]" if listed else f"{source} [default]"
    tier = str(section.get("risk_tier", "low"))
    if tier not in RiskTier._value2member_map_:
        raise HubGovernanceError(f"{where}: risk_tier {tier!r} is not one of low, medium, high")
    return SpokeGovernance(
        spoke=spoke,
        risk_tier=RiskTier(tier),
        approvers=_approvers(section.get("approvers", []), where),
        listed=listed,
        source=source,
        digest=hashlib.sha256(data).hexdigest(),
    )


def list_toml(spokes: dict[str, tuple[RiskTier | str, list[tuple[str, str]]]]) -> str:
    """A governance list naming `spokes` ({slug: (tier, [(approver, public key), ...])}), in
    the format this module reads: what the platform's tooling (and the tests) write."""
    import json

    lines = ["[default]", 'risk_tier = "low"', "approvers = []", ""]
    for slug, (tier, approvers) in spokes.items():
        lines += [f"[spokes.{json.dumps(slug)}]", f"risk_tier = {json.dumps(str(tier))}"]
        lines.append("approvers = [")
        lines += [
            f"  {{ name = {json.dumps(name)}, key = {json.dumps(key.strip())} }},"
            for name, key in approvers
        ]
        lines += ["]", ""]
    return "\n".join(lines)
