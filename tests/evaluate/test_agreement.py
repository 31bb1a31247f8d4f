"""Agreement of clinical indices: Bland-Altman, correlations, ICC, CSV tables, plots and ``opencmr agreement``.

Expected numbers are worked by hand in the comments, or taken from the
published example they are written beside (paper and table named), or from
the R output of the reference implementation (package and source named).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.errors import InputError, OutputError
from opencmr.evaluate.agreement import (
    AGREEMENT_COLUMNS,
    IccKind,
    agreement_table,
    bland_altman,
    drop_missing_pairs,
    icc,
    index_file_stem,
    mean_absolute_error,
    pair_tables,
    pearson,
    plot_bland_altman,
    plot_scatter,
    read_index_table,
    spearman,
    two_way_mean_squares,
    unit_of,
    write_agreement_csv,
)

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Five cases whose differences (automatic - manual) are 2, 2, 4, 6, 6:
# mean 4; deviations -2, -2, 0, 2, 2; sum of squares 16; SD = sqrt(16 / 4) = 2.
AUTO_EDV = [102.0, 122.0, 144.0, 166.0, 186.0]
MANUAL_EDV = [100.0, 120.0, 140.0, 160.0, 180.0]

# Bland & Altman 1986 (Lancet 327:307, doi:10.1016/S0140-6736(86)90837-8), Table 1:
# PEFR (l/min), first reading with the Wright and with the mini Wright peak flow meter, 17 subjects.
WRIGHT = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
MINI_WRIGHT = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]

# Shrout & Fleiss 1979 (Psychol Bull 86:420, doi:10.1037/0033-2909.86.2.420), Table 2:
# 6 targets (rows) rated by 4 judges (columns).
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and len(data) > 1000


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- Bland-Altman


def test_bland_altman_by_hand() -> None:
    ba = bland_altman(AUTO_EDV, MANUAL_EDV)
    assert ba.n == 5 and ba.bias == 4.0 and ba.sd == pytest.approx(2.0)
    # limits 4 -/+ 1.96 x 2 = 0.08 and 7.92
    assert (ba.lower, ba.upper) == (pytest.approx(0.08), pytest.approx(7.92))
    # SE of the bias 2 / sqrt(5) = 0.8944; t(0.975, 4 df) = 2.776 (t table); 2.776 x 0.8944 = 2.483
    assert ba.se_bias == pytest.approx(0.894427, abs=1e-6)
    assert ba.bias_ci == (pytest.approx(4 - 2.483, abs=1e-3), pytest.approx(4 + 2.483, abs=1e-3))
    # SE of a limit 2 x sqrt(3 / 5) = 1.5492; 2.776 x 1.5492 = 4.301
    assert ba.se_limit == pytest.approx(1.549193, abs=1e-6)
    assert ba.lower_ci == (pytest.approx(0.08 - 4.301, abs=2e-3), pytest.approx(0.08 + 4.301, abs=2e-3))
    assert ba.upper_ci == (pytest.approx(7.92 - 4.301, abs=2e-3), pytest.approx(7.92 + 4.301, abs=2e-3))
    # swapping the methods mirrors everything
    swapped = bland_altman(MANUAL_EDV, AUTO_EDV)
    assert swapped.bias == -4.0 and swapped.lower == pytest.approx(-ba.upper)


def test_bland_altman_reproduces_the_1986_pefr_example() -> None:
    # Bland & Altman 1986, PEFR example (limits at bias -/+ 2 SD, as in the paper): mean difference
    # -2.1 l/min, SD 38.8, limits -79.7 and 75.5; SE of the bias 9.4, SE of the limits sqrt(3 s^2 / n) = 16.3;
    # t(0.975, 16) = 2.12; CIs of the limits -79.7 -/+ 2.12 x 16.3 = -114.3 to -45.1 and 75.5 -/+ 34.6 = 40.9
    # to 110.1. The paper rounds the intermediate results, hence tolerances of a few tenths.
    ba = bland_altman(WRIGHT, MINI_WRIGHT, multiplier=2.0)
    assert ba.n == 17
    assert ba.bias == pytest.approx(-2.1, abs=0.05)
    assert ba.sd == pytest.approx(38.8, abs=0.05)
    assert ba.lower == pytest.approx(-79.7, abs=0.1) and ba.upper == pytest.approx(75.5, abs=0.1)
    assert ba.se_bias == pytest.approx(9.4, abs=0.05) and ba.se_limit == pytest.approx(16.3, abs=0.05)
    assert ba.lower_ci == (pytest.approx(-114.3, abs=0.2), pytest.approx(-45.1, abs=0.2))
    assert ba.upper_ci == (pytest.approx(40.9, abs=0.2), pytest.approx(110.1, abs=0.2))
    # the interval of the bias is the paired t-test's (scipy as the reference implementation)
    paired_t = stats.ttest_rel(WRIGHT, MINI_WRIGHT).confidence_interval(0.95)
    assert ba.bias_ci == (pytest.approx(paired_t.low, rel=1e-12), pytest.approx(paired_t.high, rel=1e-12))
    # 95 % limits (1.96 SD): mean -36 / 17 = -2.1176, SD 38.7651; 1.96 x 38.7651 = 75.9796:
    # -2.1176 -/+ 75.9796 = -78.0973 and 73.8620
    default = bland_altman(WRIGHT, MINI_WRIGHT)
    assert (default.lower, default.upper) == (pytest.approx(-78.0973, abs=1e-4), pytest.approx(73.8620, abs=1e-4))


def test_bland_altman_of_identical_methods_has_zero_width() -> None:
    ba = bland_altman([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert ba.bias == ba.sd == ba.lower == ba.upper == 0.0
    assert ba.bias_ci == ba.lower_ci == ba.upper_ci == (0.0, 0.0)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1.0, 2.0], [1.0, 2.0], "at least 3"),
        ([1.0, 2.0, 3.0], [1.0, 2.0], "differ in length"),
        ([1.0, math.inf, 3.0], [1.0, 2.0, 3.0], "not finite"),
        ([1.0, math.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], "drop_missing_pairs"),
        ([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]], "1-D"),
    ],
)
def test_paired_statistics_refuse_bad_input(a: list, b: list, message: str) -> None:
    for function in (bland_altman, pearson, spearman, mean_absolute_error, icc):
        with pytest.raises(ValueError, match=message):
            function(a, b)


def test_confidence_level_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        bland_altman(AUTO_EDV, MANUAL_EDV, level=95)


def test_mean_absolute_error_by_hand() -> None:
    # |2| + |2| + |4| + |6| + |6| = 20, / 5 = 4
    assert mean_absolute_error(AUTO_EDV, MANUAL_EDV) == 4.0
    # |-1| + |0| + |3| = 4, / 3
    assert mean_absolute_error([10, 12, 15], [11, 12, 12]) == pytest.approx(4 / 3)


def test_drop_missing_pairs() -> None:
    a, b, dropped = drop_missing_pairs([1.0, math.nan, 3.0, 4.0], [1.0, 2.0, math.nan, 5.0])
    assert a.tolist() == [1.0, 4.0] and b.tolist() == [1.0, 5.0] and dropped == 2
    with pytest.raises(ValueError, match="differ in length"):
        drop_missing_pairs([1.0], [1.0, 2.0])


# ---------------------------------------------------------------------------- correlation


def test_pearson_by_hand() -> None:
    # x - mean = -1, 0, 1; y - mean = -1, 1, 0: r = 1 / sqrt(2 x 2) = 0.5.
    # t = 0.5 sqrt(1 / 0.75) = 1 / sqrt(3) with 1 df (Cauchy): p = 1 - (2 / pi) atan(1 / sqrt(3)) = 2 / 3.
    result = pearson([1, 2, 3], [1, 3, 2])
    assert result.r == pytest.approx(0.5) and result.p_value == pytest.approx(2 / 3)
    assert result.ci == (-1.0, 1.0)  # Fisher z needs n > 3
    assert result.undefined is None


def test_pearson_matches_r_cor_test() -> None:
    # R: cor.test(c(494, 395, 516, 434, 476, 413, 442, 433), c(512, 430, 520, 428, 500, 364, 380, 445))
    # (8 subjects of Bland & Altman 1986 Table 1) prints cor 0.8154886, 95 percent CI 0.2605298 0.9653948
    # (output as recorded in a public STK4900 course exercise script).
    x = [494, 395, 516, 434, 476, 413, 442, 433]
    y = [512, 430, 520, 428, 500, 364, 380, 445]
    result = pearson(x, y)
    assert result.r == pytest.approx(0.8154886, abs=1e-7)
    assert result.ci == (pytest.approx(0.2605298, abs=1e-7), pytest.approx(0.9653948, abs=1e-7))
    reference = stats.pearsonr(x, y)  # scipy as a second reference (exact p-value)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_spearman_by_hand_with_and_without_ties() -> None:
    # no ties: d = -1, 1, -1, 1, 0; rho = 1 - 6 x 4 / (5 x 24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).r == pytest.approx(0.8)
    # ties get average ranks: x ranks 1, 2.5, 2.5, 4; y ranks 1, 2, 3, 4; centred -1.5, 0, 0, 1.5 and
    # -1.5, -0.5, 0.5, 1.5: rho = 4.5 / sqrt(4.5 x 5) = 3 / sqrt(10)
    tied = spearman([1, 2, 2, 3], [1, 2, 3, 4])
    assert tied.r == pytest.approx(3 / math.sqrt(10))
    reference = stats.spearmanr([1, 2, 2, 3], [1, 2, 3, 4])
    assert tied.p_value == pytest.approx(reference.pvalue, rel=1e-9) and tied.ci is None


def test_correlation_of_a_constant_series_is_nan_with_a_reason() -> None:
    for function in (pearson, spearman):
        result = function([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
        assert math.isnan(result.r) and math.isnan(result.p_value)
        assert result.undefined is not None and "manual values are all equal" in result.undefined
    assert pearson([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]).ci == (1.0, 1.0)


# ---------------------------------------------------------------------------- ICC


def test_icc_shrout_fleiss_worked_example() -> None:
    # Shrout & Fleiss 1979, ANOVA of the Table 2 data: BMS 11.24, JMS 32.49, EMS 1.02;
    # ICC(2,1) = .29, ICC(3,1) = .71, ICC(2,4) = .62, ICC(3,4) = .91.
    ms = two_way_mean_squares(SHROUT_FLEISS)
    assert (ms.n, ms.k) == (6, 4)
    assert ms.rows == pytest.approx(11.24, abs=0.005)
    assert ms.columns == pytest.approx(32.49, abs=0.005)
    assert ms.error == pytest.approx(1.02, abs=0.005)
    assert icc(SHROUT_FLEISS, kind="ICC(A,1)").value == pytest.approx(0.29, abs=0.005)
    assert icc(SHROUT_FLEISS, kind="ICC(C,1)").value == pytest.approx(0.71, abs=0.01)  # 0.7148
    assert icc(SHROUT_FLEISS, kind="ICC(A,k)").value == pytest.approx(0.62, abs=0.005)
    assert icc(SHROUT_FLEISS, kind="ICC(C,k)").value == pytest.approx(0.91, abs=0.005)


@pytest.mark.parametrize(
    ("kind", "value", "lower", "upper"),
    [
        # R psych::ICC(sf) on the same data (output printed in D. Wollschlaeger's RExRepos, interRaterICC.md):
        # type, ICC, lower bound, upper bound; F = 11.0 with df 5 and 15, p = 0.00013 for ICC2, ICC3, ICC2k, ICC3k.
        ("ICC(2,1)", 0.29, 0.019, 0.76),  # Single_random_raters ICC2
        ("ICC(3,1)", 0.71, 0.342, 0.95),  # Single_fixed_raters ICC3
        ("ICC(2,k)", 0.62, 0.071, 0.93),  # Average_random_raters ICC2k
        ("ICC(3,k)", 0.91, 0.676, 0.99),  # Average_fixed_raters ICC3k
    ],
)
def test_icc_confidence_intervals_match_r_psych(kind: str, value: float, lower: float, upper: float) -> None:
    result = icc(SHROUT_FLEISS, kind=kind)
    assert result.value == pytest.approx(value, abs=0.0051)
    assert result.ci[0] == pytest.approx(lower, abs=0.0005)
    assert result.ci[1] == pytest.approx(upper, abs=0.005)
    # DescTools::ICC prints F-val 11.03, df1 5, df2 15, p-val 0.000135 for the same rows
    assert result.f_value == pytest.approx(11.03, abs=0.005)
    assert (result.df1, result.df2) == (5.0, 15.0)
    assert result.p_value == pytest.approx(0.000135, abs=5e-7)


def test_two_raters_by_hand() -> None:
    # manual = automatic + 1 on 3 cases: table [[1, 2], [2, 3], [3, 4]].
    # Row means 1.5, 2.5, 3.5 (grand 2.5): MSR = 2 x (1 + 0 + 1) / 2 = 2; column means 2 and 3:
    # MSC = 3 x (0.25 + 0.25) / 1 = 1.5; no residual: MSE = 0.
    # ICC(C,1) = (2 - 0) / (2 + 0) = 1; ICC(A,1) = 2 / (2 + 0 + 2 x 1.5 / 3) = 2 / 3.
    ms = two_way_mean_squares([[1, 2], [2, 3], [3, 4]])
    assert (ms.rows, ms.columns, ms.error) == (pytest.approx(2.0), pytest.approx(1.5), 0.0)
    consistency = icc([1, 2, 3], [2, 3, 4], "ICC(C,1)")
    assert consistency.value == 1.0 and consistency.ci == (1.0, 1.0)
    absolute = icc([1, 2, 3], [2, 3, 4])
    assert absolute.kind is IccKind.A1 and absolute.value == pytest.approx(2 / 3)
    assert absolute.ci[0] < absolute.value < absolute.ci[1] < 1.0
    assert math.isinf(absolute.f_value) and absolute.p_value == 0.0
    # identical raters agree perfectly in both senses
    assert icc([1, 2, 3], [1, 2, 3]).value == 1.0 and icc([1, 2, 3], [1, 2, 3]).ci == (1.0, 1.0)


def test_two_arrays_and_an_n_by_2_table_give_the_same_icc() -> None:
    rng = np.random.default_rng(0)
    manual = rng.normal(150.0, 30.0, 40)
    automatic = manual + rng.normal(3.0, 8.0, 40)
    for kind in IccKind:
        assert icc(automatic, manual, kind) == icc(np.column_stack([automatic, manual]), kind=kind)


def test_average_measure_icc_is_the_spearman_brown_step_up_of_the_single_one() -> None:
    # McGraw & Wong 1996: ICC(.,k) = k ICC(.,1) / (1 + (k - 1) ICC(.,1)), and so are the limits.
    def step_up(x: float) -> float:
        return 4 * x / (1 + 3 * x)

    for single, average in (("ICC(A,1)", "ICC(A,k)"), ("ICC(C,1)", "ICC(C,k)")):
        one, mean_of_k = icc(SHROUT_FLEISS, kind=single), icc(SHROUT_FLEISS, kind=average)
        assert mean_of_k.value == pytest.approx(step_up(one.value))
        assert mean_of_k.ci == (pytest.approx(step_up(one.ci[0])), pytest.approx(step_up(one.ci[1])))


def test_icc_kind_names() -> None:
    assert IccKind.parse("ICC(2,1)") is IccKind.A1 and IccKind.parse("icc(c, 1)") is IccKind.C1
    assert IccKind.parse("ICC(3,k)") is IccKind.CK and IccKind.parse(IccKind.AK) is IccKind.AK
    with pytest.raises(ValueError, match="unknown ICC kind"):
        icc(AUTO_EDV, MANUAL_EDV, "ICC(1,1)")


def test_undefined_icc_is_nan_with_a_reason() -> None:
    equal = icc([5.0, 5.0, 5.0], [5.0, 5.0, 5.0])
    assert math.isnan(equal.value) and equal.undefined == "all ratings are equal: the ICC is undefined"
    offset = icc([5.0, 5.0, 5.0], [3.0, 3.0, 3.0])  # raters differ, cases do not
    assert math.isnan(offset.value) and "cases do not differ" in (offset.undefined or "")
    with pytest.raises(ValueError, match="n x k table"):
        icc([1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------- table of indices


def test_agreement_table_skips_missing_pairs_and_counts_them() -> None:
    automatic = {"lv_edv_ml": AUTO_EDV + [math.nan], "lv_ef_percent": [60, 55, 62, 50, 58, 40], "only_auto": [1] * 6}
    manual = {"lv_ef_percent": [58, 57, 60, 52, 55, math.nan], "lv_edv_ml": MANUAL_EDV + [200.0]}
    rows = agreement_table(automatic, manual)
    assert [row.index for row in rows] == ["lv_edv_ml", "lv_ef_percent"]  # automatic's order, shared only
    edv = rows[0]
    assert (edv.n, edv.n_skipped, edv.mae, edv.mean_automatic, edv.mean_manual) == (5, 1, 4.0, 144.0, 140.0)
    assert edv.bland_altman == bland_altman(AUTO_EDV, MANUAL_EDV)
    assert edv.icc_agreement == icc(AUTO_EDV, MANUAL_EDV, "ICC(A,1)")
    assert edv.icc_consistency == icc(AUTO_EDV, MANUAL_EDV, "ICC(C,1)")
    record = rows[1].to_dict()
    assert tuple(record) == AGREEMENT_COLUMNS
    # EF differences 2, -2, 2, -2, 3: bias 3 / 5 = 0.6
    assert record["unit"] == "%" and record["n"] == 5 and record["bias"] == pytest.approx(0.6)
    assert [row.index for row in agreement_table(automatic, manual, indices=["lv_ef_percent"])] == ["lv_ef_percent"]


def test_agreement_table_errors_name_the_index() -> None:
    with pytest.raises(ValueError, match="lv_mass_g: 2 complete pair"):
        agreement_table({"lv_mass_g": [1.0, 2.0, math.nan]}, {"lv_mass_g": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="lv_mass_g: .*not finite"):
        agreement_table({"lv_mass_g": [1.0, 2.0, math.inf]}, {"lv_mass_g": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="no index in both"):
        agreement_table({"a": [1.0, 2.0, 3.0]}, {"b": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="rv_edv_ml: not among the manual indices"):
        agreement_table({"rv_edv_ml": [1.0, 2.0, 3.0]}, {"lv_edv_ml": [1.0, 2.0, 3.0]}, indices=["rv_edv_ml"])


def test_constant_index_gives_nan_correlations_not_an_error() -> None:
    rows = agreement_table({"lv_ef_percent": [50.0, 55.0, 60.0]}, {"lv_ef_percent": [55.0, 55.0, 55.0]})
    assert math.isnan(rows[0].pearson.r)
    assert rows[0].notes == ("manual values are all equal: the correlation is undefined",)
    assert not math.isnan(rows[0].icc_agreement.value)  # raters differ: the ICC is defined (here 0)


def test_write_agreement_csv_round_trip(tmp_path: Path) -> None:
    rows = agreement_table({"lv_edv_ml": AUTO_EDV}, {"lv_edv_ml": MANUAL_EDV})
    out = write_agreement_csv(rows, tmp_path / "agreement.csv")
    (record,) = list(csv.DictReader(out.open(encoding="utf-8")))
    assert record["index"] == "lv_edv_ml" and record["unit"] == "mL" and record["n"] == "5"
    assert float(record["loa_lower"]) == pytest.approx(0.08) and float(record["mae"]) == 4.0
    with pytest.raises(OutputError, match="already exists"):
        write_agreement_csv(rows, out)


def test_units_and_file_stems_of_index_names() -> None:
    assert [unit_of(n) for n in ("lv_edv_ml", "lv_mass_g_m2", "lv_co_l_min", "lv_ef_percent", "score")] == [
        "mL", "g/m²", "L/min", "%", "",
    ]  # fmt: skip
    assert index_file_stem("lv_edv_ml") == "lv_edv_ml" and index_file_stem("../LV EF (%)") == "_LV_EF_"


# ---------------------------------------------------------------------------- CSV tables


def test_read_index_table_finds_the_id_column_and_missing_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "auto.csv", "lv_edv_ml,patient,lv_ef_percent\n150.5,p1,60\n,p2,NA\n130,p3,55\n")
    table = read_index_table(path)
    assert list(table) == ["p1", "p2", "p3"]
    assert table["p1"] == {"lv_edv_ml": 150.5, "lv_ef_percent": 60.0}
    assert math.isnan(table["p2"]["lv_edv_ml"]) and math.isnan(table["p2"]["lv_ef_percent"])
    assert read_index_table(path, indices=["lv_ef_percent"])["p3"] == {"lv_ef_percent": 55.0}


def test_read_index_table_first_column_semicolons_and_bom(tmp_path: Path) -> None:
    # a pandas export (blank first header), and a semicolon-separated file with a byte-order mark
    pandas_like = read_index_table(_write(tmp_path / "a.csv", ",lv_mass_g\n001,120\n002,99.5\n"))
    assert pandas_like == {"001": {"lv_mass_g": 120.0}, "002": {"lv_mass_g": 99.5}}
    (tmp_path / "b.csv").write_bytes("\ufeffcase;lv_mass_g\n001;120\n".encode())
    assert read_index_table(tmp_path / "b.csv") == {"001": {"lv_mass_g": 120.0}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("case\np1\n", "only the case id column"),
        ("lv_ef_percent\n60\n", "single column"),
        ("lv_edv_ml,lv_ef_percent\n150,60\n", "no case id column: the first column 'lv_edv_ml' looks like an index"),
        ("1,150,60\n2,140,55\n", "no header row"),
        ("case,lv_ef_percent\np1,60\np2,high\n", r"line 3 \(case p2\), column lv_ef_percent: 'high' is not a number"),
        ('case,lv_ef_percent\np1,"62,5"\n', "decimal comma"),
        ("case,lv_ef_percent\np1,inf\n", "not a finite number"),
        ("case,lv_ef_percent\np1,60\np1,61\n", r"case id 'p1' appears twice \(lines 2 and 3\)"),
        ("case,lv_ef_percent\n,60\n", "line 2: empty case id"),
        ("case,lv_ef_percent\np1,60,7\n", "line 2 has 3 fields, the header has 2"),
        ("case,lv_ef_percent,lv_ef_percent\np1,60,61\n", "appear more than once"),
        ("case,lv_ef_percent\n", "no rows"),
    ],
)
def test_read_index_table_errors(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "table.csv", text)
    with pytest.raises(InputError, match=message) as raised:
        read_index_table(path)
    assert raised.value.path == str(path)


def test_read_index_table_missing_file_folder_and_index(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_index_table(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="is a folder"):
        read_index_table(tmp_path)
    path = _write(tmp_path / "t.csv", "case,lv_ef_percent\np1,60\n")
    with pytest.raises(InputError, match="has no index column 'rv_ef_percent'"):
        read_index_table(path, indices=["rv_ef_percent"])


def test_pair_tables_matches_by_id_and_reports_the_rest() -> None:
    automatic = {"p1": {"lv_ef_percent": 60.0, "lv_mass_g": 100.0}, "p2": {"lv_ef_percent": 55.0, "lv_mass_g": 90.0},
                 "p3": {"lv_ef_percent": 50.0, "lv_mass_g": 80.0}}  # fmt: skip
    manual = {"p3": {"lv_ef_percent": 52.0, "rv_ef_percent": 45.0}, "p1": {"lv_ef_percent": 61.0, "rv_ef_percent": 50.0},
              "p9": {"lv_ef_percent": 40.0, "rv_ef_percent": 40.0}}  # fmt: skip
    paired = pair_tables(automatic, manual)
    assert paired.case_ids == ("p1", "p3")  # the automatic table's order
    assert paired.automatic["lv_ef_percent"].tolist() == [60.0, 50.0]
    assert paired.manual["lv_ef_percent"].tolist() == [61.0, 52.0]
    assert (paired.only_automatic, paired.only_manual) == (("p2",), ("p9",))
    assert paired.common_indices == ("lv_ef_percent",)
    assert (paired.indices_only_automatic, paired.indices_only_manual) == (("lv_mass_g",), ("rv_ef_percent",))
    with pytest.raises(InputError, match="no case id in common with auto.csv") as raised:
        pair_tables({"001": {}}, {"patient001": {}}, sources=("auto.csv", "manual.csv"))
    assert raised.value.path == "manual.csv" and "001" in raised.value.problem


# ---------------------------------------------------------------------------- plots


def test_plots_are_png_files_and_are_not_overwritten(tmp_path: Path) -> None:
    ba = plot_bland_altman(AUTO_EDV, MANUAL_EDV, tmp_path / "ba.png", "lv_edv_ml", "mL")
    scatter = plot_scatter(AUTO_EDV, MANUAL_EDV, tmp_path / "scatter.png", "lv_edv_ml", "mL")
    assert _is_png(ba) and _is_png(scatter)
    with pytest.raises(OutputError, match="already exists"):
        plot_scatter(AUTO_EDV, MANUAL_EDV, scatter, "lv_edv_ml", "mL")
    # a constant manual series has no regression line but still plots
    assert _is_png(plot_scatter([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], tmp_path / "flat.png", "x", overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ba.png", "flat.png", "scatter.png"]  # no temporaries


# ---------------------------------------------------------------------------- CLI


def _cli_tables(tmp_path: Path) -> tuple[Path, Path]:
    automatic = _write(
        tmp_path / "auto.csv",
        "case,lv_edv_ml,lv_ef_percent,lv_mass_g\n"
        "p1,102,60,100\np2,122,55,110\np3,144,62,\np4,166,50,130\np5,186,58,140\np6,150,40,100\n",
    )
    manual = _write(
        tmp_path / "manual.csv",
        "patient,lv_edv_ml,lv_ef_percent,rv_edv_ml\np1,100,58,1\np2,120,57,2\np3,140,60,3\np4,160,52,4\np5,180,55,5\n"
        "p7,1,1,1\n",
    )
    return automatic, manual


def test_cli_agreement_prints_the_statistics_and_writes_csv_and_plots(tmp_path: Path) -> None:
    automatic, manual = _cli_tables(tmp_path)
    out = tmp_path / "agreement"
    result = runner.invoke(app, ["agreement", str(automatic), str(manual), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    # lv_edv_ml: differences 2, 2, 4, 6, 6 (worked above): bias 4 [1.517, 6.483], limits 0.08 to 7.92, MAE 4
    assert "4 mL (95% CI 1.517 to 6.483)" in text and "0.08 to 7.92 mL" in text and "SD 2)" in text
    # lv_ef_percent (p3's mass is missing, not its EF): differences 2, -2, 2, -2, 3: bias 0.6; deviations
    # 1.4, -2.6, 1.4, -2.6, 2.4: SD = sqrt(23.2 / 4) = 2.408; limits 0.6 -/+ 1.96 x 2.408 = -4.12 and 5.32
    assert "0.6 % (95% CI" in text and "-4.12 to 5.32 %" in text and "SD 2.408" in text
    assert "ICC(A,1)" in text and "mean absolute error" in text
    assert "1 case(s) only in" in text and "p6" in text and "p7" in text
    assert "only in" in text and "lv_mass_g" in text and "rv_edv_ml" in text  # indices in one file only
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "agreement.csv", "bland_altman_lv_edv_ml.png", "bland_altman_lv_ef_percent.png",
        "scatter_lv_edv_ml.png", "scatter_lv_ef_percent.png",
    ]  # fmt: skip
    assert all(_is_png(out / name) for name in names if name.endswith(".png"))
    rows = {r["index"]: r for r in csv.DictReader((out / "agreement.csv").open(encoding="utf-8"))}
    assert float(rows["lv_edv_ml"]["bias"]) == 4.0 and rows["lv_ef_percent"]["n"] == "5"
    # nothing is replaced without --overwrite, and nothing is written when one output exists
    (out / "scatter_lv_ef_percent.png").unlink()
    again = runner.invoke(app, ["agreement", str(automatic), str(manual), "--out", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output
    assert not (out / "scatter_lv_ef_percent.png").exists()
    replaced = runner.invoke(app, ["agreement", str(automatic), str(manual), "--out", str(out), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert _is_png(out / "scatter_lv_ef_percent.png")


def test_cli_agreement_selected_index_prints_only(tmp_path: Path) -> None:
    automatic, manual = _cli_tables(tmp_path)
    result = runner.invoke(app, ["agreement", str(automatic), str(manual), "--index", "lv_ef_percent"])
    assert result.exit_code == 0, result.output
    assert "lv_ef_percent" in result.output and "lv_edv_ml" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto.csv", "manual.csv"]  # print only


def test_cli_agreement_errors_are_one_line(tmp_path: Path) -> None:
    automatic, manual = _cli_tables(tmp_path)
    bad = _write(tmp_path / "bad.csv", "case,lv_edv_ml\np1,100\np2,n.a.\n")
    result = runner.invoke(app, ["agreement", str(automatic), str(bad)])
    assert result.exit_code == 1
    assert "error:" in result.output and "line 3 (case p2), column lv_edv_ml" in result.output
    assert "Traceback" not in result.output
    short = _write(tmp_path / "short.csv", "case,lv_edv_ml\np1,100\np2,120\n")
    result = runner.invoke(app, ["agreement", str(automatic), str(short)])
    assert result.exit_code == 1 and "lv_edv_ml: 2 complete pair(s)" in result.output
    result = runner.invoke(app, ["agreement", str(automatic), str(manual), "--index", "rv_edv_ml"])
    assert result.exit_code == 1 and "has no index column 'rv_edv_ml'" in result.output
