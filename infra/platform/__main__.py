"""The hub platform stack: shared KMS key, artifact store, MLflow, OIDC, onboarded spokes."""

from pathlib import Path

import pulumi

from slipway.infra.platform import build_platform_stack, load_platform_spec

spec = load_platform_spec(Path(__file__).resolve().parent / "spokes.toml")
outputs = build_platform_stack(spec)
for name, value in outputs.items():
    pulumi.export(name, value)
