"""Slipway pipelines: the reusable half of every spoke's training and deploy flow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slipway-pipelines")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
