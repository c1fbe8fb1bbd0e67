"""Release gates: rules over a result table that fail a pipeline when layer quality drifts.

A rule is ``SUBJECT OP THRESHOLD`` with OP one of ``> >= < <=``:

* counting subjects — a verdict (``under-trained``, ``over-trained``, ``traps``, ``ok``,
  ``untouched``, ``low-rank``; for compare results ``under-trained-update`` etc. name the same
  verdicts of ΔW), ``shaky`` (fit_quality not good), ``failed`` (status not ok), any
  boolean column of the table (``changed-verdict``, ``became-under-trained`` in diffs),
  or a model-level count (``duplicated``, ``only-in-base``, ``only-in-tuned``,
  ``shape-mismatch``, ``left-band``: layers whose alpha left [2, 6]). THRESHOLD is a
  count, or a percentage of the table's rows (``under-trained-update>20%``).
* aggregates — ``mean(col)``, ``median(col)``, ``max(col)``, ``min(col)``, ``sum(col)``
  over a numeric column (``mean(alpha)>5``, ``max(abs_delta_alpha)>=1``).

A policy file (TOML) lists rules: ``fail_on = ["under-trained>20%", "mean(alpha)>5"]``
at the top level or under ``[gate]``.
"""

from __future__ import annotations

import operator
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

_RULE = re.compile(
    r"^\s*(?P<subject>[A-Za-z_][\w\-]*(?:\(\s*[\w\-]+\s*\))?)\s*"
    r"(?P<op>>=|<=|>|<)\s*(?P<value>[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*(?P<pct>%?)\s*$"
)
_OPS: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_AGGS = ("mean", "median", "max", "min", "sum")
VERDICTS = ("under-trained", "over-trained", "traps", "ok", "untouched", "low-rank")


@dataclass(frozen=True)
class Rule:
    """A parsed gate rule."""

    text: str
    subject: str
    op: str
    threshold: float
    percent: bool


@dataclass(frozen=True)
class Check:
    """One rule evaluated: the observed value and whether the gate fails on it."""

    rule: str
    value: float
    failed: bool
    message: str


@dataclass(frozen=True)
class GateResult:
    """All rules evaluated; ``passed`` is False when any rule fails."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """Whether no rule failed."""
        return not any(c.failed for c in self.checks)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: passed, and every check."""
        return {"passed": self.passed, "checks": [c.__dict__ for c in self.checks]}


def parse_rule(text: str) -> Rule:
    """Parse ``SUBJECT OP THRESHOLD[%]``; ValueError with the accepted forms otherwise."""
    m = _RULE.match(text)
    if m is None:
        raise ValueError(
            f"cannot parse gate rule {text!r}: expected SUBJECT OP NUMBER[%], "
            "e.g. 'under-trained>20%' or 'mean(alpha)>5'"
        )
    subject = re.sub(r"\s+", "", m["subject"])
    agg = re.match(r"^(\w+)\(", subject)
    if agg is not None and agg[1] not in _AGGS:
        raise ValueError(f"gate rule {text!r}: unknown aggregate {agg[1]}; use {', '.join(_AGGS)}")
    if agg is not None and m["pct"]:
        raise ValueError(f"gate rule {text!r}: a percentage only applies to counts")
    return Rule(text.strip(), subject, m["op"], float(m["value"]), bool(m["pct"]))


def load_policy(path: str | Path) -> list[str]:
    """Rules from a TOML policy file (``fail_on = [...]``, top level or under ``[gate]``)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read policy file {path}: {exc}") from exc
    rules = data.get("fail_on", data.get("gate", {}).get("fail_on"))
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise ValueError(f'policy file {path}: expected fail_on = ["rule", ...]')
    return list(rules)


def _column(table: pd.DataFrame, name: str, rule: Rule) -> pd.Series:
    col = name.replace("-", "_")
    if col not in table:
        raise ValueError(f"gate rule {rule.text!r}: no column {col!r} in this result")
    return pd.to_numeric(table[col], errors="coerce")


def _count(table: pd.DataFrame, subject: str, counts: Mapping[str, int], rule: Rule) -> float:
    col = subject.replace("-", "_")
    if col in table and table[col].dtype == bool:
        return float(table[col].sum())
    verdict = subject.removesuffix("-update")
    if verdict in VERDICTS and "verdict" in table:
        return float((table["verdict"] == verdict).sum())
    if subject == "shaky" and "fit_quality" in table:
        return float((table["fit_quality"].fillna("good") != "good").sum())
    if subject == "failed" and "status" in table:
        return float((~table["status"].isin(["ok", "untouched"])).sum())
    if subject in counts:
        return float(counts[subject])
    known = sorted({*VERDICTS, "shaky", "failed", *counts})
    raise ValueError(
        f"gate rule {rule.text!r}: unknown subject {subject!r}; known: {', '.join(known)}"
    )


def evaluate(rule: Rule, table: pd.DataFrame, counts: Mapping[str, int]) -> Check:
    """Evaluate one rule on a result table plus model-level counts."""
    agg = re.match(r"^(\w+)\(([\w\-]+)\)$", rule.subject)
    if agg is not None:
        values = _column(table, agg[2], rule).dropna()
        value = float(getattr(np, agg[1])(values)) if len(values) else float("nan")
        shown = f"{agg[1]} {agg[2]} = {value:.4g}"
    else:
        value = _count(table, rule.subject, counts, rule)
        if rule.percent:
            value = 100.0 * value / max(len(table), 1)
            shown = f"{rule.subject} = {value:.1f}% of {len(table)} matrices"
        else:
            shown = f"{rule.subject} = {value:g}"
    failed = bool(np.isfinite(value) and _OPS[rule.op](value, rule.threshold))
    unit = "%" if rule.percent else ""
    verb = "violates" if failed else "satisfies"
    return Check(rule.text, value, failed, f"{shown} {verb} '{rule.op} {rule.threshold:g}{unit}'")


def check(
    table: pd.DataFrame, rules: Sequence[str], counts: Mapping[str, int] | None = None
) -> GateResult:
    """Evaluate every rule (parsed first, so a typo fails before anything is judged)."""
    parsed = [parse_rule(r) for r in rules]
    return GateResult(tuple(evaluate(r, table, counts or {}) for r in parsed))
