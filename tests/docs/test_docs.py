"""The documentation site builds with `mkdocs build --strict`, and every shell command it
shows is one the tests run.

How "the tests run it" is checked, cheaply and honestly: every command line in a ```sh,
```bash, ```shell or ```console block of docs/ must start with a command prefix listed in
COVERED (e.g. `copier update`, `slipway fleet status`), and each test file COVERED names
for it must hold the prefix's words as string literals (how a test spells
`["copier", "update", ...]` or `CliRunner().invoke(main, ["fleet", "status", ...])`); every
`--option` the command shows must be spelled in one of those files too. A command or an
option no test runs fails here with the page and line; so does a mapping to a test file
that no longer runs the command. It is evidence, not proof: it cannot see which branch of
a test executes, but it cannot be satisfied by a command nobody wrote a test for.

The README counts as a page. Commands named inline (`` `slipway deploy --env staging` ``)
are checked too, against the CLI itself: the subcommand and every option must exist, so
prose cannot promise a flag the tool lacks. The build is always strict, with no tolerance.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.hub import HUB

DOCS = HUB / "docs"
SHELL_FENCES = {"sh", "bash", "shell", "console"}
BUILTINS = {"cd"}  # moves the shell; runs nothing

# command prefix -> test files that run it (paths relative to the hub)
COVERED: dict[str, tuple[str, ...]] = {
    "copier copy": ("tests/releases.py",),
    "copier update": ("tests/releases.py", "tests/template/test_update.py"),
    "copier check-update": ("tests/template/test_update.py",),
    "git init": ("tests/releases.py",),
    "git add": ("tests/releases.py",),
    "git commit": ("tests/releases.py",),
    "git ls-files": ("tests/template/test_update.py",),
    "git tag": ("tests/releases.py",),
    "git push": ("tests/template/test_update.py",),
    "make setup": ("tests/demo/test_demo.py", "tests/template/test_update.py"),
    "make test": ("tests/demo/test_demo.py", "tests/template/test_update.py"),
    "make demo": ("tests/demo/test_demo.py",),
    "make check": ("tests/demo/test_demo.py",),
    "make tested-versions": ("tests/template/test_dependencies.py",),
    "make test-newest": ("tests/ci/test_newest_releases.py",),
    "uv run pre-commit install": ("tests/template/test_workflows.py",),
    "slipway check": ("tests/template/test_render.py",),
    "slipway fleet status": ("tests/fleet/test_fleet.py",),
    "slipway console": ("tests/shared/console/test_console_command.py",),
    "slipway approve": ("tests/governance/test_governance.py",),
    "slipway reject": ("tests/governance/test_governance.py",),
    "slipway card": ("tests/governance/test_governance.py",),
    "slipway audit": ("tests/governance/test_audit.py", "tests/shared/test_audit_shared.py"),
    "mlflow server": ("tests/hub.py",),
    "slipway catalog": ("tests/governance/test_governance.py",),
    "slipway serve": ("tests/deploy/conftest.py",),
    "slipway deploy": (
        "tests/deploy/test_rollout.py",
        "infra/tests/test_sagemaker_target.py",
        "tests/deploy/test_kserve_rollout.py",
    ),
    "slipway traffic": ("tests/deploy/test_rollout.py",),
    "slipway status": ("tests/deploy/test_rollout.py",),
    "slipway rollback": ("tests/deploy/test_rollout.py",),
    "slipway promote": ("tests/deploy/test_rollout.py",),
    "slipway compile": (
        "tests/training/test_training_compile.py",
        "tests/training/test_kubeflow.py",
    ),
    "slipway train": (
        "tests/training/test_training_pipeline.py",
        "tests/training/test_training_compile.py",
        "tests/training/test_kubeflow.py",
    ),
    "slipway monitor": (
        "tests/governance/test_monitor.py",
        "tests/monitoring/test_scheduled_monitor.py",
    ),
    "slipway score": ("tests/deploy/test_batch_score.py", "tests/batch/test_batch_submit.py"),
    "ssh-keygen -t": ("pipelines/tests/governance/test_approval_signatures.py",),
    "ssh-keygen -Y verify": ("pipelines/tests/governance/test_approval_signatures.py",),
}


def shell_blocks(markdown: str) -> list[tuple[int, str, str]]:
    """(line number, fence language, body) of each fenced shell block."""
    blocks = []
    for match in re.finditer(r"^```(\w+)[^\n]*\n(.*?)^```", markdown, re.M | re.S):
        if match.group(1) in SHELL_FENCES:
            line = markdown.count("\n", 0, match.start()) + 2
            blocks.append((line, match.group(1), match.group(2)))
    return blocks


def commands(markdown: str) -> list[tuple[int, str]]:
    """Every command line shown, with its line number: comments, prompts, output dropped."""
    out = []
    for first, fence, body in shell_blocks(markdown):
        pending, start = "", 0
        for offset, raw in enumerate(body.splitlines()):
            line = raw.strip()
            if not pending:
                start = first + offset
                if fence == "console":
                    if not line.startswith("$ "):
                        continue  # output, not a command
                    line = line[2:]
            line = pending + line
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            command = shlex.split(line, comments=True)
            if command:
                out.append((start, shlex.join(command)))
    return out


def prefix_of(command: str) -> str | None:
    """The longest COVERED prefix the command starts with; None when no test runs it."""
    words = shlex.split(command)
    if words[0] in BUILTINS:
        return words[0]
    for size in range(len(words), 0, -1):
        candidate = " ".join(words[:size])
        if candidate in COVERED:
            return candidate
    return None


@cache
def string_literals(relpath: str) -> frozenset[str]:
    tree = ast.parse((HUB / relpath).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
            found.update(node.value.split())
    return frozenset(found)


def untested_options(command: str, prefix: str) -> list[str]:
    """Long options of the command that no test file mapped to its prefix spells."""
    spelled = set().union(*(string_literals(f) for f in COVERED.get(prefix, ())))
    options = [w.split("=")[0] for w in shlex.split(command) if w.startswith("--")]
    return [o for o in options if o not in spelled]


def uncovered(pages: dict[str, str]) -> list[str]:
    """Commands shown in `pages` (name -> markdown) that no test runs, as 'page:line: cmd'."""
    problems = []
    for name, text in pages.items():
        for line, command in commands(text):
            prefix = prefix_of(command)
            if prefix is None:
                problems.append(f"{name}:{line}: {command}")
            elif options := untested_options(command, prefix):
                problems.append(f"{name}:{line}: {command} (no test passes {options})")
    return problems


def doc_pages() -> dict[str, str]:
    pages = [HUB / "README.md", *sorted(DOCS.rglob("*.md"))]
    return {str(p.relative_to(HUB)): p.read_text(encoding="utf-8") for p in pages}


def inline_slipway(markdown: str) -> list[tuple[int, list[str]]]:
    """(line, words) of every inline `slipway ...` span, usage brackets and metavars
    dropped: `slipway status [--url URL] [--json]` -> slipway status --url --json."""
    found = []
    for match in re.finditer(r"(?<!`)`(slipway [^`\n]+)`(?!`)", markdown):
        line = markdown.count("\n", 0, match.start()) + 1
        words = [
            w
            for w in re.sub(r"[\[\]]", " ", match.group(1)).split()
            if w.startswith("-") or re.fullmatch(r"[a-z][a-z-]*", w)
        ]
        found.append((line, [w.split("=")[0] for w in words]))
    return found


def unknown_to_the_cli(pages: dict[str, str]) -> list[str]:
    """Inline slipway commands whose subcommand or options the CLI does not have."""
    import click

    from slipway.pipelines.cli import main

    problems = []
    for name, text in pages.items():
        for line, words in inline_slipway(text):
            command: click.Command = main
            options = {o for p in main.params for o in p.opts + p.secondary_opts}
            for word in words[1:]:
                if word.startswith("-"):
                    if word not in options:
                        problems.append(f"{name}:{line}: {' '.join(words)}: no option {word}")
                elif isinstance(command, click.Group):
                    sub = command.get_command(click.Context(command), word)
                    if sub is None:
                        problems.append(f"{name}:{line}: {' '.join(words)}: no command {word}")
                        break
                    command = sub
                    options |= {o for p in sub.params for o in p.opts + p.secondary_opts}
    return problems


def test_every_command_shown_is_run_by_a_test() -> None:
    problems = uncovered(doc_pages())
    assert problems == [], (
        "commands shown in the docs that no test runs (write the test, then add the "
        "command's prefix and the test file to COVERED in tests/docs/test_docs.py):\n"
        + "\n".join(problems)
    )


def test_every_slipway_command_named_inline_exists() -> None:
    problems = unknown_to_the_cli(doc_pages())
    assert problems == [], "the docs name commands or options slipway does not have:\n" + (
        "\n".join(problems)
    )


def test_the_inline_check_fires_on_a_missing_option_or_command() -> None:
    page = (
        "Run `slipway deploy --env staging`, then `slipway deploy --teleport`.\n"
        "See `slipway status [--url URL] [--json]` and `slipway frobnicate`.\n"
        "Also `slipway fleet status --json`.\n"
    )
    assert unknown_to_the_cli({"x.md": page}) == [
        "x.md:1: slipway deploy --teleport: no option --teleport",
        "x.md:2: slipway frobnicate: no command frobnicate",
    ]


def test_the_named_tests_really_hold_the_commands() -> None:
    stale = []
    for prefix, files in COVERED.items():
        words = prefix.split()[1:]  # the program is how the test invokes it (path, CliRunner)
        for relpath in files:
            if not (HUB / relpath).is_file():
                stale.append(f"{prefix}: {relpath} does not exist")
                continue
            missing = [w for w in words if w not in string_literals(relpath)]
            if missing:
                stale.append(f"{prefix}: {relpath} never spells {missing}")
    assert stale == []


def test_the_command_check_fires_on_an_untested_command() -> None:
    page = (
        "# x\n\n```sh\nmake setup\nslipway frobnicate --hard  # no test\n```\n\n"
        "```console\n$ copier update --defaults\nUpdating...\n$ rm -rf \\\n  build\n```\n"
    )
    assert commands(page) == [
        (4, "make setup"),
        (5, "slipway frobnicate --hard"),
        (9, "copier update --defaults"),
        (11, "rm -rf build"),
    ]
    assert uncovered({"x.md": page}) == [
        "x.md:5: slipway frobnicate --hard",
        "x.md:11: rm -rf build",
    ]
    untested_option = "```sh\ncopier update --defaults --skip-tasks\n```\n"
    assert uncovered({"y.md": untested_option}) == [
        "y.md:2: copier update --defaults --skip-tasks (no test passes ['--skip-tasks'])"
    ]


def nav_pages(nav: list[Any]) -> list[str]:
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def build_strict(config: dict[str, Any], docs: Path, out: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of `config` over `docs` (never --quiet: it hides warnings
    from the strict count)."""
    out.mkdir(parents=True, exist_ok=True)
    config = {**config, "docs_dir": str(docs), "site_dir": str(out / "site"), "strict": True}
    (out / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "mkdocs"),
            "build",
            "--strict",
            "-f",
            str(out / "mkdocs.yml"),
        ],
        capture_output=True,
        text=True,
        cwd=out,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_site_builds_strict(tmp_path: Path) -> None:
    config = yaml.safe_load((HUB / "mkdocs.yml").read_text())
    exists = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert set(nav_pages(config["nav"])) <= exists, "the nav names pages that do not exist"
    proc = build_strict(config, DOCS, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "spoke" / "getting-started" / "index.html").is_file()


def test_the_strict_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    config = yaml.safe_load((HUB / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    proc = build_strict({**config, "nav": ["index.md"]}, docs, tmp_path / "out")
    assert proc.returncode != 0
    assert "missing.md" in proc.stdout + proc.stderr
