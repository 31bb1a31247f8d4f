from __future__ import annotations

import dataclasses
import json
import math

import pytest

from opencmr.measure.reference import (
    INDICES,
    REFERENCE_RANGES,
    Flag,
    FlagStatus,
    ReferenceRange,
    Sex,
    flag_values,
    parse_sex,
)

# The index names of the measurement module (issue 4), units in the names.
MEASUREMENT_KEYS = {
    "lv_edv_ml",
    "lv_esv_ml",
    "lv_sv_ml",
    "lv_ef_percent",
    "lv_mass_g",
    "lv_edv_ml_m2",
    "lv_esv_ml_m2",
    "lv_sv_ml_m2",
    "lv_mass_g_m2",
    "rv_edv_ml",
    "rv_esv_ml",
    "rv_sv_ml",
    "rv_ef_percent",
    "rv_edv_ml_m2",
    "rv_esv_ml_m2",
    "rv_sv_ml_m2",
    "max_wall_thickness_mm",
}

ALL_RANGES = [
    (index, sex, reference) for index, by_sex in REFERENCE_RANGES.items() for sex, reference in by_sex.items()
]


def one(values: dict[str, float | None], sex: str | None) -> Flag:
    (flag,) = flag_values(values, sex)
    return flag


# --- the table --------------------------------------------------------------


def test_indices_are_the_measurement_keys():
    assert set(INDICES) == MEASUREMENT_KEYS
    assert set(REFERENCE_RANGES) <= MEASUREMENT_KEYS


def test_every_index_has_both_sexes():
    for index, by_sex in REFERENCE_RANGES.items():
        assert set(by_sex) == {"M", "F"}, index


@pytest.mark.parametrize(("index", "sex", "reference"), ALL_RANGES, ids=[f"{i}-{s}" for i, s, _ in ALL_RANGES])
def test_every_range_is_ordered_and_sourced(index, sex, reference):
    assert reference.index == index and reference.sex == sex
    assert reference.lower is not None or reference.upper is not None
    if reference.lower is not None and reference.upper is not None:
        assert reference.lower < reference.upper
    assert "doi:10." in reference.source and "https://" in reference.source
    assert reference.note.startswith("Kind: ")
    assert reference.unit


def test_derived_ranges_are_mean_plus_minus_two_sd_of_the_published_values():
    # Petersen 2017 abstract: LVEF 58 ± 5 % (men), 61 ± 5 % (women).
    assert (REFERENCE_RANGES["lv_ef_percent"]["M"].lower, REFERENCE_RANGES["lv_ef_percent"]["M"].upper) == (48, 68)
    assert (REFERENCE_RANGES["lv_ef_percent"]["F"].lower, REFERENCE_RANGES["lv_ef_percent"]["F"].upper) == (51, 71)
    # JMRI 2003 abstract, SSFP: LV EDV/BSA 82.3 ± 14.7 mL/m² in men.
    men_edvi = REFERENCE_RANGES["lv_edv_ml_m2"]["M"]
    assert (men_edvi.lower, men_edvi.upper) == (52.9, 111.7)
    assert "82.3 ± 14.7" in men_edvi.note


def test_wall_thickness_is_the_hcm_criterion_for_both_sexes():
    for sex in ("M", "F"):
        reference = REFERENCE_RANGES["max_wall_thickness_mm"][sex]
        assert (reference.lower, reference.upper, reference.upper_inclusive) == (None, 15.0, False)
        assert "ehu284" in reference.source


def test_a_range_needs_ordered_limits():
    with pytest.raises(ValueError, match="not below"):
        ReferenceRange("lv_ef_percent", "M", 70.0, 50.0, "%", "src", "Kind: test")
    with pytest.raises(ValueError, match="needs a lower or an upper"):
        ReferenceRange("lv_ef_percent", "M", None, None, "%", "src", "Kind: test")


# --- flags with known sex ---------------------------------------------------


def test_text_reads_like_a_report_line():
    assert one({"lv_ef_percent": 24.0}, "female").text == "LVEF 24.0 % (normal 51–71 % for women): low"


@pytest.mark.parametrize(
    ("value", "status"),
    [(50.99, "low"), (51.0, "normal"), (60.0, "normal"), (71.0, "normal"), (71.01, "high")],
)
def test_limits_belong_to_the_normal_range(value, status):
    flag = one({"lv_ef_percent": value}, "F")
    assert flag.status == status
    assert (flag.lower, flag.upper, flag.sex) == (51.0, 71.0, "F")


@pytest.mark.parametrize("sex", ["M", "F", None])
@pytest.mark.parametrize(("value", "status"), [(14.9, "normal"), (15.0, "high"), (22.0, "high")])
def test_wall_thickness_of_15_mm_is_high(sex, value, status):
    flag = one({"max_wall_thickness_mm": value}, sex)
    assert flag.status == status
    assert "< 15 mm" in flag.text


def test_the_range_of_the_given_sex_is_used():
    # 49 % is below the women's range (51–71) and inside the men's (48–68).
    assert one({"lv_ef_percent": 49.0}, "M").status == "normal"
    assert one({"lv_ef_percent": 49.0}, "F").status == "low"
    assert one({"lv_edv_ml": 200.0}, "male").status == "normal"
    assert one({"lv_edv_ml": 200.0}, "female").status == "high"


def test_missing_and_nan_values_and_indices_without_a_range_are_skipped():
    values = {"lv_ef_percent": None, "lv_edv_ml": math.nan, "lv_sv_ml": 80.0, "bsa_m2": 1.9, "rv_esv_ml": 60.0}
    flags = flag_values(values, "M")
    assert [flag.index for flag in flags] == ["rv_esv_ml"]
    assert flag_values({}, "F") == []


def test_flags_follow_the_table_order():
    values = {"max_wall_thickness_mm": 10.0, "rv_edv_ml": 150.0, "lv_edv_ml": 150.0}
    assert [flag.index for flag in flag_values(values, "F")] == ["lv_edv_ml", "rv_edv_ml", "max_wall_thickness_mm"]


# --- unknown sex ------------------------------------------------------------


@pytest.mark.parametrize("sex", [None, "", "  ", "O", "U", "u", "other", "Unknown"])
def test_unknown_sex_gives_unknown_and_both_ranges(sex):
    flag = one({"lv_ef_percent": 50.0}, sex)  # normal for men, low for women
    assert flag.status == FlagStatus.UNKNOWN
    assert flag.sex is None
    assert "depends on sex" in flag.text
    assert "48–68 % for men" in flag.text and "51–71 % for women" in flag.text
    assert (flag.lower, flag.upper) == (48.0, 71.0)  # envelope of both ranges


def test_unknown_sex_and_normal_for_both_is_normal():
    flag = one({"lv_ef_percent": 60.0}, None)
    assert flag.status == FlagStatus.NORMAL and flag.text.endswith("normal for either sex")


def test_unknown_sex_and_abnormal_for_one_sex_only_stays_unknown():
    assert one({"lv_ef_percent": 49.0}, None).status == "unknown"  # low for women only
    assert one({"lv_ef_percent": 70.0}, None).status == "unknown"  # high for men only


@pytest.mark.parametrize(
    ("values", "status"),
    [
        ({"lv_ef_percent": 47.9}, "low"),
        ({"lv_ef_percent": 24.0}, "low"),
        ({"lv_ef_percent": 71.5}, "high"),
        ({"lv_edv_ml": 218.5}, "high"),
        ({"rv_esv_ml": 19.0}, "low"),
    ],
)
def test_outside_both_ranges_on_one_side_is_flagged_for_either_sex(values, status):
    flag = one(values, None)
    assert flag.status == status
    assert flag.text.endswith(f": {status} for either sex")
    assert "for men" in flag.text and "for women" in flag.text


def test_on_the_envelope_limit_is_not_flagged():
    # 48 % is the men's lower limit (normal for men), low for women: unknown.
    assert one({"lv_ef_percent": 48.0}, None).status == "unknown"


# --- sex strings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sex"),
    [("M", Sex.MALE), ("m", Sex.MALE), ("male", Sex.MALE), ("MALE", Sex.MALE), (" Male ", Sex.MALE)]
    + [("F", Sex.FEMALE), ("f", Sex.FEMALE), ("female", Sex.FEMALE), ("Female", Sex.FEMALE)],
)
def test_sex_strings_accepted(text, sex):
    assert parse_sex(text) is sex


@pytest.mark.parametrize("bad", ["X", "mal", "woman", "2", "M F"])
def test_bad_sex_string_is_named(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        parse_sex(bad)
    with pytest.raises(ValueError, match=repr(bad)):
        flag_values({"lv_ef_percent": 60.0}, bad)


def test_bad_sex_is_refused_even_without_values():
    with pytest.raises(ValueError, match="'X'"):
        flag_values({}, "X")


# --- the flag object -----------------------------------------------------------


def test_to_dict_is_json_ready():
    flag = one({"lv_ef_percent": 24.0}, "F")
    data = json.loads(json.dumps(flag.to_dict()))
    assert data == {
        "index": "lv_ef_percent",
        "value": 24.0,
        "lower": 51.0,
        "upper": 71.0,
        "unit": "%",
        "sex": "F",
        "status": "low",
        "text": "LVEF 24.0 % (normal 51–71 % for women): low",
    }
    unknown = one({"lv_ef_percent": 50.0}, None).to_dict()
    assert unknown["status"] == "unknown" and unknown["sex"] is None


def test_flags_and_ranges_are_frozen():
    flag = one({"lv_ef_percent": 24.0}, "F")
    with pytest.raises(dataclasses.FrozenInstanceError):
        flag.status = FlagStatus.NORMAL  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        REFERENCE_RANGES["lv_ef_percent"]["F"].lower = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        REFERENCE_RANGES["lv_ef_percent"]["F"] = None  # type: ignore[index]
