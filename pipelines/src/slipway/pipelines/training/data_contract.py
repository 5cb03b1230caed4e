"""The data contract of slipway.toml, checked with pandera wherever data enters a model.

One contract serves three places: training (the validate step, which also demands the
target and a minimum number of rows), serving (the gateway checks every request row) and
drift monitoring (captured inputs). Each returns the same `Violation`s, naming the column
and the rule, so a team reads one vocabulary everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slipway.pipelines.config import PANDAS_DTYPES, ColumnRule, DataContract

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

# slipway.toml dtype -> the pandas dtype a column is coerced to and checked against.
# pandera's dtypes: pandas' own, except that "str" asks pandera to check each value is a
# string (pandas would only say "object").
DTYPES = {**PANDAS_DTYPES, "str": "str"}

# Rule names of a Violation (documented in docs/spoke/training.md).
RULE_REQUIRED = "required"
RULE_DTYPE = "dtype"
RULE_MIN = "min"
RULE_MAX = "max"
RULE_NULLABLE = "nullable"
RULE_ALLOWED = "allowed"
RULE_MIN_ROWS = "min_rows"

# pandera's check names (prefixes) -> our rule names.
_PANDERA_RULES = (
    ("column_in_dataframe", RULE_REQUIRED),
    ("coerce_dtype", RULE_DTYPE),
    ("dtype", RULE_DTYPE),
    ("greater_than_or_equal_to", RULE_MIN),
    ("less_than_or_equal_to", RULE_MAX),
    ("not_nullable", RULE_NULLABLE),
    ("isin", RULE_ALLOWED),
    (RULE_MIN_ROWS, RULE_MIN_ROWS),
)
_MAX_EXAMPLES = 3


@dataclass(frozen=True)
class Violation:
    """One broken rule of one column: what, how often, and a few offending values."""

    column: str  # "(table)" for rules about the whole frame, such as min_rows
    rule: str
    detail: str
    count: int = 1

    def __str__(self) -> str:
        rows = f" ({self.count} rows)" if self.count > 1 else ""
        return f"{self.column}: rule {self.rule!r} broken{rows}: {self.detail}"


def _column_schema(name: str, rule: ColumnRule) -> pa.Column:
    import pandera.pandas as pa

    checks = []
    if rule.min is not None:
        checks.append(pa.Check.ge(rule.min))
    if rule.max is not None:
        checks.append(pa.Check.le(rule.max))
    if rule.allowed is not None:
        checks.append(pa.Check.isin(rule.allowed))
    return pa.Column(
        DTYPES[rule.dtype], checks=checks, nullable=rule.nullable, coerce=True, name=name
    )


def schema_for(
    contract: DataContract, *, require_target: str | None = None, enforce_min_rows: bool = False
) -> pa.DataFrameSchema:
    """The pandera schema of the contract; extra columns are allowed (they are not features)."""
    import pandera.pandas as pa

    columns = {name: _column_schema(name, rule) for name, rule in contract.columns.items()}
    if require_target is not None:
        columns[require_target] = pa.Column(nullable=False, name=require_target)
    checks = []
    if enforce_min_rows:
        checks.append(pa.Check(lambda frame: len(frame) >= contract.min_rows, name=RULE_MIN_ROWS))
    return pa.DataFrameSchema(columns, checks=checks, strict=False)


def _rule_of(check: str) -> str:
    for prefix, rule in _PANDERA_RULES:
        if check.startswith(prefix):
            return rule
    return check


def _detail(rule: str, column: str, contract: DataContract, examples: list[str], rows: int) -> str:
    spec = contract.columns.get(column)
    shown = ", ".join(examples)
    if rule == RULE_REQUIRED:
        where = "data.contract.columns" if spec is not None else "data.target"
        return f"column is missing; slipway.toml names it in {where}"
    if rule == RULE_MIN_ROWS:
        return f"{rows} rows, data.contract.min_rows needs at least {contract.min_rows}"
    if spec is None:  # the target column
        return f"target column: {rule} failed for {shown}"
    expected = {
        RULE_DTYPE: f"expected {spec.dtype}",
        RULE_MIN: f"below min {spec.min:g}" if spec.min is not None else "",
        RULE_MAX: f"above max {spec.max:g}" if spec.max is not None else "",
        RULE_NULLABLE: "empty values, but nullable = false",
        RULE_ALLOWED: f"not one of {spec.allowed}",
    }.get(rule, rule)
    return f"{expected}; offending values: {shown}"


def validate_frame(
    frame: pd.DataFrame,
    contract: DataContract,
    *,
    require_target: str | None = None,
    enforce_min_rows: bool = False,
) -> list[Violation]:
    """Every way `frame` breaks the contract, one Violation per (column, rule); [] when valid.

    Training passes require_target and enforce_min_rows; a serving gateway checks single
    request rows with neither. The frame is never modified.
    """
    from pandera.errors import SchemaErrors

    schema = schema_for(contract, require_target=require_target, enforce_min_rows=enforce_min_rows)
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        return _violations(exc.failure_cases, contract, len(frame))
    return []


def _violations(cases: pd.DataFrame, contract: DataContract, rows: int) -> list[Violation]:
    # (column, rule) -> {row index: offending value}; pandera may report a row twice
    # (coercion, then dtype), a row counts once.
    found: dict[tuple[str, str], dict[object, str]] = {}
    case: Any  # a row of pandera's failure-case table
    for case in cases.itertuples(index=False):
        rule = _rule_of(str(case.check))
        column = case.column if isinstance(case.column, str) else "(table)"
        if rule == RULE_REQUIRED:
            column = str(case.failure_case)
        value = case.failure_case
        found.setdefault((column, rule), {})[case.index] = repr(value)
    # A value that cannot be coerced also fails every range check of its column: keep
    # the dtype violation, which is the cause.
    typed = {column for column, rule in found if rule == RULE_DTYPE}
    violations = []
    for (column, rule), by_row in sorted(found.items()):
        values = list(by_row.values())
        if (
            column in typed
            and rule in {RULE_MIN, RULE_MAX, RULE_ALLOWED}
            and any("TypeError" in v for v in values)
        ):
            continue
        examples = list(dict.fromkeys(values))[:_MAX_EXAMPLES]
        violations.append(
            Violation(
                column=column,
                rule=rule,
                count=len(values),
                detail=_detail(rule, column, contract, examples, rows),
            )
        )
    return violations


def format_report(violations: Iterable[Violation]) -> str:
    """A report a person can act on: one line per broken rule, then what to do."""
    lines = [f"  - {violation}" for violation in violations]
    return "\n".join(
        [
            f"the data breaks the contract in slipway.toml ({len(lines)} problem(s)):",
            *lines,
            "Fix the data source, or change [data.contract] if the data is right and the "
            "contract is out of date.",
        ]
    )
