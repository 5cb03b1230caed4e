"""Slipway infra: Pulumi components and policy checks derived from a spoke's slipway.toml."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slipway-infra")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
