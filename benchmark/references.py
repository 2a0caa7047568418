"""Reference numbers and claims, checked against a suite's aggregated results.

Units are percent throughout (accuracy and sparsity), as papers print them.

**Matching.** A reference names a method label (and, for swept methods, a variant) and a target
sparsity; it matches our cell of that label and variant whose target sparsity is nearest, within
0.06 percentage points (papers round sparsities to two decimals: 1 - 0.8^10 = 89.2626% is "89.26").
When several levels share that sparsity (the cycles of cyclic training, a retrain at the same
density), the last level is the cell: it is the method's result. A reference that names its
``level`` (golden files do) matches that level only.

**Verdict of a cell** (the rule ``bench check`` applies):

- exact reference: with our mean m, sample std s over n seeds and the reference's mean r, std t
  over n' seeds, the combined standard error is se = sqrt(s^2/n + t^2/n'), a missing std or n
  counting as 0. The cell is **reproduced** when |m - r| <= k * se + abs (k and abs from the suite's
  ``tolerance``, default 2 and 0.5 points), else it **deviates**.
- approximate reference (read off a plot, or another harness's protocol): never an exact target;
  the cell is **in band** when |m - r| <= band (default 2 points), else **out of band**.
- **not run**: we have no complete cell at that sparsity.

**Claims** are assertions such as ``lrr >= imp at sparsity >= 90``, ``snip > random at 99``,
``cyclic >= lrr - 0.5 at sparsity <= 50``, ``dense >= 85`` or
``lrr - lrr_sign_perturbation <= imp - imp_sign_perturbation at sparsity >= 50``::

    claim   := side OP side ["at" condition ("and" condition)*] ["where" budget ("and" budget)*]
    side    := term (("+" | "-") term)*                     (at least one LABEL in the claim)
    term    := LABEL | NUMBER
    condition := "sparsity" CMP NUMBER | NUMBER            (a bare number means sparsity == NUMBER)
    budget  := QUANTITY CMP [NUMBER "*"] (LABEL | NUMBER)  (QUANTITY: train_flops | inference_flops)
    OP, CMP := >= | > | <= | < | ==

A side with several terms is a difference (or sum) of accuracies, such as a method's drop under a
perturbation: its value is the signed sum of its labels' means plus its constants, and its noise the
sum of its labels' variances of the mean (the seeds of different labels are taken as independent:
conservative for a difference of positively correlated results, such as runs that share seeds). The
claim is judged as one linear combination, left minus right, so a label on both sides cancels in
value and in noise. A budget compares the cost of the first label of the left side.

A number with ``%`` or above 1 is a percentage; at most 1 without ``%`` it is a fraction
(``0.9`` = 90%). The claim is evaluated at every target sparsity where the condition holds and
every label of the sides has a cell (a label without cells at other sparsities, such as ``dense``,
is taken at its only cell); it **holds** when it holds at all of them, **fails** when it fails at
any, and is **not run** when there is no such sparsity.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prunebench.spec import Claim, ClaimMargin, Metric, ReferenceNumber, Tolerance

if TYPE_CHECKING:  # pandas (0.5 s to import) only where tables are judged, not where suites are checked
    import pandas as pd

SPARSITY_MATCH = 0.06  # percentage points

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": lambda a, b: math.isclose(a, b, abs_tol=1e-9),
}


def cells(table: pd.DataFrame, metric: Metric = "top1_test_acc") -> pd.DataFrame:
    """Aggregated rows (prunebench.report.aggregate), one per (label, variant, level): the target
    sparsity in percent and the metric's mean and std over seeds (accuracy and success rate in
    percent, loss as it is)."""
    import pandas as pd

    if table.empty:
        return pd.DataFrame(columns=["label", "variant", "level", "sparsity", "mean", "std", "n"])
    column, scale = ("loss", 1.0) if metric == "test_loss" else ("accuracy", 100.0)
    costs = {q: table[q] if q in table else float("nan") for q in BUDGET_QUANTITIES}
    return pd.DataFrame({
        "label": table["label"], "variant": table["variant"], "level": table["level"],
        "sparsity": 100 * table["target_sparsity"], "mean": scale * table[f"{column}_mean"],
        "std": scale * table[f"{column}_std"], "n": table["n"], **costs,
    })


def find_cell(ours: pd.DataFrame, label: str, variant: str | None, sparsity: float, level: int | None = None) -> pd.Series | None:
    """Our cell of ``label`` (and ``variant`` and ``level`` unless None) nearest to ``sparsity``, within the
    match tolerance."""
    rows = ours[(ours["label"] == label) & ((ours["variant"] == variant) if variant is not None else True)
                & ((ours["level"] == level) if level is not None else True)]
    if rows.empty:
        return None
    distance = (rows["sparsity"] - sparsity).abs().round(9)
    nearest = rows[distance == distance.min()]
    if distance.min() > SPARSITY_MATCH:
        return None
    return nearest.loc[nearest["level"].astype(int).idxmax()]  # ties (a cycle or a retrain at one sparsity): the last


@dataclass(frozen=True)
class Verdict:
    reference: ReferenceNumber
    verdict: str  # reproduced | deviates | in band | out of band | not run
    ours_mean: float | None = None
    ours_std: float | None = None
    ours_n: int = 0
    delta: float | None = None  # ours - reference, points
    allowed: float | None = None  # the largest |delta| that counts as reproduced / in band

    @property
    def failed(self) -> bool:
        return self.verdict == "deviates"


def judge(ref: ReferenceNumber, ours: pd.DataFrame, tolerance: Tolerance) -> Verdict:
    cell = find_cell(ours, ref.method, ref.variant, ref.sparsity, ref.level)
    if cell is None:
        return Verdict(ref, "not run")
    mean, n = float(cell["mean"]), int(cell["n"])
    std = None if _missing(cell["std"]) else float(cell["std"])
    delta = mean - ref.mean
    if ref.approx:
        verdict = "in band" if abs(delta) <= tolerance.band else "out of band"
        return Verdict(ref, verdict, mean, std, n, delta, tolerance.band)
    se = math.sqrt(_var(std, n) + _var(ref.std, ref.n))
    allowed = tolerance.k * se + tolerance.abs
    return Verdict(ref, "reproduced" if abs(delta) <= allowed else "deviates", mean, std, n, delta, allowed)


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _var(std: float | None, n: int | None) -> float:
    return (std**2) / n if std is not None and n else 0.0


def judge_all(refs: Sequence[ReferenceNumber], table: pd.DataFrame, tolerance: Tolerance) -> list[Verdict]:
    """Every reference against our cells of its metric (``table``: prunebench.report.aggregate)."""
    by_metric = {metric: cells(table, metric) for metric in {ref.metric for ref in refs}}
    return [judge(ref, by_metric[ref.metric], tolerance) for ref in refs]


# ------------------------------------------------------------------------------------------ claims
class ClaimError(ValueError):
    """A claim that does not parse."""


@dataclass(frozen=True)
class Side:
    """A signed sum of method labels and constants: ``terms`` the labels with their signs (+1 or -1, a label
    as often as it is written), ``offset`` the sum of the constants."""

    terms: tuple[tuple[str, float], ...]  # (label, +1 | -1), in the order written; empty: a constant
    offset: float  # added to the labels' accuracies (or the constant itself)

    @property
    def label(self) -> str | None:
        """The first label (a budget's method on the left side); None for a constant."""
        return self.terms[0][0] if self.terms else None

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label named, once each, in the order written."""
        return tuple(dict.fromkeys(label for label, _ in self.terms))

    def coefficients(self) -> dict[str, float]:
        """Each label's coefficient: its signs summed."""
        out: dict[str, float] = {}
        for label, sign in self.terms:
            out[label] = out.get(label, 0.0) + sign
        return out


@dataclass(frozen=True)
class Budget:
    """``where train_flops <= [FACTOR *] LABEL | NUMBER``: the left side's cost against another's, or a number."""

    quantity: str  # a cell column: train_flops or inference_flops
    op: str
    label: str | None  # None: ``number`` is the bound itself
    number: float  # the factor on the label's cost, or the bound


BUDGET_QUANTITIES = ("train_flops", "inference_flops")


@dataclass(frozen=True)
class ParsedClaim:
    left: Side
    op: str
    right: Side
    conditions: tuple[tuple[str, float], ...]  # (CMP, sparsity percent)
    budgets: tuple[Budget, ...] = ()


_NUMBER = r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?%?"
_TOKEN = re.compile(rf"\s*(>=|<=|==|>|<|[+*-]|{_NUMBER}|[A-Za-z_][\w()\[\]=.,]*)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ClaimError(f"cannot read claim {text!r} at {text[pos:]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


def _number(token: str) -> float | None:
    if re.fullmatch(_NUMBER, token):
        return float(token.rstrip("%"))
    return None


def _percent(token: str) -> float:
    value = _number(token)
    if value is None:
        raise ClaimError(f"expected a sparsity, got {token!r}")
    return value if token.endswith("%") or value > 1 else 100 * value


def parse_claim(text: str) -> ParsedClaim:
    tokens = _tokens(text)
    pos = 0

    def side() -> Side:
        nonlocal pos
        terms: list[tuple[str, float]] = []
        offset, sign = 0.0, 1.0
        while True:
            after = f" after {tokens[pos - 1]!r}" if pos > 0 else ""
            if pos >= len(tokens):
                raise ClaimError(f"claim {text!r} ends early{after}")
            token = tokens[pos]
            pos += 1
            if (value := _number(token)) is not None:
                offset += sign * value
            elif token in _OPS or token in ("+", "-", "*", "at", "and", "where"):
                raise ClaimError(f"claim {text!r}: expected a method label or a number{after}, got {token!r}")
            else:
                terms.append((token, sign))
            if pos < len(tokens) and tokens[pos] in ("+", "-"):
                sign = 1.0 if tokens[pos] == "+" else -1.0
                pos += 1
                continue
            return Side(tuple(terms), offset)

    left = side()
    if pos >= len(tokens) or tokens[pos] not in _OPS:
        raise ClaimError(f"claim {text!r}: expected one of {', '.join(_OPS)} after the first side")
    op = tokens[pos]
    pos += 1
    right = side()
    conditions: list[tuple[str, float]] = []
    if pos < len(tokens) and tokens[pos] not in ("at", "where"):
        raise ClaimError(f"claim {text!r}: expected 'at ...' or 'where ...' after the comparison, got {tokens[pos]!r}")
    if pos < len(tokens) and tokens[pos] == "at":
        pos += 1
        while True:
            if pos < len(tokens) and tokens[pos] == "sparsity":
                if pos + 2 >= len(tokens) or tokens[pos + 1] not in _OPS:
                    raise ClaimError(f"claim {text!r}: expected 'sparsity CMP NUMBER'")
                conditions.append((tokens[pos + 1], _percent(tokens[pos + 2])))
                pos += 3
            elif pos < len(tokens):
                conditions.append(("==", _percent(tokens[pos])))
                pos += 1
            else:
                raise ClaimError(f"claim {text!r} ends after 'at'/'and'")
            if pos == len(tokens) or tokens[pos] == "where":
                break
            if tokens[pos] != "and":
                raise ClaimError(f"claim {text!r}: expected 'and', got {tokens[pos]!r}")
            pos += 1
    budgets: list[Budget] = []
    if pos < len(tokens):  # "where" QUANTITY CMP [NUMBER "*"] (LABEL | NUMBER) ("and" ...)*
        pos += 1
        while True:
            quantity = tokens[pos] if pos < len(tokens) else ""
            cmp = tokens[pos + 1] if pos + 1 < len(tokens) else ""
            if quantity not in BUDGET_QUANTITIES or cmp not in _OPS or pos + 2 >= len(tokens):
                raise ClaimError(f"claim {text!r}: expected 'where {'|'.join(BUDGET_QUANTITIES)} CMP [FACTOR *] LABEL|NUMBER'")
            pos += 2
            factor = 1.0
            if _number(tokens[pos]) is not None and pos + 2 < len(tokens) and tokens[pos + 1] == "*":
                factor, pos = _number(tokens[pos]), pos + 2
            bound = tokens[pos]
            pos += 1
            number = _number(bound)
            budgets.append(Budget(quantity, cmp, None, number) if number is not None else Budget(quantity, cmp, bound, factor))
            if pos == len(tokens):
                break
            if tokens[pos] != "and":
                raise ClaimError(f"claim {text!r}: expected 'and', got {tokens[pos]!r}")
            pos += 1
    if left.label is None and right.label is None:
        raise ClaimError(f"claim {text!r} compares two constants: a claim names at least one method label")
    if budgets and left.label is None:
        raise ClaimError(f"claim {text!r}: a budget condition ('where') needs a method on the left")
    return ParsedClaim(left, op, right, tuple(conditions), tuple(budgets))


@dataclass(frozen=True)
class ClaimVerdict:
    claim: Claim
    verdict: str  # holds | fails | inconclusive (within the seed-noise margin somewhere, failing nowhere) | not run | invalid
    detail: str

    @property
    def failed(self) -> bool:
        return self.verdict in ("fails", "invalid")


def _claim_cell(label: str, ours: pd.DataFrame, sparsity: float) -> pd.Series | None:
    """A claim's cell of ``label`` at ``sparsity``: a label with one cell (e.g. dense) stands for every sparsity."""
    rows = ours[ours["label"] == label]
    return rows.iloc[0] if len(rows) == 1 else find_cell(ours, label, None, sparsity)


def _means(labels: Sequence[str], ours: pd.DataFrame, sparsity: float) -> dict[str, tuple[float, float, int]] | None:
    """(mean, variance of the mean, seeds) of each label's claim cell at ``sparsity``; None when one has no cell."""
    out = {}
    for label in labels:
        cell = _claim_cell(label, ours, sparsity)
        if cell is None:
            return None
        std, n = (None if _missing(cell["std"]) else float(cell["std"])), int(cell["n"])
        out[label] = float(cell["mean"]), _var(std, n), n
    return out


def _value(side: Side, means: dict[str, tuple[float, float, int]]) -> float:
    """A side's value: its labels' means, signed, plus its constants (a constant alone: itself)."""
    return sum(sign * means[label][0] for label, sign in side.terms) + side.offset


def _combination(parsed: ParsedClaim) -> dict[str, float]:
    """The claim as one linear combination, left minus right: each label's coefficient (0: it cancels)."""
    out = parsed.left.coefficients()
    for label, c in parsed.right.coefficients().items():
        out[label] = out.get(label, 0.0) - c
    return out


def _decide(op: str, left: float, right: float, margin: float) -> str:
    """holds / fails / inconclusive for ``left op right`` when differences within ``margin`` are noise."""
    if op == "==":
        return "holds" if abs(left - right) <= margin else "fails"
    if margin == 0:
        return "holds" if _OPS[op](left, right) else "fails"
    lead = left - right if op in (">", ">=") else right - left
    return "holds" if lead > margin else "fails" if lead < -margin else "inconclusive"


def _cost(label: str, quantity: str, ours: pd.DataFrame, sparsity: float) -> float | None:
    cell = _claim_cell(label, ours, sparsity)
    if cell is None or quantity not in cell or _missing(cell[quantity]):
        return None
    return float(cell[quantity])


def _within_budget(parsed: ParsedClaim, ours: pd.DataFrame, sparsity: float) -> str | None:
    """None when every budget condition holds at ``sparsity``; else why not."""
    for b in parsed.budgets:
        mine = _cost(parsed.left.label, b.quantity, ours, sparsity)
        bound = b.number if b.label is None else _cost(b.label, b.quantity, ours, sparsity)
        if mine is None or bound is None:
            return f"no {b.quantity} recorded"
        bound = bound if b.label is None else b.number * bound
        if not _OPS[b.op](mine, bound):
            return f"{b.quantity} {mine:.3g} {b.op} {bound:.3g} is false"
    return None


def evaluate_claim(claim: Claim, ours: pd.DataFrame, margin: ClaimMargin | None = None) -> ClaimVerdict:
    """A claim at every sparsity it names: it holds where the sides differ the claimed way by more than
    ``margin`` (k standard errors of the difference of the seed means, plus points; None: compare the
    means exactly), fails where they differ the other way by more, and is inconclusive in between."""
    k, points = (margin.k, margin.points) if margin is not None else (0.0, 0.0)
    try:
        parsed = parse_claim(claim.claim)
    except ClaimError as e:
        return ClaimVerdict(claim, "invalid", str(e))
    sides = list(dict.fromkeys((*parsed.left.labels, *parsed.right.labels)))
    labels = sides + [b.label for b in parsed.budgets if b.label is not None and b.label not in sides]
    unknown = list(dict.fromkeys(lb for lb in labels if lb not in set(ours["label"])))
    if unknown:
        return ClaimVerdict(claim, "not run", f"no results for {', '.join(unknown)}")
    combination = _combination(parsed)
    noisy = [lb for lb in sides if combination[lb] != 0]  # a label on both sides alike cancels, noise and all
    candidates = sorted(set(ours[ours["label"].isin(sides)]["sparsity"].round(4)))
    sparsities = [s for s in candidates if all(_OPS[cmp](s, x) or math.isclose(s, x, abs_tol=SPARSITY_MATCH) and cmp in (">=", "<=", "==")
                                               for cmp, x in parsed.conditions)]
    checked, failures, unsure, over, one_seed = [], [], [], [], False
    for sparsity in sparsities:
        if (means := _means(sides, ours, sparsity)) is None:
            continue
        if (reason := _within_budget(parsed, ours, sparsity)) is not None:
            over.append(f"{sparsity:.2f}% ({reason})")
            continue
        checked.append(sparsity)
        one_seed |= k > 0 and any(means[lb][2] == 1 for lb in noisy)
        allowed = k * math.sqrt(sum(combination[lb] ** 2 * means[lb][1] for lb in noisy)) + points
        # decided on left - right with the labels that cancel left out (each side keeps its constants:
        # a claim of one label a side compares exactly as it reads)
        ahead = sum(combination[lb] * means[lb][0] for lb in noisy if combination[lb] > 0) + parsed.left.offset
        behind = sum(-combination[lb] * means[lb][0] for lb in noisy if combination[lb] < 0) + parsed.right.offset
        verdict = _decide(parsed.op, ahead, behind, allowed)
        shown = f"at {sparsity:.2f}%: {_value(parsed.left, means):.2f} {parsed.op} {_value(parsed.right, means):.2f}"
        if verdict == "fails":
            failures.append(f"{shown} is false" + (f" by more than the margin {allowed:.2f}" if allowed else ""))
        elif verdict == "inconclusive":
            unsure.append(f"{shown}: within the margin {allowed:.2f}")
    outside = f"; outside the budget at {', '.join(over)}" if over else ""
    noise = "; one seed on a side: no noise estimate there" if one_seed else ""
    if not checked:
        return ClaimVerdict(claim, "not run", ("no sparsity within the budget" if over else
                                               "no sparsity where both sides have results") + outside)
    if failures:
        return ClaimVerdict(claim, "fails", "; ".join(failures) + outside + noise)
    if unsure:
        return ClaimVerdict(claim, "inconclusive", "; ".join(unsure) + outside + noise)
    where = ", ".join(f"{s:.2f}%" for s in checked)
    return ClaimVerdict(claim, "holds", f"checked at {len(checked)} {'sparsity' if len(checked) == 1 else 'sparsities'} "
                                        f"({where}){outside}{noise}")
