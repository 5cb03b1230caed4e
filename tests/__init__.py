"""The template's own tests (a package, so helpers import as tests.hub, tests.releases)."""
