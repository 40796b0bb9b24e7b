"""docs/theory.md §4 (T1–T5) hold numerically (the same checks `ualign reproduce` prints)."""

import pytest

from ualign_jax import reproduce


@pytest.mark.parametrize("claim", reproduce.CLAIMS, ids=lambda c: c.__name__)
def test_claim_holds(claim):
    row = claim()
    assert row["passed"], row["detail"]


def test_t4_reports_the_gap_to_k_over_k_plus_ell():
    row = reproduce.t4_multi_output(ks=(4,), ells=(2,))
    assert "k/(k+l) - R" in row["detail"]
    assert row["min_margin"] >= 0
