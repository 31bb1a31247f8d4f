"""Plausibility checks: exact phantom labels pass, each deliberately broken segmentation is caught."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from opencmr.io.study import CineStudy, Geometry, LabelMap
from opencmr.labels import Label
from opencmr.measure.function import Measurements, Subject, measure_function
from opencmr.phantom import PhantomConfig, make_phantom
from opencmr.qc.checks import (
    Check,
    Status,
    check_blank_slices,
    check_coverage,
    check_fragments,
    check_image,
    check_measurements,
    check_myocardium_encloses_lv,
    check_rv_next_to_septum,
    check_slice_continuity,
    run_checks,
    worst_status,
)


@functools.cache
def _phantom(group: str) -> tuple[CineStudy, Measurements]:
    """A small phantom (4 frames, 8 slices) with exact labels, and its measurements."""
    study = make_phantom(PhantomConfig(group=group, n_frames=4, n_slices=8, seed=1)).study
    assert study.labels is not None
    return study, measure_function(study.labels, Subject())


@pytest.fixture(params=["NOR", "DCM"])
def phantom(request: pytest.FixtureRequest) -> tuple[CineStudy, Measurements]:
    return _phantom(request.param)


@pytest.fixture
def nor() -> tuple[CineStudy, Measurements]:
    return _phantom("NOR")


def _ed(study: CineStudy) -> np.ndarray:
    assert study.labels is not None
    return np.array(study.labels.frame(0))


def _not_passing(checks: list[Check], name: str) -> list[Check]:
    return [c for c in checks if c.name == name and c.status is not Status.PASS]


def test_exact_phantom_labels_pass_every_check(phantom: tuple[CineStudy, Measurements]) -> None:
    study, measurements = phantom
    assert study.labels is not None
    checks = run_checks(study, study.labels, measurements)
    assert worst_status(checks) is Status.PASS, [c.reason for c in checks if c.status is not Status.PASS]
    names = {c.name for c in checks}
    assert {"lv_enclosed", "rv_next_to_septum", "fragments", "slice_continuity", "coverage", "snr"} <= names
    assert {"ghosting", "blank_slices", "lv_ed_above_es", "limit_lv_ef_percent"} <= names


def test_missing_myocardium_on_a_mid_slice_fails(phantom: tuple[CineStudy, Measurements]) -> None:
    study, _ = phantom
    volume = _ed(study)
    s = 4
    _, cols = np.nonzero(volume[s] == Label.LV_BLOOD_POOL)
    centre = int(cols.mean())
    wall = volume[s] == Label.LV_MYOCARDIUM
    wall[:, :centre] = False  # keep the left half of the ring, erase the right half
    volume[s][wall] = Label.BACKGROUND
    checks = check_myocardium_encloses_lv(volume, frame=0)
    bad = _not_passing(checks, "lv_enclosed")
    assert [c.slices for c in bad] == [(s,)] and bad[0].status is Status.FAIL
    assert "myocardium does not enclose the LV blood pool on mid slice 4 (frame 0)" in bad[0].reason
    assert "of the cavity border touches background" in bad[0].reason
    assert bad[0].value is not None and bad[0].value > 0.2


def test_open_basal_ring_is_not_judged(nor: tuple[CineStudy, Measurements]) -> None:
    study, _ = nor
    volume = _ed(study)
    wall = volume[0] == Label.LV_MYOCARDIUM
    wall[:, : int(np.nonzero(volume[0] == Label.LV_BLOOD_POOL)[1].mean())] = False
    volume[0][wall] = Label.BACKGROUND
    assert worst_status(check_myocardium_encloses_lv(volume)) is Status.PASS


def test_rv_moved_away_from_the_septum_fails(phantom: tuple[CineStudy, Measurements]) -> None:
    study, _ = phantom
    volume = _ed(study)
    rv = volume == Label.RV_BLOOD_POOL
    lv_col = np.nonzero(volume == Label.LV_BLOOD_POOL)[2].mean()
    direction = 1 if np.nonzero(rv)[2].mean() > lv_col else -1
    volume[rv] = Label.BACKGROUND
    moved = np.roll(rv, 40 * direction, axis=2)  # 64 mm further out
    volume[moved & (volume == Label.BACKGROUND)] = Label.RV_BLOOD_POOL
    bad = _not_passing(check_rv_next_to_septum(volume, study.spacing, frame=0), "rv_next_to_septum")
    assert bad and bad[0].status is Status.FAIL
    assert "the RV blood pool lies up to" in bad[0].reason and "away from the LV myocardium" in bad[0].reason


def test_far_away_lv_blob_is_a_fragment(phantom: tuple[CineStudy, Measurements]) -> None:
    study, _ = phantom
    volume = _ed(study)
    volume[3:5, 2:14, 2:14] = Label.LV_BLOOD_POOL
    checks = check_fragments(volume, study.spacing, frame=0)
    three_d = _not_passing(checks, "fragments_3d")
    assert len(three_d) == 1 and "the LV blood pool is fragmented (frame 0): 1 piece(s) lie apart" in three_d[0].reason
    two_d = _not_passing(checks, "fragments_2d")
    assert two_d[0].slices == (3, 4) and "split into several pieces on slice 3 and 4" in two_d[0].reason
    volume[0:8, 2:40, 2:40] = Label.LV_BLOOD_POOL  # a large detached piece fails
    assert worst_status(check_fragments(volume, study.spacing)) is Status.FAIL


def test_blank_lv_slice_breaks_continuity(phantom: tuple[CineStudy, Measurements]) -> None:
    study, _ = phantom
    volume = _ed(study)
    volume[4] = Label.BACKGROUND
    bad = _not_passing(check_slice_continuity(volume, frame=0), "slice_gap")
    assert bad[0].status is Status.FAIL and bad[0].slices == (4,)
    assert "slice 4 holds no LV blood pool although the slices on either side do (frame 0)" in bad[0].reason


def test_abrupt_area_jump_is_reviewed(nor: tuple[CineStudy, Measurements]) -> None:
    study, _ = nor
    volume = _ed(study)
    cavity = volume[4] == Label.LV_BLOOD_POOL
    rows, cols = np.nonzero(cavity)
    rr, cc = np.ogrid[: cavity.shape[0], : cavity.shape[1]]
    keep = (rr - rows.mean()) ** 2 + (cc - cols.mean()) ** 2 <= 6**2  # ~110 of ~700 pixels
    volume[4][cavity & ~keep] = Label.LV_MYOCARDIUM
    bad = _not_passing(check_slice_continuity(volume, frame=0), "area_jump")
    assert {c.slices for c in bad} == {(3, 4), (4, 5)}
    assert all(c.status is Status.REVIEW for c in bad)
    assert "the LV cavity area changes abruptly between slices 3 and 4 (frame 0)" in bad[0].reason


def test_truncated_stacks_are_flagged_for_coverage(nor: tuple[CineStudy, Measurements]) -> None:
    study, _ = nor
    assert study.labels is not None
    data = np.array(study.labels.data)
    assert worst_status(check_coverage(data)) is Status.PASS
    no_base = _not_passing(check_coverage(data[:, 1:], base_first=True), "coverage_base")
    assert no_base and no_base[0].reason.startswith("stack may not cover the base")
    no_apex = _not_passing(check_coverage(data[:, :4]), "coverage_apex")
    assert no_apex and no_apex[0].reason.startswith("stack may not cover the apex")


def test_swapped_volumes_and_absurd_indices_fail(nor: tuple[CineStudy, Measurements]) -> None:
    _, measurements = nor
    values = dict(measurements.values)
    assert worst_status(check_measurements(values)) is Status.PASS
    values["lv_edv_ml"], values["lv_esv_ml"] = values["lv_esv_ml"], values["lv_edv_ml"]
    values["lv_ef_percent"] = 95.0
    values["max_wall_thickness_mm"] = 41.0
    bad = {c.name: c for c in check_measurements(values) if c.status is Status.FAIL}
    assert set(bad) == {"lv_ed_above_es", "limit_lv_ef_percent", "limit_max_wall_thickness_mm"}
    assert "is not larger than the end-systolic volume" in bad["lv_ed_above_es"].reason
    assert bad["limit_lv_ef_percent"].reason.startswith("LVEF (%) of 95.0 is physiologically implausible (plausible 5")
    assert "(plausible below 35)" in bad["limit_max_wall_thickness_mm"].reason
    assert check_measurements({"lv_ef_percent": None}) == []


def test_blank_image_slice_fails(nor: tuple[CineStudy, Measurements]) -> None:
    study, measurements = nor
    assert study.labels is not None
    image = np.array(study.image)
    image[:, 3] = 0.0
    bad = _not_passing(check_blank_slices(image), "blank_slices")
    assert bad[0].slices == (3,) and "image slice 3 is blank (constant) in every frame" in bad[0].reason
    image[1:, 3] = study.image[1:, 3]
    assert "in frame 0" in _not_passing(check_blank_slices(image), "blank_slices")[0].reason
    broken = CineStudy(image, study.geometry, labels=study.labels)
    assert worst_status(run_checks(broken, study.labels, measurements)) is Status.FAIL


def test_noise_and_ghosting_are_flagged(nor: tuple[CineStudy, Measurements]) -> None:
    study, _ = nor
    volume, image = _ed(study), np.array(study.frame(0), dtype=np.float64)
    blood = image[volume == Label.LV_BLOOD_POOL].mean()
    rng = np.random.default_rng(0)
    noisy = np.hypot(image + rng.normal(0, blood / 4, image.shape), rng.normal(0, blood / 4, image.shape))
    snr = _not_passing(check_image(noisy, volume, study.spacing, frame=0), "snr")
    # SNR about 4: reviewed (the model still segments such images well), not failed
    assert snr and snr[0].status is Status.REVIEW and "blood-pool SNR is" in snr[0].reason
    assert 2 <= snr[0].value < 6
    drowned = np.hypot(image + rng.normal(0, blood, image.shape), rng.normal(0, blood, image.shape))
    snr = _not_passing(check_image(drowned, volume, study.spacing, frame=0), "snr")
    assert snr and snr[0].status is Status.FAIL and snr[0].value < 2
    heart_cols = np.isin(volume, (1, 2, 3)).any(axis=(0, 1))
    ghost = np.roll(image * heart_cols[None, None, :], -60, axis=1)  # a copy of the heart band, 96 mm up, into air
    ghosted = _not_passing(check_image(image + 0.4 * ghost, volume, study.spacing, frame=0), "ghosting")
    assert ghosted and "possible motion or flow ghosting" in ghosted[0].reason


def test_unexpected_values_and_shapes_raise(nor: tuple[CineStudy, Measurements]) -> None:
    study, _ = nor
    volume = _ed(study)
    bad = volume.copy()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"label values \[7\] are not in"):
        check_fragments(bad, study.spacing)
    with pytest.raises(ValueError, match="must be 3D"):
        check_myocardium_encloses_lv(volume[0])
    with pytest.raises(ValueError, match="must be integer"):
        check_slice_continuity(volume.astype(float))
    with pytest.raises(ValueError, match="does not match label shape"):
        check_image(np.zeros((8, 10, 10)), volume, study.spacing)
    with pytest.raises(ValueError, match="spacing must be three positive"):
        check_rv_next_to_septum(volume, (10.0, 0.0, 1.6))
    other = Geometry(np.diag([1.6, 1.6, 10.0, 1.0]), (8, 20, 20))
    small = LabelMap(np.zeros((1, 8, 20, 20), np.uint8), other, (0,))
    assert study.labels is not None
    with pytest.raises(ValueError, match="not on the image grid"):
        run_checks(study, small)


def test_check_result_object() -> None:
    check = Check("snr", "review", "blood-pool SNR is 9", frame=2, value=9.04)
    assert check.status is Status.REVIEW
    assert check.to_dict() == {
        "name": "snr",
        "status": "review",
        "reason": "blood-pool SNR is 9",
        "slices": [],
        "frame": 2,
        "value": 9.04,
    }
    with pytest.raises(ValueError):
        Check("x", "maybe", "?")
    assert worst_status([]) is Status.PASS
    assert worst_status([check, Check("y", Status.FAIL, "bad")]) is Status.FAIL


def test_image_quality_ignores_scanner_scale_and_offset(nor: tuple[CineStudy, Measurements]) -> None:
    """Raw scanner values (image x 1000 + 300): SNR and ghosting are measured from the image's floor."""
    study, _ = nor
    image, labels = np.asarray(study.frame(0)), np.asarray(study.labels.frame(study.labels.frame_numbers[0]))
    plain = {c.name: (c.status, round(c.value or 0.0, 6)) for c in check_image(image, labels, study.spacing)}
    raw = {c.name: (c.status, round(c.value or 0.0, 6)) for c in check_image(image * 1000 + 300, labels, study.spacing)}
    assert plain == raw and plain["snr"][0] is Status.PASS
