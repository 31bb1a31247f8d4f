"""I² of the bivariate model (Zhou & Dendukuri 2014; Holling et al.) against mada's AuditC vignette.

Expected numbers are copied from /work/shared/meta-reference/expected_outputs.json, key
``auditc_mada`` -> ``reitsma_REML``, which cites the mada 0.5.12 vignette inst/doc/mada.pdf
(cran/mada @5fcad806), output of ``fit.reitsma <- reitsma(AuditC); summary(fit.reitsma)``:

    I2 estimates
    Zhou and Dendukuri approach:  40.4 %
    Holling sample size unadjusted approaches:  35.6 - 79.3 %
    Holling sample size adjusted approaches:  0.2 - 2.4 %

mada prints these rounded to 1 decimal; |ours - printed| <= 0.05 (plus float slack). mada's
Zhou-Dendukuri code uses the squared SEs of the pooled logits where the paper has tau², so these
are compatibility values only (``as_coded_in_mada=True``); the published formula is checked by
its properties.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import special

from opencmr.meta.bivariate import BivariateI2, _zhou_dendukuri, bivariate_i2, reitsma
from opencmr.meta.data import DtaStudies, read_dta_csv


def printed(value: float, expected: float) -> bool:
    """``value`` (percent) rounds to ``expected`` as mada prints it, ``round(100 * i2, 1)``."""
    return abs(value - expected) <= 0.05 + 1e-9


@pytest.fixture(scope="module")
def auditc(meta_reference):
    studies = read_dta_csv(meta_reference / "auditc_mada.csv")
    expected = json.loads((meta_reference / "expected_outputs.json").read_text())["auditc_mada"]["reitsma_REML"]
    return studies, reitsma(studies), expected


def test_mada_variant_reproduces_the_vignette(auditc):
    studies, fit, expected = auditc
    i2 = bivariate_i2(fit, studies, as_coded_in_mada=True)
    assert isinstance(i2, BivariateI2) and i2.as_coded_in_mada
    # mada 0.5.12 vignette, summary(reitsma(AuditC)): "Zhou and Dendukuri approach: 40.4 %"
    assert expected["I2_zhou_dendukuri_as_coded_in_mada"] == 40.4
    assert printed(i2.zhou_dendukuri, 40.4)
    # same output: "Holling sample size unadjusted approaches: 35.6 - 79.3 %"
    assert expected["I2_holling_unadjusted_range"] == [35.6, 79.3]
    lo, hi = i2.holling_unadjusted_range
    assert printed(lo, 35.6) and printed(hi, 79.3)
    # same output: "Holling sample size adjusted approaches: 0.2 - 2.4 %"
    assert expected["I2_holling_adjusted_range"] == [0.2, 2.4]
    lo, hi = i2.holling_adjusted_range
    assert printed(lo, 0.2) and printed(hi, 2.4)


def test_published_variant_differs_only_in_zhou_dendukuri(auditc):
    studies, fit, _ = auditc
    mada, published = bivariate_i2(fit, studies, as_coded_in_mada=True), bivariate_i2(fit, studies)
    assert not published.as_coded_in_mada
    assert published.holling_unadjusted == mada.holling_unadjusted
    assert published.holling_adjusted == mada.holling_adjusted
    # tau² (1.175², 0.638²) is far larger than the squared SEs (0.338², 0.174²): more heterogeneity
    assert 0 <= published.zhou_dendukuri <= 100
    assert published.zhou_dendukuri > mada.zhou_dendukuri + 20
    d = published.to_dict()
    assert d["variant"] == "published formulas" and len(d["holling_unadjusted"]) == 3
    json.dumps(d)


def test_published_formula_by_hand(auditc):
    """The published Zhou-Dendukuri I² recomputed from its definition with Psi, mu and the group sizes."""
    studies, fit, _ = auditc
    tp, fp, fn, tn = studies.counts().T
    psi, mu = fit.fit.psi, fit.mu
    s2 = [
        (math.exp(m + t / 2) + math.exp(-m + t / 2) + 2) * np.mean(1 / n)
        for m, t, n in ((mu[0], psi[0, 0], tp + fn), (mu[1], psi[1, 1], fp + tn))
    ]
    between = math.sqrt(psi[0, 0] * psi[1, 1] - psi[0, 1] ** 2)
    expected = 100 * between / (between + math.sqrt(s2[0] * s2[1]))
    assert bivariate_i2(fit, studies).zhou_dendukuri == pytest.approx(expected, rel=1e-12)


def test_zhou_dendukuri_bounds_and_homogeneity():
    mu, inv_n = np.array([1.5, -1.2]), np.full((10, 2), 1 / 200)
    assert _zhou_dendukuri(np.zeros(2), 0.0, mu, inv_n) == 0.0
    for tau2 in (1e-6, 0.01, 0.5, 3.0, 50.0):
        value = _zhou_dendukuri(np.full(2, tau2), tau2**2 * (1 - 0.3**2), mu, inv_n)
        assert 0 <= value <= 100


def _studies(scale: float, n: int = 400, k: int = 12) -> DtaStudies:
    """``k`` studies of ``n`` diseased and ``n`` non-diseased whose true logits are spread by ``scale``."""
    z = np.linspace(-1.6, 1.6, k)
    sens = special.expit(1.5 + scale * z)
    fpr = special.expit(-1.5 + 0.7 * scale * z[::-1] ** 3 / 2.56)
    tp, fp = np.round(n * sens), np.round(n * fpr)
    return DtaStudies(tuple(f"s{i}" for i in range(k)), tp=tp, fp=fp, fn=n - tp, tn=n - fp)


def test_homogeneous_studies_give_zero():
    studies = _studies(0.0)
    i2 = bivariate_i2(reitsma(studies), studies)
    assert i2.zhou_dendukuri == pytest.approx(0.0, abs=1e-3)
    assert i2.holling_tau2 == 0.0
    assert max(i2.holling_unadjusted + i2.holling_adjusted) == 0.0


def test_more_between_study_variance_gives_larger_i2():
    values = []
    for scale in (0.1, 0.3, 0.6, 1.0):
        studies = _studies(scale)
        fit = reitsma(studies)
        i2 = bivariate_i2(fit, studies)
        values.append((fit.tau2_sens, i2.zhou_dendukuri, i2.holling_unadjusted_range[0]))
    tau2, zhou, holling = zip(*values)
    assert all(np.diff(tau2) > 0)
    assert all(np.diff(zhou) > 0) and all(0 <= v <= 100 for v in zhou)
    assert all(np.diff(holling) >= 0)


def test_rejects_other_studies(auditc):
    studies, fit, _ = auditc
    other = _studies(0.5, k=studies.k)
    with pytest.raises(ValueError, match="not those"):
        bivariate_i2(fit, other)
