"""Exit codes of the `slipway` command: scripts and CI branch on these, so they never change.

Documented in docs/reference/cli.md.
"""

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    ERROR = 1  # unexpected failure; the message says what broke
    USAGE = 2  # bad command line (click's own code)
    CONFIG = 3  # not a spoke, slipway.toml invalid, or an environment setting invalid
    # training data broke the data contract (nothing registered), or a batch's rejected
    # share passed [batch] max_rejected_fraction (nothing published)
    DATA_INVALID = 4
    GATE_REJECTED = 5  # challenger failed a gate; nothing registered as challenger
    ROLLED_BACK = 6  # a rollout breached a guardrail and was rolled back
    NOT_APPROVED = 7  # governance refused: approval or model card missing
    UNREACHABLE = 8  # the gateway, registry or backend could not be reached
    DRIFT = 9  # monitoring found drift (and started retraining, if asked)
    TIMED_OUT = 10  # waited --timeout for a pipeline run that had not ended (it goes on)
    UNAUTHORISED = 11  # the backend refused the credentials (HTTP 401/403, a login page)
    REGISTRY_SKEW = 12  # the registry was written by another MLflow version than the one here
