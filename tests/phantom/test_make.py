"""Phantom studies of the five groups: shapes, labels, function in range, truth consistent with the images."""

from __future__ import annotations

import numpy as np
import pytest

from opencmr.labels import DiagnosticGroup
from opencmr.phantom import Phantom, PhantomConfig, make_phantom
from opencmr.phantom.anatomy import half_ellipsoid_volume

SMALL = {"n_frames": 8, "n_slices": 10, "matrix": (64, 64), "pixel_spacing_mm": 3.2}


@pytest.fixture(scope="module")
def phantoms() -> dict[DiagnosticGroup, Phantom]:
    return {group: make_phantom(PhantomConfig(group=group, seed=1, **SMALL)) for group in DiagnosticGroup}


def test_every_group_generates_a_complete_study(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    for group, ph in phantoms.items():
        study = ph.study
        assert study.image.shape == (8, 10, 64, 64)
        assert study.image.dtype == np.float32
        assert study.labels is not None
        assert study.labels.frame_numbers == tuple(range(8))
        assert study.labels.data.shape == study.image.shape
        for frame in (ph.truth.ed_frame, ph.truth.es_frame):
            assert set(np.unique(study.labels.frame(frame)).tolist()) == {0, 1, 2, 3}
        meta = study.metadata
        assert meta.group is group
        assert meta.patient_id == f"PHANTOM-{group.value}-1"
        assert meta.ed_frame == ph.truth.ed_frame == 0
        assert meta.es_frame == ph.truth.es_frame
        assert meta.heart_rate_bpm == pytest.approx(60.0)
        assert meta.n_frames_acquired == 8
        assert meta.sex in ("M", "F") and 140 < meta.height_cm < 210 and 40 < meta.weight_kg < 150
        assert study.frame_times_ms == pytest.approx([125.0 * f for f in range(8)])
        assert study.geometry.spacing == pytest.approx((10.0, 3.2, 3.2))
        assert study.geometry.slice_thickness_mm == 8.0


def test_orientation_is_double_oblique(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    directions = phantoms[DiagnosticGroup.NOR].study.geometry.directions
    # No axis is within 10 degrees of a patient axis.
    assert np.abs(directions).max() < np.cos(np.deg2rad(10.0))


def test_raw_intensities_are_integral_and_in_range(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    for ph in phantoms.values():
        image = ph.study.image
        assert np.array_equal(image, np.rint(image))
        assert image.min() >= 0 and image.max() <= 4095
        labels = ph.study.labels.data
        blood = np.median(image[labels == 3])
        myocardium = np.median(image[labels == 2])
        assert 1200 < blood < 2500
        assert 0.2 < myocardium / blood < 0.5  # bSSFP: bright blood, dark-grey myocardium


def test_lv_volume_curve_peaks_at_ed_and_is_lowest_at_es(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    for ph in phantoms.values():
        lv = np.array(ph.truth.lv_blood_ml)
        assert np.argmax(lv) == ph.truth.ed_frame == 0
        assert np.argmin(lv) == ph.truth.es_frame
        assert 2 <= ph.truth.es_frame <= 4  # about 35 % of the RR interval
        assert ph.truth.lv_edv_ml == pytest.approx(lv.max())
        assert ph.truth.lv_ef_percent == pytest.approx(100 * (lv.max() - lv.min()) / lv.max())


def test_function_of_each_group_is_in_its_range(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    nor = phantoms[DiagnosticGroup.NOR].truth
    assert 100 < nor.lv_edv_ml < 190 and 50 < nor.lv_ef_percent < 72
    assert 100 < nor.rv_edv_ml < 200 and 45 < nor.rv_ef_percent < 65
    assert 6 < nor.max_wall_thickness_mm < 11 and 80 < nor.lv_mass_g < 170
    dcm = phantoms[DiagnosticGroup.DCM].truth
    assert dcm.lv_ef_percent < 35 and dcm.lv_edv_ml > 200
    hcm = phantoms[DiagnosticGroup.HCM].truth
    assert hcm.max_wall_thickness_mm >= 15 and hcm.lv_ef_percent > 60
    minf = phantoms[DiagnosticGroup.MINF].truth
    assert 20 < minf.lv_ef_percent < 45
    rv = phantoms[DiagnosticGroup.RV].truth
    assert rv.rv_edv_ml > rv.lv_edv_ml and rv.rv_edv_ml > 200 and rv.rv_ef_percent < 40


def test_myocardial_volume_is_constant_and_the_wall_thickens(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    for ph in phantoms.values():
        # The whole myocardium is conserved; the slab (which may start up to 3 mm below the ED base,
        # as ACDC stacks start at the basal ring) holds a little more of it as the base descends.
        np.testing.assert_allclose(ph.truth.lv_myo_whole_ml, ph.truth.lv_myo_whole_ml[0], rtol=0.01)
        myo = np.array(ph.truth.lv_myo_ml)
        np.testing.assert_allclose(myo, myo[0], rtol=0.08)
        assert ph.truth.lv_mass_g == pytest.approx(1.05 * myo[ph.truth.ed_frame])
        assert ph.truth.es_max_wall_thickness_mm > ph.truth.max_wall_thickness_mm


def test_truth_matches_the_analytic_ellipsoid(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    ph = phantoms[DiagnosticGroup.NOR]  # no regional pathology: the cavity is an exact half ellipsoid
    z_lo, z_hi = ph.truth.slab_mm
    for volume, state in zip(ph.truth.lv_blood_ml, ph.states, strict=True):
        a, b, c = state.lv_axes_mm
        base = state.base_z_mm
        assert volume == pytest.approx(half_ellipsoid_volume(a, b, c, z_lo - base, z_hi - base) / 1000, rel=0.01)
    a, b, c = ph.anatomy.lv_axes_mm
    w, wa = ph.anatomy.wall_mm, ph.anatomy.apex_wall_mm
    shell = half_ellipsoid_volume(a + w, b + w, c + wa) - half_ellipsoid_volume(a, b, c)
    for volume in ph.truth.lv_myo_whole_ml:  # conserved: the ED shell at every frame
        assert volume == pytest.approx(shell / 1000, rel=0.01)


def test_label_volumes_agree_with_truth(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    for group, ph in phantoms.items():
        labels = ph.study.labels.data
        voxel = ph.study.geometry.voxel_volume_ml
        t = ph.truth
        for frame in range(ph.study.n_frames):
            counted = {key: float((labels[frame] == v).sum()) * voxel for key, v in (("lv", 3), ("myo", 2), ("rv", 1))}
            stack = {"lv": t.lv_blood_stack_ml, "myo": t.lv_myo_stack_ml, "rv": t.rv_blood_stack_ml}
            slab = {"lv": t.lv_blood_ml, "myo": t.lv_myo_ml, "rv": t.rv_blood_ml}
            for key in counted:
                # Pixelisation only (3.2 mm pixels) against the areas on the slice planes ...
                assert counted[key] == pytest.approx(stack[key][frame], rel=0.04), (group, frame, key)
                # ... plus the 10 mm through-plane sampling against the continuous slab volume.
                assert counted[key] == pytest.approx(slab[key][frame], rel=0.15), (group, frame, key)


def test_same_seed_same_phantom_other_seed_other_phantom(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    again = make_phantom(PhantomConfig(group="NOR", seed=1, **SMALL))
    first = phantoms[DiagnosticGroup.NOR]
    np.testing.assert_array_equal(again.study.image, first.study.image)
    np.testing.assert_array_equal(again.study.labels.data, first.study.labels.data)
    np.testing.assert_array_equal(again.study.geometry.affine, first.study.geometry.affine)
    assert again.truth == first.truth
    other = make_phantom(PhantomConfig(group="NOR", seed=2, noise_level=0.0, bias_field_strength=0.0, **SMALL))
    assert other.truth.lv_edv_ml != first.truth.lv_edv_ml


def test_config_validation_and_group_strings() -> None:
    assert PhantomConfig(group="dcm").group is DiagnosticGroup.DCM
    assert PhantomConfig().to_dict()["group"] == "NOR"
    with pytest.raises(ValueError):
        PhantomConfig(group="XYZ")
    with pytest.raises(ValueError):
        PhantomConfig(n_frames=1)
    with pytest.raises(ValueError):
        PhantomConfig(pixel_spacing_mm=0)
    with pytest.raises(ValueError):
        PhantomConfig(sex="X")


def test_truth_to_dict_is_json_ready(phantoms: dict[DiagnosticGroup, Phantom]) -> None:
    import json

    data = phantoms[DiagnosticGroup.MINF].truth.to_dict()
    assert len(data["lv_blood_ml"]) == 8
    assert json.loads(json.dumps(data))["es_frame"] == phantoms[DiagnosticGroup.MINF].truth.es_frame
