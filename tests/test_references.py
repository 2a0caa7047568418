"""Verdicts and claims on constructed results (percent units)."""

import math
import re

import pandas as pd
import pytest

from prunebench.references import ClaimError, cells, evaluate_claim, judge, judge_all, parse_claim
from prunebench.spec import Claim, ClaimMargin, ReferenceNumber, Tolerance


def table(rows):
    """Aggregated rows as prunebench.report.aggregate makes them (fractions), from (label, variant, level, sparsity %, mean %, std %, n)."""
    return pd.DataFrame([{
        "label": label, "variant": variant, "level": level, "target_sparsity": s / 100, "accuracy_mean": m / 100,
        "accuracy_std": float("nan") if sd is None else sd / 100, "n": n,
    } for label, variant, level, s, m, sd, n in rows])


OURS = cells(table([
    ("dense", "", 0, 0.0, 93.0, 0.2, 3),
    ("imp", "", 0, 0.0, 93.0, 0.2, 3), ("imp", "", 1, 20.0, 93.1, 0.2, 3), ("imp", "", 10, 89.2626, 91.0, 0.3, 3),
    ("lrr", "", 0, 0.0, 93.0, 0.2, 3), ("lrr", "", 1, 20.0, 93.3, 0.1, 3), ("lrr", "", 10, 89.2626, 91.5, 0.2, 3),
    ("snip", "density=0.1", 0, 90.0, 88.0, None, 1),
]))
TOL = Tolerance(k=2.0, abs=0.5, band=2.0)


def ref(**kw) -> ReferenceNumber:
    return ReferenceNumber(**{"method": "lrr", "sparsity": 89.26, "mean": 91.04, "std": 0.11, "n": 3, "source": "t", **kw})


def test_reproduced_within_k_combined_standard_errors_plus_abs():
    v = judge(ref(), OURS, TOL)
    se = math.sqrt(0.2**2 / 3 + 0.11**2 / 3)
    assert v.verdict == "reproduced" and v.delta == pytest.approx(0.46) and v.allowed == pytest.approx(2 * se + 0.5)


def test_deviates_outside_the_allowed_difference():
    assert judge(ref(mean=92.2), OURS, TOL).verdict == "reproduced"  # |-0.70| <= 2 * 0.132 + 0.5
    v = judge(ref(mean=92.5), OURS, TOL)
    assert v.verdict == "deviates" and v.failed and v.delta == pytest.approx(-1.0)


def test_approximate_reference_is_a_band_never_exact():
    assert judge(ref(mean=90.0, approx=True), OURS, TOL).verdict == "in band"
    out = judge(ref(mean=88.0, approx=True), OURS, TOL)
    assert out.verdict == "out of band" and not out.failed


def test_not_run_when_no_cell_matches():
    assert judge(ref(sparsity=95.0), OURS, TOL).verdict == "not run"
    assert judge(ref(method="synflow"), OURS, TOL).verdict == "not run"


def test_variant_and_missing_std():
    v = judge(ReferenceNumber(method="snip", variant="density=0.1", sparsity=90.0, mean=88.3, source="t"), OURS, TOL)
    assert v.verdict == "reproduced" and v.allowed == pytest.approx(0.5)  # no std anywhere: abs only
    missing = ReferenceNumber(method="snip", variant="density=0.5", sparsity=90.0, mean=88.3, source="t")
    assert judge(missing, OURS, TOL).verdict == "not run"


@pytest.mark.parametrize("text,holds", [
    ("lrr >= imp at sparsity >= 0.5", True),
    ("lrr >= imp", True),
    ("lrr > imp at sparsity > 10", True),
    ("imp > lrr at 89.26", False),
    ("lrr >= imp + 0.3 at sparsity >= 80%", True),
    ("lrr >= imp + 0.6 at sparsity >= 80%", False),
    ("lrr <= dense - 1.4 at 0.8926", True),  # dense has one cell: it stands for every sparsity
    ("lrr >= 91.6 at sparsity >= 50", False),
    ("snip < dense - 3 at 90", True),
    ("snip < lrr - 3 at 90", None),  # lrr has no cell at 90% (its level 10 is 89.26%): not run
])
def test_claims_evaluated(text, holds):
    v = evaluate_claim(Claim(claim=text, source="t"), OURS)
    assert v.verdict == {True: "holds", False: "fails", None: "not run"}[holds], v.detail


def test_false_claim_reports_where_it_fails():
    v = evaluate_claim(Claim(claim="imp >= lrr at sparsity >= 10", source="t"), OURS)
    assert v.failed and "at 20.00%: 93.10 >= 93.30 is false" in v.detail and "at 89.26%" in v.detail


def test_claim_not_run_and_invalid():
    assert evaluate_claim(Claim(claim="synflow >= lrr", source="t"), OURS).verdict == "not run"
    assert evaluate_claim(Claim(claim="lrr >= imp at sparsity >= 99", source="t"), OURS).verdict == "not run"
    assert evaluate_claim(Claim(claim="lrr >> imp", source="t"), OURS).verdict == "invalid"


def test_parse_claim_structure():
    c = parse_claim("cyclic(random) >= lrr - 0.5 at sparsity <= 0.5 and sparsity > 10")
    assert c.left.label == "cyclic(random)" and c.right.label == "lrr" and c.right.offset == -0.5
    assert c.conditions == (("<=", 50.0), (">", 10.0))
    with pytest.raises(ClaimError, match="compares two constants"):
        parse_claim("1 >= 2")
    with pytest.raises(ClaimError, match="expected 'at"):
        parse_claim("lrr >= imp when 90")


def test_a_reference_at_a_sparsity_several_levels_share_matches_the_last_level():
    cyclic = cells(table([("cyclic", "", 0, 50.0, 80.0, 0.1, 3), ("cyclic", "", 1, 50.0, 84.0, 0.1, 3),
                          ("cyclic", "", 2, 50.0, 85.0, 0.1, 3)]))
    v = judge(ref(method="cyclic", sparsity=50.0, mean=85.0, std=0.1), cyclic, TOL)
    assert v.verdict == "reproduced" and v.ours_mean == pytest.approx(85.0)  # the final cycle, not the first


def test_a_reference_naming_its_level_matches_that_level():
    cyclic = cells(table([("cyclic", "", 0, 50.0, 80.0, 0.1, 3), ("cyclic", "", 1, 50.0, 85.0, 0.1, 3)]))
    v = judge(ref(method="cyclic", sparsity=50.0, mean=80.0, std=0.1, level=0), cyclic, TOL)
    assert v.verdict == "reproduced" and v.ours_mean == pytest.approx(80.0)


def budget_cells() -> pd.DataFrame:
    """rigl and sculpt at 90% and 95% sparsity, with training FLOPs; dense at its one cell."""
    return pd.DataFrame({
        "label": ["rigl", "rigl", "sculpt", "sculpt", "dense"], "variant": [""] * 5, "level": [0, 0, 1, 1, 0],
        "sparsity": [90.0, 95.0, 90.0, 95.0, 0.0], "mean": [80.0, 70.0, 79.0, 71.0, 85.0], "std": [0.1] * 5, "n": [2] * 5,
        "train_flops": [1e12, 3e12, 2e12, 2e12, 5e12], "inference_flops": [1.0, 0.5, 1.0, 0.5, 10.0],
    })


@pytest.mark.parametrize("text, verdict, detail", [
    ("rigl >= sculpt at sparsity >= 90 where train_flops <= sculpt", "holds",
     "checked at 1 sparsity (90.00%); outside the budget at 95.00% (train_flops 3e+12 <= 2e+12 is false)"),
    ("rigl >= sculpt where train_flops <= 0.4 * sculpt", "not run", "no sparsity within the budget"),
    ("rigl >= sculpt at 95 where train_flops <= 1e13", "fails", "at 95.00%: 70.00 >= 71.00 is false"),
    ("rigl >= sculpt where train_flops <= 2 * sculpt and inference_flops <= 0.5", "fails", "at 95.00%: 70.00 >= 71.00"),
    ("rigl <= dense where train_flops <= dense", "holds", "checked at 2 sparsities"),
])
def test_claims_at_a_training_budget(text, verdict, detail):
    result = evaluate_claim(Claim(claim=text, source="test"), budget_cells())
    assert result.verdict == verdict and detail in result.detail, result


@pytest.mark.parametrize("text", ["rigl >= sculpt where flops <= sculpt", "rigl >= sculpt where train_flops sculpt",
                                  "80 >= rigl where train_flops <= sculpt", "rigl >= sculpt where train_flops <= sculpt and"])
def test_malformed_budget_conditions_are_invalid(text):
    assert evaluate_claim(Claim(claim=text, source="test"), budget_cells()).verdict == "invalid"


def test_a_reference_is_checked_against_its_metric():
    """A reference on test_loss compares with the cell's loss (as it is), one on success_rate or top-1
    accuracy with its test accuracy (percent)."""
    table = pd.DataFrame({"label": ["m", "m"], "variant": ["", ""], "level": [0, 0], "target_sparsity": [0.5, 0.5],
                          "accuracy_mean": [0.8, 0.8], "accuracy_std": [0.01, 0.01], "loss_mean": [0.6, 0.6],
                          "loss_std": [0.01, 0.01], "n": [2, 2]}).iloc[:1]
    tol = Tolerance(k=2, abs=0.05)
    loss_ok = ReferenceNumber(method="m", sparsity=50, mean=0.62, std=0.01, n=2, source="s", metric="test_loss")
    loss_off = ReferenceNumber(method="m", sparsity=50, mean=0.9, std=0.01, n=2, source="s", metric="test_loss")
    rate = ReferenceNumber(method="m", sparsity=50, mean=80.0, std=1.0, n=2, source="s", metric="success_rate")
    acc = ReferenceNumber(method="m", sparsity=50, mean=0.62, std=0.01, n=2, source="s")  # top-1 in percent: 0.62% is far off
    verdicts = judge_all([loss_ok, loss_off, rate, acc], table, tol)
    assert [v.verdict for v in verdicts] == ["reproduced", "deviates", "reproduced", "deviates"]
    assert verdicts[0].ours_mean == pytest.approx(0.6) and verdicts[2].ours_mean == pytest.approx(80.0)


# ---- claims that know about seed noise (references.claim_margin)
MARGIN = ClaimMargin(k=2.0, points=0.0)


@pytest.mark.parametrize("text,verdict", [
    # at 20%: lrr 93.3 (std 0.1, n 3) vs imp 93.1 (0.2, 3): difference 0.2 < 2 SE = 0.258
    ("lrr >= imp at 20", "inconclusive"),
    ("imp >= lrr at 20", "inconclusive"),  # exactly compared it fails; within the noise it is not decided
    # at 89.26%: 91.5 (0.2) vs 91.0 (0.3): 0.5 > 2 * sqrt(0.04/3 + 0.09/3) = 0.416
    ("lrr > imp at 89.26", "holds"),
    ("imp >= lrr at 89.26", "fails"),
    ("lrr <= imp at 89.26", "fails"),
    ("imp < lrr at 89.26", "holds"),
    ("lrr >= imp at sparsity >= 10", "inconclusive"),  # holds at 89.26%, within the margin at 20%
    ("imp >= lrr at sparsity >= 10", "fails"),  # fails somewhere: fails
    ("lrr == imp + 0.3 at 89.26", "holds"),  # |91.5 - 91.3| <= 0.416
    ("lrr >= 91 at 89.26", "holds"),  # a constant has no noise: 0.5 > 2 * 0.2 / sqrt(3)
])
def test_claims_within_the_seed_noise_are_inconclusive(text, verdict):
    v = evaluate_claim(Claim(claim=text, source="t"), OURS, MARGIN)
    assert v.verdict == verdict, v.detail
    assert v.failed == (verdict == "fails")


def test_an_inconclusive_claim_says_where_and_by_how_much():
    v = evaluate_claim(Claim(claim="lrr >= imp at 20", source="t"), OURS, MARGIN)
    assert v.detail == f"at 20.00%: 93.30 >= 93.10: within the margin {2 * math.sqrt(0.1**2 / 3 + 0.2**2 / 3):.2f}"
    points = evaluate_claim(Claim(claim="lrr > imp at 89.26", source="t"), OURS, ClaimMargin(k=0, points=1.0))
    assert points.verdict == "inconclusive" and "within the margin 1.00" in points.detail


def test_one_seed_gives_no_noise_estimate_and_says_so():
    v = evaluate_claim(Claim(claim="snip < dense - 3 at 90", source="t"), OURS, MARGIN)
    assert v.verdict == "holds" and "one seed on a side: no noise estimate there" in v.detail


# ---- a side that is a difference (any signed sum) of labels and constants
DROPS = cells(table([
    # at 50%: lrr drops 1.0 under sign perturbation, imp 2.0; at 90%: lrr 1.5, imp 2.0; at 80% imp_sp has no cell
    ("lrr", "", 3, 50.0, 93.0, 0.3, 3), ("lrr_sp", "", 3, 50.0, 92.0, 0.3, 3),
    ("imp", "", 3, 50.0, 92.0, 0.2, 3), ("imp_sp", "", 3, 50.0, 90.0, 0.4, 3),
    ("lrr", "", 7, 80.0, 92.0, 0.3, 3), ("lrr_sp", "", 7, 80.0, 90.0, 0.3, 3), ("imp", "", 7, 80.0, 91.0, 0.2, 3),
    ("lrr", "", 10, 90.0, 91.0, 0.2, 2), ("lrr_sp", "", 10, 90.0, 89.5, 0.2, 2),
    ("imp", "", 10, 90.0, 90.0, 0.2, 2), ("imp_sp", "", 10, 90.0, 88.0, 0.4, 4),
    ("noisy", "", 1, 20.0, 70.0, 3.0, 3), ("noisy", "", 3, 50.0, 80.0, 3.0, 3),  # no cell at 80% or 90%
    ("solo", "", 3, 50.0, 85.0, None, 1), ("solo", "", 10, 90.0, 84.0, None, 1),
]))
DROP_50 = 2 * math.sqrt((0.3**2 + 0.3**2 + 0.2**2 + 0.4**2) / 3)  # 0.712: every label's variance of the mean, summed
DROP_90 = 2 * math.sqrt(0.2**2 / 2 + 0.2**2 / 2 + 0.2**2 / 2 + 0.4**2 / 4)  # 0.632


def test_a_difference_side_parses_to_signed_terms():
    c = parse_claim("lrr - lrr_sp <= imp - imp_sp + 0.5 - lrr at sparsity >= 50")
    assert c.left.terms == (("lrr", 1.0), ("lrr_sp", -1.0)) and c.left.offset == 0 and c.left.label == "lrr"
    assert c.right.terms == (("imp", 1.0), ("imp_sp", -1.0), ("lrr", -1.0)) and c.right.offset == 0.5
    assert c.right.labels == ("imp", "imp_sp", "lrr") and c.conditions == ((">=", 50.0),)
    twice = parse_claim("a + a - b >= 1 - 2 + c")
    assert twice.left.coefficients() == {"a": 2.0, "b": -1.0} and twice.right.offset == -1.0 and twice.right.label == "c"


def test_a_difference_claim_compares_the_side_values_where_every_label_has_a_cell():
    v = evaluate_claim(Claim(claim="lrr - lrr_sp <= imp - imp_sp at sparsity >= 50", source="t"), DROPS)
    assert v.verdict == "holds" and v.detail == "checked at 2 sparsities (50.00%, 90.00%)"  # 80%: imp_sp has no cell
    v = evaluate_claim(Claim(claim="lrr - lrr_sp > imp - imp_sp at 90", source="t"), DROPS)
    assert v.verdict == "fails" and v.detail == "at 90.00%: 1.50 > 2.00 is false"


def test_a_difference_is_checked_where_any_of_its_labels_has_cells():
    v = evaluate_claim(Claim(claim="dense - rigl >= 4 + sculpt - sculpt", source="t"), budget_cells())  # dense: one cell, every sparsity
    assert v.verdict == "holds" and v.detail == "checked at 2 sparsities (90.00%, 95.00%)"  # 5.00 and 15.00 >= 4.00


def test_a_difference_claim_holds_fails_or_is_inconclusive_within_the_summed_noise():
    holds = evaluate_claim(Claim(claim="lrr - lrr_sp <= imp - imp_sp at 50", source="t"), DROPS, MARGIN)
    assert holds.verdict == "holds", holds.detail  # lead 2.0 - 1.0 = 1.0 > 0.712
    fails = evaluate_claim(Claim(claim="imp - imp_sp <= lrr - lrr_sp at 50", source="t"), DROPS, MARGIN)
    assert fails.verdict == "fails" and fails.detail == f"at 50.00%: 2.00 <= 1.00 is false by more than the margin {DROP_50:.2f}"
    unsure = evaluate_claim(Claim(claim="lrr - lrr_sp <= imp - imp_sp at 90", source="t"), DROPS, MARGIN)
    assert unsure.verdict == "inconclusive"  # lead 0.5 < 0.632
    assert unsure.detail == f"at 90.00%: 1.50 <= 2.00: within the margin {DROP_90:.2f}" and f"{DROP_90:.2f}" == "0.63"
    both = evaluate_claim(Claim(claim="lrr - lrr_sp <= imp - imp_sp at sparsity >= 50", source="t"), DROPS, MARGIN)
    assert both.verdict == "inconclusive" and both.detail.startswith("at 90.00%")  # holds at 50%, undecided at 90%
    wider = evaluate_claim(Claim(claim="lrr - lrr_sp <= imp - imp_sp at 50", source="t"), DROPS, ClaimMargin(k=2.0, points=0.3))
    assert wider.verdict == "inconclusive" and f"within the margin {DROP_50 + 0.3:.2f}" in wider.detail  # 1.0 < 1.012


def test_a_label_on_both_sides_cancels_in_value_and_noise():
    # noisy (std 3) on both sides: imp - imp_sp - 1 = 1.0 against 2 * sqrt((0.04 + 0.16) / 3) = 0.516 alone;
    # counted, noisy's variance would widen the margin past 5 points and leave the claim undecided
    v = evaluate_claim(Claim(claim="noisy + imp >= noisy + imp_sp + 1 at sparsity >= 50", source="t"), DROPS, MARGIN)
    assert v.verdict == "holds" and v.detail == "checked at 1 sparsity (50.00%)", v.detail  # noisy has no cell at 90%
    margin = 2 * math.sqrt((0.2**2 + 0.4**2) / 3)
    v = evaluate_claim(Claim(claim="noisy + imp_sp >= noisy + imp at 50", source="t"), DROPS, MARGIN)
    assert v.verdict == "fails" and v.detail == f"at 50.00%: 170.00 >= 172.00 is false by more than the margin {margin:.2f}"
    cancelled = evaluate_claim(Claim(claim="solo - lrr_sp >= solo - lrr + 0.5 at 50", source="t"), DROPS, MARGIN)
    assert cancelled.verdict == "holds" and "one seed" not in cancelled.detail  # 1.0 - 0.5 > 2 * sqrt(0.18 / 3)
    doubled = evaluate_claim(Claim(claim="lrr + lrr >= imp + imp + 1.3 at 50", source="t"), DROPS, MARGIN)
    assert doubled.verdict == "inconclusive"  # lead 0.7; coefficient 2: 4 variances each, 2 * sqrt(4 * 0.13 / 3) = 0.83
    assert doubled.detail == f"at 50.00%: 186.00 >= 185.30: within the margin {2 * math.sqrt(4 * (0.3**2 + 0.2**2) / 3):.2f}"
    counted = evaluate_claim(Claim(claim="lrr - solo >= 7 at 50", source="t"), DROPS, MARGIN)
    assert counted.verdict == "holds" and "one seed on a side: no noise estimate there" in counted.detail


def test_a_side_may_lead_with_a_constant():
    exact = evaluate_claim(Claim(claim="93 - lrr_sp <= 1.5 at 50", source="t"), DROPS)
    assert exact.verdict == "holds"
    v = evaluate_claim(Claim(claim="93 - lrr_sp <= 0.5 at 50", source="t"), DROPS, MARGIN)
    assert v.verdict == "fails" and v.detail == f"at 50.00%: 1.00 <= 0.50 is false by more than the margin {2 * 0.3 / math.sqrt(3):.2f}"
    assert evaluate_claim(Claim(claim="93 - lrr_sp <= 1.2 at 50", source="t"), DROPS, MARGIN).verdict == "inconclusive"


def test_a_budget_under_a_difference_is_the_cost_of_the_left_sides_first_label():
    first_rigl = evaluate_claim(Claim(claim="rigl - sculpt + 2 >= 0 where train_flops <= 2e12", source="t"), budget_cells())
    assert first_rigl.verdict == "holds"  # rigl costs 1e12 at 90%, 3e12 at 95%
    assert first_rigl.detail == "checked at 1 sparsity (90.00%); outside the budget at 95.00% (train_flops 3e+12 <= 2e+12 is false)"
    first_sculpt = evaluate_claim(Claim(claim="sculpt - rigl <= 2 where train_flops <= 2e12", source="t"), budget_cells())
    assert first_sculpt.verdict == "holds" and first_sculpt.detail == "checked at 2 sparsities (90.00%, 95.00%)"  # sculpt: 2e12
    led = evaluate_claim(Claim(claim="80 - rigl >= sculpt - 90 at 95 where train_flops <= 3 * sculpt", source="t"), budget_cells())
    assert led.verdict == "holds" and led.detail == "checked at 1 sparsity (95.00%)"  # 10.00 >= -19.00; rigl 3e12 <= 6e12
    no_label = evaluate_claim(Claim(claim="80 + 1 >= rigl where train_flops <= sculpt", source="t"), budget_cells())
    assert no_label.verdict == "invalid" and "needs a method on the left" in no_label.detail


@pytest.mark.parametrize("text, message", [
    ("lrr - lrr_sp <= imp -", "ends early after '-'"),
    ("lrr - ", "ends early after '-'"),
    ("lrr - >= imp", "expected a method label or a number after '-', got '>='"),
    ("lrr >= imp + at 90", "expected a method label or a number after '+', got 'at'"),
    ("1 + 2 >= 3 - 0.5", "compares two constants"),
    ("lrr * 2 >= imp", "expected one of"),
])
def test_malformed_difference_sides_do_not_parse(text, message):
    with pytest.raises(ClaimError, match=re.escape(message)):
        parse_claim(text)
    assert evaluate_claim(Claim(claim=text, source="t"), DROPS).verdict == "invalid"


def test_a_difference_naming_a_label_without_results_is_not_run():
    v = evaluate_claim(Claim(claim="lrr - synflow <= imp - imp_sp", source="t"), DROPS)
    assert v.verdict == "not run" and v.detail == "no results for synflow"
