"""Volumes, EF, mass, BSA and ED/ES on phantoms with analytic truth and on tiny hand-made label maps."""

from __future__ import annotations

import numpy as np
import pytest

from opencmr.io.study import Geometry, LabelMap
from opencmr.measure.body import BsaFormula, body_surface_area
from opencmr.measure.function import MYOCARDIAL_DENSITY_G_ML, Subject, measure_function
from opencmr.measure.phases import EdEsRule, detect_ed_es
from opencmr.measure.volumes import VolumeCurve, VolumeMethod, slice_areas_mm2, volume_curve
from opencmr.phantom import PhantomConfig, make_phantom

GRID = Geometry(np.diag([1.5, 1.25, 10.0, 1.0]), (3, 8, 8), slice_thickness_mm=8.0)
VOXEL_ML = 1.5 * 1.25 * 10.0 / 1000.0  # spacing (slice 10, row 1.25, col 1.5) mm


def _labels(lv_pixels: list[int], myo: int = 4, rv: int = 6) -> LabelMap:
    """One frame per entry: ``lv_pixels[f]`` LV voxels on the middle slice, fixed myocardium and RV."""
    data = np.zeros((len(lv_pixels), 3, 8, 8), np.uint8)
    for f, n in enumerate(lv_pixels):
        data[f, 1].flat[:n] = 3
        data[f, 1, 7, :myo] = 2
        data[f, 0, 6, :rv] = 1
    return LabelMap(data, GRID, tuple(range(len(lv_pixels))))


# --------------------------------------------------------------------------- phantoms with analytic truth


@pytest.mark.parametrize("group", ["NOR", "DCM", "HCM", "MINF", "RV"])
def test_phantom_indices_match_the_truth(group: str) -> None:
    """Targets of issue 4: volumes within 2 %, EF within 1 point (truth: the stack-sampled analytic volumes)."""
    phantom = make_phantom(PhantomConfig(group=group, n_frames=6, seed=3))
    truth, meta = phantom.truth, phantom.study.metadata
    m = measure_function(phantom.study.labels, Subject(meta.height_cm, meta.weight_kg, heart_rate_bpm=60.0))
    assert (m.phases.ed_frame, m.phases.es_frame) == (truth.ed_frame, truth.es_frame)
    ed, es = truth.ed_frame, truth.es_frame
    for key, series, frame in [
        ("lv_edv_ml", truth.lv_blood_stack_ml, ed),
        ("lv_esv_ml", truth.lv_blood_stack_ml, es),
        ("rv_edv_ml", truth.rv_blood_stack_ml, ed),
        ("rv_esv_ml", truth.rv_blood_stack_ml, es),
        ("lv_myocardial_volume_ed_ml", truth.lv_myo_stack_ml, ed),
    ]:
        assert m.values[key] == pytest.approx(series[frame], rel=0.02), key
    for prefix, series in (("lv", truth.lv_blood_stack_ml), ("rv", truth.rv_blood_stack_ml)):
        ef = 100.0 * (series[ed] - series[es]) / series[ed]
        assert abs(m.values[f"{prefix}_ef_percent"] - ef) < 1.0
    assert m.values["lv_mass_g"] == pytest.approx(truth.lv_myo_stack_ml[ed] * 1.05, rel=0.02)
    assert m.values["lv_co_l_min"] == pytest.approx(m.values["lv_sv_ml"] * 60.0 / 1000.0)
    bsa = np.sqrt(meta.height_cm * meta.weight_kg / 3600.0)
    assert m.values["lv_edv_ml_m2"] == pytest.approx(m.values["lv_edv_ml"] / bsa)
    # hypertrophy criterion (>= 15 mm) met by the HCM phantom only; thickening is positive in a normal heart
    assert (m.values["max_wall_thickness_mm"] >= 15.0) == (group == "HCM")
    if group == "NOR":
        assert all(v > 0 for v in m.thickening.percent.values())


# --------------------------------------------------------------------------- hand-computed cases


def test_volumes_ef_mass_by_hand() -> None:
    m = measure_function(_labels([20, 8, 12]))
    assert m.values["lv_edv_ml"] == pytest.approx(20 * VOXEL_ML)
    assert m.values["lv_esv_ml"] == pytest.approx(8 * VOXEL_ML)
    assert m.values["lv_ef_percent"] == pytest.approx(100 * 12 / 20)
    assert m.values["lv_mass_g"] == pytest.approx(4 * VOXEL_ML * MYOCARDIAL_DENSITY_G_ML)
    assert m.values["rv_ef_percent"] == pytest.approx(0.0)  # the RV does not change in this toy
    assert m.values["bsa_m2"] is None and m.values["lv_edv_ml_m2"] is None and m.values["lv_co_l_min"] is None
    assert any("height and weight unknown" in note for note in m.notes)


def test_slice_summation_equals_voxel_counting_on_a_regular_grid() -> None:
    labels = _labels([20, 8, 12])
    voxels, discs = volume_curve(labels, VolumeMethod.VOXELS), volume_curve(labels, "slice-summation")
    np.testing.assert_allclose(voxels.lv_ml, discs.lv_ml)
    np.testing.assert_allclose(slice_areas_mm2(labels.data[0], GRID.spacing, 3), [0, 20 * 1.5 * 1.25, 0])


def test_volumes_use_the_slice_spacing_not_the_thickness() -> None:
    assert GRID.slice_thickness_mm == 8.0
    assert volume_curve(_labels([10, 5])).lv_ml[0] == pytest.approx(10 * 1.5 * 1.25 * 10.0 / 1000.0)


# --------------------------------------------------------------------------- ED / ES


def _curve(lv: list[float], frames: tuple[int, ...] | None = None) -> VolumeCurve:
    frames = frames or tuple(range(len(lv)))
    zeros = tuple(0.0 for _ in lv)
    return VolumeCurve(frames, tuple(lv), zeros, zeros)


def test_ed_es_rules() -> None:
    assert detect_ed_es(_curve([120, 90, 50, 70, 110]), 0, 2).rule is EdEsRule.METADATA
    found = detect_ed_es(_curve([110, 120, 90, 50, 70]))
    assert (found.ed_frame, found.es_frame, found.rule) == (1, 3, EdEsRule.LV_VOLUME_CURVE)
    two = detect_ed_es(_curve([55.0, 130.0], (0, 11)))
    assert (two.ed_frame, two.es_frame, two.rule) == (11, 0, EdEsRule.TWO_FRAMES_LV_VOLUME)
    # named frames that were not segmented: the curve decides, and says why
    fallback = detect_ed_es(_curve([120, 60, 90]), 0, 7)
    assert fallback.rule is EdEsRule.LV_VOLUME_CURVE and "holds frames [0, 1, 2]" in fallback.notes[0]
    # metadata that contradicts the volumes is kept, with a warning
    odd = detect_ed_es(_curve([60, 120]), 0, 1)
    assert odd.rule is EdEsRule.METADATA and "smaller than at ES" in odd.notes[0]


def test_ed_es_errors() -> None:
    with pytest.raises(ValueError, match="at least two segmented frames"):
        detect_ed_es(_curve([100.0]))
    with pytest.raises(ValueError, match="LV blood pool is empty in every frame"):
        detect_ed_es(_curve([0.0, 0.0, 0.0]))


def test_empty_lv_at_ed_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        measure_function(_labels([0, 0]))


# --------------------------------------------------------------------------- BSA


def test_bsa_worked_examples() -> None:
    # Mosteller 1987: sqrt(height cm x weight kg / 3600); 180 cm, 80 kg -> sqrt(4) = 2.0 m2
    assert body_surface_area(180, 80) == pytest.approx(2.0)
    # 170 cm, 70 kg -> sqrt(170 * 70 / 3600) = sqrt(3.30556) = 1.81812
    assert body_surface_area(170, 70) == pytest.approx(1.81812, abs=1e-5)
    # Du Bois 1916: 0.007184 x 70^0.425 x 170^0.725 = 0.007184 x 6.0837 x 41.4072 = 1.8097
    # (70^0.425 = 10^(0.425 x 1.84510) = 10^0.78417; 170^0.725 = 10^(0.725 x 2.23045) = 10^1.61707)
    assert body_surface_area(170, 70, BsaFormula.DUBOIS) == pytest.approx(1.8097, abs=5e-4)
    with pytest.raises(ValueError, match="height 1.8 cm"):
        body_surface_area(1.8, 80)  # metres given by mistake
    with pytest.raises(ValueError, match="weight 0 kg"):
        body_surface_area(180, 0)
