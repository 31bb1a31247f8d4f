"""Pooling of continuous metrics, against metafor's published values for Normand (1999).

Expected numbers come from ``/work/shared/meta-reference/expected_outputs.json`` key
``normand1999_continuous_means``, i.e. metafor @3d2ba39b
``tests/testthat/test_analysis_example_normand1999.r`` (Normand 1999, Table IX p. 352) and
``tests/testthat/test_misc_rma_uni.r`` (measure "MN"). Each is compared at its printed precision
(4 decimals: ``abs=5e-5``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.errors import InputError, OutputError
from opencmr.meta.continuous import (
    MeanDifferenceStudies,
    MeanStudies,
    mean_effects,
    pool_inverse_variance,
    pool_means,
    read_means_csv,
)
from opencmr.meta.forest_means import plot_mean_forest

NORMAND = Path(__file__).resolve().parents[3] / "shared" / "meta-reference" / "normand1999_metadat.csv"
P4 = 5e-5  # half a unit of the 4th decimal printed by metafor


@pytest.fixture(scope="module")
def normand() -> MeanDifferenceStudies:
    if not NORMAND.is_file():
        pytest.skip(f"reference data not found at {NORMAND}")
    studies = read_means_csv(NORMAND, difference=True)
    assert isinstance(studies, MeanDifferenceStudies)
    return studies


def test_normand_md_effects(normand: MeanDifferenceStudies) -> None:
    fit = pool_means(normand, "fe")
    # metafor test_analysis_example_normand1999.r: escalc(measure="MD", sd = pooled SD), Table VIII p. 351
    assert fit.yi == (-20, -2, -55, -71, -4, 1, 11, -10, 7)
    assert fit.vi == pytest.approx(
        [40.5863, 2.0468, 15.2809, 150.2222, 20.1923, 1.2235, 95.3756, 8.0321, 20.6936], abs=P4
    )


def test_normand_fixed_effect(normand: MeanDifferenceStudies) -> None:
    fit = pool_means(normand, "fe")
    # metafor: rma(yi, vi, method="EE"): coef -3.4939, ci.lb -5.0265, ci.ub -1.9613 (Normand Table IX)
    assert fit.mu == pytest.approx(-3.4939, abs=P4)
    assert fit.ci == pytest.approx((-5.0265, -1.9613), abs=P4)
    assert fit.tau2 == 0.0
    assert fit.pi == fit.ci  # no heterogeneity term in the fixed-effect prediction interval


def test_normand_dersimonian_laird(normand: MeanDifferenceStudies) -> None:
    fit = pool_means(normand, "dl")
    # metafor: rma(yi, vi, method="DL"): coef -14.0972, CI -24.4454 to -3.7490, tau2 218.7216 (Table IX)
    assert fit.mu == pytest.approx(-14.0972, abs=P4)
    assert fit.ci == pytest.approx((-24.4454, -3.7490), abs=P4)
    assert fit.tau2 == pytest.approx(218.7216, abs=P4)
    # for DL, metafor's tau2-based I^2 equals Higgins' (Q - df) / Q
    assert fit.i2 == pytest.approx(100 * (fit.q - 8) / fit.q, rel=1e-12)


def test_normand_reml(normand: MeanDifferenceStudies) -> None:
    fit = pool_means(normand, "reml")
    # metafor: rma(yi, vi) (REML): coef -15.1217, CI -32.6716 to 2.4282, tau2 685.1965 (Table IX)
    assert fit.mu == pytest.approx(-15.1217, abs=P4)
    assert fit.ci == pytest.approx((-32.6716, 2.4282), abs=P4)
    assert fit.tau2 == pytest.approx(685.1965, abs=P4)
    z = 1.959963984540054
    assert fit.pi == pytest.approx((fit.mu - z * math.sqrt(fit.se**2 + fit.tau2), fit.mu + z * math.sqrt(fit.se**2 + fit.tau2)))


def test_normand_single_arm_mean_reml(normand: MeanDifferenceStudies) -> None:
    fit = pool_means(normand.arm1, "reml")
    # metafor test_misc_rma_uni.r: rma(measure="MN", mi=m1i, sdi=sd1i, ni=n1i): tau2 408.9277 (regression value)
    assert fit.tau2 == pytest.approx(408.9277, abs=P4)
    assert fit.vi[0] == pytest.approx(47**2 / 155)


def test_tau2_floored_at_zero_on_homogeneous_data() -> None:
    y = [0.90, 0.91, 0.905, 0.90]  # far less spread than the sampling variances allow
    v = [0.01, 0.02, 0.015, 0.03]
    for method in ("dl", "reml"):
        fit = pool_inverse_variance(y, v, method)
        assert fit.q < 3  # Q < df, so the unfloored DL estimate would be negative
        assert fit.tau2 == 0.0 and fit.i2 == 0.0 and fit.h2 == 1.0
        assert fit.mu == pytest.approx(pool_inverse_variance(y, v, "fe").mu)


def test_t_prediction_interval_is_wider() -> None:
    y, v = [0.1, 0.5, 0.3, 0.9], [0.01, 0.02, 0.01, 0.03]
    normal, t = pool_inverse_variance(y, v, "dl"), pool_inverse_variance(y, v, "dl", prediction="t")
    assert t.pi[0] < normal.pi[0] < normal.pi[1] < t.pi[1]
    with pytest.raises(ValueError, match="at least 3"):
        pool_inverse_variance(y[:2], v[:2], prediction="t")


def test_logit_pooling_round_trip() -> None:
    # synthetic Dice values (invented for the test, not from any paper)
    studies = MeanStudies(("a", "b", "c", "d"), (0.91, 0.91, 0.91, 0.91), (0.03, 0.05, 0.04, 0.02), (40, 25, 60, 100))
    fit = pool_means(studies, "reml", logit=True)
    assert fit.mu == pytest.approx(math.log(0.91 / 0.09))
    assert fit.estimate == pytest.approx(0.91)
    low, high = fit.estimate_ci
    assert 0 < low < 0.91 < high < 1
    assert fit.study_ci()[0][1] < 1  # back-transformed CIs stay inside (0, 1)
    _y, v = mean_effects([0.8], [0.1], [20], logit=True)  # delta method: sd^2 / (n m^2 (1-m)^2)
    assert v[0] == pytest.approx(0.01 / (20 * 0.64 * 0.04))
    assert fit.to_dict()["scale"] == "logit"
    json.dumps(fit.to_dict())


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "logit", "message"),
    [
        ("study,mean,n\na,0.9,10\nb,0.8,12\n", False, "missing column"),
        ("Study,MEAN,Sd,N\na,0.9,x,10\nb,0.8,0.1,12\n", False, "is not a number"),
        ("study,mean,sd,n\na,0.9,0.1,1\nb,0.8,0.1,12\n", False, "n = 1.0 must be"),
        ("study,mean,sd,n\na,0.9,0,10\nb,0.8,0.1,12\n", False, "sd = 0.0 must be > 0"),
        ("study,mean,sd,n\na,91,3,10\nb,0.8,0.1,12\n", True, "not strictly between 0 and 1"),
        ("study,mean,sd,n\na,0.9,0.1,10\n", False, "at least 2 studies"),
        ("study,mean,sd,n\na,0.9,0.1,10\na,0.8,0.1,12\n", False, "more than once"),
    ],
)
def test_read_errors(tmp_path: Path, text: str, logit: bool, message: str) -> None:
    path = _write(tmp_path / "studies.csv", text)
    with pytest.raises(InputError, match=message) as caught:
        read_means_csv(path, logit=logit)
    assert caught.value.path == str(path)


def test_read_is_case_insensitive(tmp_path: Path) -> None:
    studies = read_means_csv(_write(tmp_path / "s.csv", "N,SD,Mean,Study\n10,0.1,0.9,x\n12,0.2,0.8,y\n"))
    assert isinstance(studies, MeanStudies)
    assert studies.labels == ("x", "y") and studies.mean == (0.9, 0.8) and studies.n == (10, 12)


def test_forest_refuses_overwrite_and_unknown_suffix(tmp_path: Path) -> None:
    fit = pool_inverse_variance([0.1, 0.2, 0.4], [0.01, 0.02, 0.01], "dl")
    out = plot_mean_forest(fit, tmp_path / "f.svg")
    assert out.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    with pytest.raises(OutputError):
        plot_mean_forest(fit, tmp_path / "f.svg")
    with pytest.raises(ValueError, match=".png or .svg"):
        plot_mean_forest(fit, tmp_path / "f.pdf")


def test_cli_meta_mean(tmp_path: Path) -> None:
    # synthetic Dice values (invented for the test)
    csv_path = _write(
        tmp_path / "dice.csv",
        "study,mean,sd,n\nA,0.90,0.04,50\nB,0.85,0.06,30\nC,0.93,0.03,80\nD,0.88,0.05,40\n",
    )
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["meta", "mean", str(csv_path), "--method", "dl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = pool_means(read_means_csv(csv_path), "dl")
    assert f"{expected.estimate:.4g}" in result.output
    assert f"{expected.i2:.1f}%" in result.output
    assert "prediction interval" in result.output
    assert {p.name for p in out.iterdir()} == {"summary.json", "studies.csv", "forest.png", "forest.svg"}
    assert (out / "forest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == 4 and summary["method"] == "dl"
    assert summary["estimate"] == pytest.approx(expected.estimate)
    assert (out / "studies.csv").read_text().splitlines()[0].startswith("label,estimate,ci_low,ci_high")

    again = runner.invoke(app, ["meta", "mean", str(csv_path), "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
    logit = runner.invoke(app, ["meta", "mean", str(csv_path), "--logit", "--out", str(out), "--overwrite"])
    assert logit.exit_code == 0, logit.output
    assert json.loads((out / "summary.json").read_text())["scale"] == "logit"

    bad = runner.invoke(app, ["meta", "mean", str(_write(tmp_path / "bad.csv", "study,mean\nA,1\n"))])
    assert bad.exit_code == 1 and "missing column" in bad.output
    assert np.isfinite(summary["tau2"])
