"""Slipway's policy pack: `pulumi preview --policy-pack <hub>/infra/policy`."""

from pulumi_policy import PolicyPack
from slipway_policies import build_policies

PolicyPack(name="slipway", policies=build_policies())
