"""This spoke's infrastructure. Everything derives from ../slipway.toml; see the Slipway
docs, "Infrastructure" in the spoke guide, for what each stack (dev, staging, prod) holds."""

from pathlib import Path

from slipway.infra.spoke_stack import spoke_program

outputs = spoke_program(Path(__file__).resolve().parents[1])
