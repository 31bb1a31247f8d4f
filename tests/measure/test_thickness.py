"""Wall thickness, AHA segments, thickening and the bull's-eye, on small synthetic label maps of known geometry."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from opencmr.errors import OutputError
from opencmr.measure.bullseye import plot_bullseye, segment_wedge
from opencmr.measure.thickness import (
    AHA_SEGMENT_NAMES,
    HYPERTROPHY_THRESHOLD_MM,
    SEPTAL_SEGMENTS,
    Level,
    RayStatus,
    SegmentOrigin,
    aha_segment,
    aha_segments,
    max_wall_thickness,
    neighbour_agreed,
    rv_insertion_angles,
    segment_thickening,
    slice_thickness,
)

BLOOD, MYO, RV = 3, 2, 1
SEGMENTS = range(1, 17)
NON_SEPTAL = [s for s in SEGMENTS if s not in SEPTAL_SEGMENTS]
#: Mirror image of the AHA frame about the septal axis: anterior <-> inferior.
MIRRORED = {1: 4, 2: 3, 3: 2, 4: 1, 5: 6, 6: 5, 13: 15, 14: 14, 15: 13, 16: 16}
MIRRORED.update({s + 6: MIRRORED[s] + 6 for s in range(1, 7)})


def polar_grid(size_mm: tuple[float, float], spacing_rc: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Radius (mm) and image angle ``atan2(drow_mm, dcol_mm)`` of each pixel about a pixel centre near the middle."""
    rows, cols = (round(size / step) | 1 for size, step in zip(size_mm, spacing_rc))  # odd: a central pixel
    rr, cc = np.mgrid[:rows, :cols]
    y = (rr - rows // 2) * spacing_rc[0]
    x = (cc - cols // 2) * spacing_rc[1]
    return np.hypot(y, x), np.arctan2(y, x)


def ring(radius: np.ndarray, r_endo: float, r_epi: float | np.ndarray) -> np.ndarray:
    labels = np.zeros(radius.shape, np.uint8)
    labels[radius < r_epi] = MYO
    labels[radius < r_endo] = BLOOD
    return labels


def angular_bump(angle: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """1 at ``centre``, falling to 0 at +-``half_width`` (radians)."""
    offset = np.angle(np.exp(1j * (angle - centre)))
    return np.clip(1.0 - (offset / half_width) ** 2, 0.0, None)


def heart(
    *,
    n_slices: int = 9,
    spacing_rc: tuple[float, float] = (1.0, 1.2),
    rv_angle: float = math.pi,
    septal_extra_mm: float = 5.0,
    anterior_extra_mm: float = 0.0,
    rv_slices: int = 6,
    wall_mm: float = 8.0,
    cavity_mm: tuple[float, float] = (24.0, 10.0),
) -> np.ndarray:
    """A tapered stack of rings, base first, with an RV crescent against the septum on the basal slices.

    The RV touches the epicardium over 120 deg centred on ``rv_angle`` (image
    angle). The wall is ``wall_mm`` thick, plus ``septal_extra_mm`` peaking at
    the septum and ``anterior_extra_mm`` peaking 90 deg from it, on the side
    that is anterior in the standard view from the apex (row 0 at the top:
    anterior is 90 deg clockwise on screen from the septum, i.e. at the higher
    image angle).
    """
    radius, angle = polar_grid((130.0, 130.0), spacing_rc)
    wall = wall_mm + septal_extra_mm * angular_bump(angle, rv_angle, math.radians(70))
    wall = wall + anterior_extra_mm * angular_bump(angle, rv_angle + math.pi / 2, math.radians(35))
    stack = []
    for k in range(n_slices):
        r_endo = cavity_mm[0] + (cavity_mm[1] - cavity_mm[0]) * k / (n_slices - 1)
        labels = ring(radius, r_endo, r_endo + wall)
        if k < rv_slices:
            depth = 15.0 * np.sqrt(angular_bump(angle, rv_angle, math.radians(60)))
            crescent = (radius >= r_endo + wall) & (radius < r_endo + wall + depth) & (labels == 0)
            labels[crescent] = RV
        stack.append(labels)
    return np.stack(stack)


SPACING_3D = (10.0, 1.0, 1.2)


# ------------------------------------------------------------------------------------------------- one slice


def test_ring_of_known_thickness_with_anisotropic_fine_pixels() -> None:
    spacing = (0.3, 0.4)
    radius, _ = polar_grid((70.0, 70.0), spacing)
    result = slice_thickness(ring(radius, 20.0, 28.0), spacing)
    assert result.thickness_mm.shape == (100,)
    assert np.all(result.status == RayStatus.OK)
    assert np.all(np.abs(result.thickness_mm - 8.0) < 0.5)
    assert np.allclose(np.diff(result.angles_rad), 2 * math.pi / 100)
    assert result.centre_rc == pytest.approx((116.0, 87.0))


def test_ring_with_coarse_anisotropic_pixels_is_right_on_average() -> None:
    spacing = (1.2, 1.6)
    radius, _ = polar_grid((90.0, 90.0), spacing)
    result = slice_thickness(ring(radius, 20.0, 28.0), spacing)
    assert np.mean(result.thickness_mm) == pytest.approx(8.0, abs=0.3)
    assert np.all(np.abs(result.thickness_mm - 8.0) < 1.6)  # one pixel of the coarser axis


def test_ring_thicker_on_one_side_gives_the_angular_profile() -> None:
    spacing = (0.3, 0.4)
    rr, cc = np.mgrid[:301, :225]
    y, x = (rr - 150) * spacing[0], (cc - 112) * spacing[1]
    labels = np.zeros(rr.shape, np.uint8)
    labels[np.hypot(y, x - 3.0) < 28.0] = MYO  # epicardium shifted 3 mm towards +col
    labels[np.hypot(y, x) < 20.0] = BLOOD
    result = slice_thickness(labels, spacing)
    theta = result.angles_rad
    expected = 3.0 * np.cos(theta) + np.sqrt(28.0**2 - 9.0 + 9.0 * np.cos(theta) ** 2) - 20.0  # 11 mm at 0, 5 at pi
    assert np.all(np.abs(result.thickness_mm - expected) < 0.5)
    assert result.thickness_mm[0] == pytest.approx(11.0, abs=0.5)
    assert result.thickness_mm[50] == pytest.approx(5.0, abs=0.5)


def test_open_ring_gives_nan_rays_not_wrong_numbers() -> None:
    spacing = (0.5, 0.5)
    radius, angle = polar_grid((80.0, 80.0), spacing)
    labels = ring(radius, 20.0, 28.0)
    gap = (np.abs(angle - math.pi / 2) < math.radians(30)) & (labels == MYO)
    labels[gap] = 0  # missing wall, like the LV outflow tract of a basal slice
    result = slice_thickness(labels, spacing)
    in_gap = np.abs(result.angles_rad - math.pi / 2) < math.radians(28)
    assert np.all(np.isnan(result.thickness_mm[in_gap]))
    assert np.all(result.status[in_gap] == RayStatus.OPEN)
    assert np.any(result.status == RayStatus.NEXT_TO_OPEN)
    finite = np.isfinite(result.thickness_mm)
    assert finite.sum() >= 75
    assert np.all(np.abs(result.thickness_mm[finite] - 8.0) < 0.5)  # what is measured is a real wall


def test_blood_pool_running_out_through_the_gap_also_gives_nan() -> None:
    spacing = (0.5, 0.5)
    radius, angle = polar_grid((80.0, 80.0), spacing)
    labels = ring(radius, 20.0, 28.0)
    labels[(np.abs(angle) < math.radians(20)) & (radius < 34.0)] = BLOOD  # outflow tract opening to +col
    result = slice_thickness(labels, spacing)
    assert np.all(np.isnan(result.thickness_mm[np.abs(np.angle(np.exp(1j * result.angles_rad))) < math.radians(18)]))
    assert np.nanmax(result.thickness_mm) < 8.5


def test_wall_touching_the_image_edge_is_not_measured() -> None:
    radius, _ = polar_grid((60.0, 60.0), (1.0, 1.0))
    labels = ring(radius, 20.0, 28.0)[:, 4:]  # the wall on the low-column side is cut by the image edge
    result = slice_thickness(labels, (1.0, 1.0))
    assert np.any(result.status == RayStatus.AT_IMAGE_EDGE)
    assert np.all(np.isnan(result.thickness_mm[result.status == RayStatus.AT_IMAGE_EDGE]))


def test_neighbour_agreement_ignores_one_ray() -> None:
    assert neighbour_agreed([8.0, 8.0, 30.0, 8.0]).tolist() == [8.0, 8.0, 8.0, 8.0]
    assert np.isnan(neighbour_agreed([8.0, np.nan, 9.0, np.nan])).all()
    agreed = neighbour_agreed([8.0, 16.0, 16.0, 8.0, 8.0, 8.0])
    assert np.nanmax(agreed) == 16.0  # two neighbouring rays confirm each other


# ------------------------------------------------------------------------------------------ maximum thickness


def bulging_stack(bulge_epi_mm: float, n_slices: int = 3) -> np.ndarray:
    radius, angle = polar_grid((100.0, 100.0), (0.5, 0.5))
    r_epi = np.where(np.abs(angle) < math.radians(20), bulge_epi_mm, 28.0)
    return np.stack([ring(radius, 20.0, r_epi)] * n_slices)


def test_max_wall_thickness_of_a_16_mm_bulge_meets_the_hypertrophy_criterion() -> None:
    result = max_wall_thickness(bulging_stack(36.0), (8.0, 0.5, 0.5))
    assert HYPERTROPHY_THRESHOLD_MM == 15.0
    assert 15.0 <= result.thickness_mm <= 16.5
    assert result.meets_threshold
    assert abs(result.angle_rad) < math.radians(20)  # type: ignore[arg-type]
    plain = max_wall_thickness(bulging_stack(28.0), (8.0, 0.5, 0.5))
    assert plain.thickness_mm == pytest.approx(8.0, abs=0.5)
    assert not plain.meets_threshold


def test_a_single_noisy_ray_does_not_set_the_maximum() -> None:
    radius, _ = polar_grid((100.0, 100.0), (0.5, 0.5))
    labels = ring(radius, 20.0, 28.0)
    centre = labels.shape[0] // 2
    labels[centre, labels.shape[1] // 2 + 56 : labels.shape[1] // 2 + 76] = MYO  # a 1-pixel spike along ray 0
    stack = np.stack([labels] * 3)
    spiked = aha_segments(stack, (8.0, 0.5, 0.5)).slices[0]
    assert spiked is not None and np.nanmax(spiked.crossing_mm) > 17.0  # the spike is on a ray
    assert max_wall_thickness(stack, (8.0, 0.5, 0.5)).thickness_mm < 8.6


# ------------------------------------------------------------------------------------------------ AHA model


def test_aha_angles_to_segments() -> None:
    assert aha_segment([61, 119, 121, 179, 181, 239, 241, 299, 301, 359, 1, 59], Level.BASAL).tolist() == [
        1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
    ]  # fmt: skip
    assert aha_segment([90, 150, 210, 270, 330, 30], "mid").tolist() == [7, 8, 9, 10, 11, 12]
    assert aha_segment([46, 134, 136, 224, 226, 314, 316, 44], Level.APICAL).tolist() == [
        13,
        13,
        14,
        14,
        15,
        15,
        16,
        16,
    ]
    assert {AHA_SEGMENT_NAMES[s] for s in SEPTAL_SEGMENTS} == {
        "basal anteroseptal", "basal inferoseptal", "mid anteroseptal", "mid inferoseptal", "apical septal",
    }  # fmt: skip
    with pytest.raises(ValueError, match="apical cap"):
        aha_segment(0.0, Level.APEX)


def test_levels_thirds_and_base_found_from_the_cavity_area() -> None:
    stack = heart(n_slices=10)
    result = aha_segments(stack, SPACING_3D)
    assert result.base_first
    assert [level.value for level in result.levels] == ["basal"] * 4 + ["mid"] * 3 + ["apical"] * 3  # type: ignore[union-attr]
    reversed_ = aha_segments(stack[::-1], SPACING_3D)
    assert not reversed_.base_first
    assert reversed_.levels == result.levels[::-1]
    assert "decreases" in result.notes[0] and "increases" in reversed_.notes[0]


def test_apical_cap_and_empty_slices_get_their_level() -> None:
    stack = heart(n_slices=6)
    cap = np.where(stack[-1] == MYO, MYO, 0).astype(np.uint8)  # myocardium without cavity
    full = np.concatenate([np.zeros_like(stack[:1]), stack, cap[None]])
    result = aha_segments(full, SPACING_3D)
    assert result.levels[0] is None and result.slices[0] is None
    assert result.levels[-1] is Level.APEX and result.slices[-1] is None
    assert result.levels[1] is Level.BASAL


def test_nearly_closed_apical_cavity_is_left_out_of_segments_and_maximum() -> None:
    stack = heart(n_slices=6, septal_extra_mm=0.0)
    radius, _ = polar_grid((130.0, 130.0), SPACING_3D[1:])
    tip = ring(radius, 3.0, 16.0)  # a 13 mm "wall" round a 3 mm cavity: the slice grazes the curved apex
    result = aha_segments(np.concatenate([stack, tip[None]]), SPACING_3D)
    assert result.small_cavity_slices == (6,)
    assert result.levels[6] is Level.APICAL and result.slices[6] is not None
    assert np.nanmax(result.slices[6].thickness_mm) > 12.0  # type: ignore[union-attr]
    assert result.max_wall_thickness().thickness_mm < 9.0
    assert max(result.mean_mm[s] for s in (13, 14, 15, 16)) < 9.0
    assert any("tangentially" in note for note in result.notes)


@pytest.mark.parametrize("variant", ["original", "slices reversed", "flipped left-right", "both"])
def test_septal_segments_are_on_the_rv_side_in_every_orientation(variant: str) -> None:
    stack = heart(septal_extra_mm=5.0)
    if variant in ("slices reversed", "both"):
        stack = stack[::-1]
    if variant in ("flipped left-right", "both"):
        stack = stack[:, :, ::-1]
    result = aha_segments(stack, SPACING_3D)
    assert not result.fallback
    assert min(result.mean_mm[s] for s in SEPTAL_SEGMENTS) > max(result.mean_mm[s] for s in NON_SEPTAL) + 0.5
    assert all(7.5 <= result.mean_mm[s] <= 8.5 for s in (5, 6, 11, 12, 16))  # lateral wall, opposite the RV
    # every ray pointing into the RV crescent is in a septal segment
    for k in np.flatnonzero([level in (Level.BASAL, Level.MID) for level in result.levels]):
        labels, sl = stack[k], result.slices[k]
        if not (labels == RV).any():
            continue
        rr, cc = np.nonzero(labels == RV)
        towards = math.atan2((rr.mean() - sl.centre_rc[0]) * 1.0, (cc.mean() - sl.centre_rc[1]) * 1.2)
        ray = int(np.argmin(np.abs(np.angle(np.exp(1j * (sl.angles_rad - towards))))))
        assert result.ray_segments[k][ray] in SEPTAL_SEGMENTS


def test_anterior_and_inferior_follow_the_view_from_the_apex_and_not_the_slice_order() -> None:
    stack = heart(septal_extra_mm=3.0, anterior_extra_mm=4.0)
    result = aha_segments(stack, SPACING_3D)
    assert result.orientation_from == "display" and result.aha_rotation == -1
    assert result.mean_mm[1] > result.mean_mm[4] + 1.5 and result.mean_mm[7] > result.mean_mm[10] + 1.5
    reversed_ = aha_segments(stack[::-1], SPACING_3D)  # same images, other slice order: same anatomy
    for s in SEGMENTS:
        assert reversed_.mean_mm[s] == pytest.approx(result.mean_mm[s], abs=1e-9)
    # a mirror image without an affine saying so: anterior and inferior swap, the septum stays
    bisector = aha_segments(stack, SPACING_3D, origin=SegmentOrigin.SEPTAL_BISECTOR)
    mirrored = aha_segments(stack[:, :, ::-1], SPACING_3D, origin="septal-bisector")
    for s in SEGMENTS:
        assert mirrored.mean_mm[MIRRORED[s]] == pytest.approx(bisector.mean_mm[s], abs=0.05)


def oblique_affine(spacing_crs: tuple[float, float, float]) -> np.ndarray:
    a, b = math.radians(35.0), math.radians(-25.0)
    rot_z = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rot_z @ rot_x @ np.diag(spacing_crs)
    return affine


def flipped_affine(affine: np.ndarray, axis: int, n: int) -> np.ndarray:
    """The affine of the array flipped along voxel ``axis`` (0 col, 1 row, 2 slice) of length ``n``."""
    flip = np.eye(4)
    flip[axis, axis] = -1.0
    flip[axis, 3] = n - 1
    return affine @ flip


def test_with_a_real_affine_every_stored_orientation_gives_the_same_segments() -> None:
    stack = heart(septal_extra_mm=3.0, anterior_extra_mm=4.0)
    n_slices, _, n_cols = stack.shape
    affine = oblique_affine((SPACING_3D[2], SPACING_3D[1], SPACING_3D[0]))
    reference = aha_segments(stack, SPACING_3D, affine=affine)
    assert reference.orientation_from == "affine"
    variants = {
        "slices reversed": (stack[::-1], flipped_affine(affine, 2, n_slices)),
        "flipped left-right": (stack[:, :, ::-1], flipped_affine(affine, 0, n_cols)),
        "both": (stack[::-1, :, ::-1], flipped_affine(flipped_affine(affine, 2, n_slices), 0, n_cols)),
    }
    for name, (labels, variant_affine) in variants.items():
        result = aha_segments(labels, SPACING_3D, affine=variant_affine)
        for s in SEGMENTS:
            assert result.mean_mm[s] == pytest.approx(reference.mean_mm[s], abs=0.05), (name, s)
    # an axis-aligned affine (ACDC files: voxel sizes only) says nothing about orientation
    aligned = aha_segments(stack, SPACING_3D, affine=np.diag([1.2, 1.0, 10.0, 1.0]))
    assert aligned.orientation_from == "display"
    assert aligned.mean_mm == aha_segments(stack, SPACING_3D).mean_mm


def test_anterior_insertion_point_is_the_border_of_segments_1_and_2() -> None:
    stack = heart(septal_extra_mm=0.0)
    result = aha_segments(stack, SPACING_3D)
    for k in range(6):  # slices with their own RV
        assert result.insertion_source[k] == k
        anterior, inferior = result.insertion_angles_rad[k]  # type: ignore[misc]
        sl = result.slices[k]
        psi = result.aha_angles_deg[k]
        nearest = int(np.argmin(np.abs(np.angle(np.exp(1j * (sl.angles_rad - anterior))))))
        assert psi[nearest] == pytest.approx(120.0, abs=360.0 / 100)
        # the crescent spans 120 deg about pi: seen from the apex (row 0 up) the anterior end is at the higher angle
        assert np.degrees(anterior) == pytest.approx(240.0, abs=6.0)
        assert np.degrees(inferior) == pytest.approx(120.0, abs=6.0)


def test_slices_without_rv_borrow_the_nearest_insertion_points() -> None:
    result = aha_segments(heart(rv_slices=6), SPACING_3D)
    assert result.insertion_source == (0, 1, 2, 3, 4, 5, 5, 5, 5)
    assert not result.fallback
    assert any("nearest slice" in note for note in result.notes)


def test_no_rv_anywhere_falls_back_with_a_flag() -> None:
    result = aha_segments(heart(rv_slices=0), SPACING_3D)
    assert result.fallback
    assert any(note.startswith("FALLBACK") for note in result.notes)
    assert all(source is None for source in result.insertion_source)
    assert all(math.isfinite(result.mean_mm[s]) for s in SEGMENTS)


def test_rv_insertion_angles_of_a_crescent() -> None:
    stack = heart()
    start, end = rv_insertion_angles(stack[0], SPACING_3D[1:])  # type: ignore[misc]
    assert np.degrees(start) == pytest.approx(120.0, abs=6.0)
    assert np.degrees(end) == pytest.approx(240.0, abs=6.0)
    assert rv_insertion_angles(stack[-1], SPACING_3D[1:]) is None  # no RV on the apical slice


def test_thickening_of_a_thin_ed_ring_to_a_thick_es_ring() -> None:
    ed = heart(septal_extra_mm=0.0, wall_mm=8.0, cavity_mm=(24.0, 12.0))
    es = heart(septal_extra_mm=0.0, wall_mm=12.0, cavity_mm=(18.0, 8.0))
    result = segment_thickening(ed, es, SPACING_3D)
    for s in SEGMENTS:
        assert result.ed.mean_mm[s] == pytest.approx(8.0, abs=0.4)
        assert result.es.mean_mm[s] == pytest.approx(12.0, abs=0.4)
        assert result.percent[s] == pytest.approx(50.0, abs=6.0)
    document = json.dumps(result.to_dict(), allow_nan=False)
    assert '"thickening_percent"' in document


def test_results_convert_to_strict_json() -> None:
    stack = heart()
    stack[0][(stack[0] == MYO) & (np.arange(stack.shape[2]) > 70)[None, :]] = 0  # an open basal ring
    result = aha_segments(stack, SPACING_3D)
    document = {
        "segments": result.to_dict(),
        "max": result.max_wall_thickness().to_dict(),
        "slice": result.slices[0].to_dict(),  # type: ignore[union-attr]
    }
    text = json.dumps(document, allow_nan=False)
    assert '"open"' in text
    assert set(result.to_dict()["segments"]) == {str(s) for s in SEGMENTS}


# --------------------------------------------------------------------------------------------------- errors


def test_empty_lv_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no LV blood pool"):
        slice_thickness(np.zeros((20, 20), np.uint8), (1.0, 1.0))
    only_rv = np.zeros((3, 20, 20), np.uint8)
    only_rv[:, 5:10, 5:10] = RV
    with pytest.raises(ValueError, match="LV is empty"):
        aha_segments(only_rv, (8.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="LV is empty"):
        max_wall_thickness(np.zeros((2, 10, 10), np.uint8), (8.0, 1.0, 1.0))


@pytest.mark.parametrize("bad", [4, 255, -1, 2.5, np.nan])
def test_unexpected_label_values_are_a_clear_error(bad: float) -> None:
    labels = heart(n_slices=3).astype(np.float64)
    labels[0, 0, 0] = bad
    with pytest.raises(ValueError, match="unexpected label values"):
        aha_segments(labels, SPACING_3D)


def test_shape_spacing_and_ray_errors() -> None:
    radius, _ = polar_grid((60.0, 60.0), (1.0, 1.0))
    labels = ring(radius, 15.0, 22.0)
    with pytest.raises(ValueError, match="2D label map"):
        slice_thickness(labels[None], (1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        slice_thickness(labels, (1.0, 0.0))
    with pytest.raises(ValueError, match="needs 3 values"):
        aha_segments(labels[None], (1.0, 1.0))
    with pytest.raises(ValueError, match="n_rays"):
        slice_thickness(labels, (1.0, 1.0), n_rays=4)
    with pytest.raises(ValueError, match="one grid"):
        segment_thickening(labels[None], labels[None, :-1], (8.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="singular"):
        aha_segments(labels[None], (8.0, 1.0, 1.0), affine=np.zeros((4, 4)))


# ---------------------------------------------------------------------------------------------- bull's-eye


def test_bullseye_layout_follows_the_aha_convention() -> None:
    inner, outer, start, end = segment_wedge(1)
    assert (inner, outer) == (3.0, 4.0) and (start + end) / 2 == 90.0  # basal anterior at the top, outside
    for segment in SEPTAL_SEGMENTS:  # septum on the left
        _, _, start, end = segment_wedge(segment)
        assert 90.0 < (start + end) / 2 < 270.0
    assert segment_wedge(14)[:2] == (1.0, 2.0) and segment_wedge(8)[:2] == (2.0, 3.0)
    with pytest.raises(ValueError):
        segment_wedge(18)


def test_bullseye_png_is_written(tmp_path) -> None:
    from PIL import Image

    values = {s: 6.0 + 0.3 * s for s in SEGMENTS}
    values[5] = math.nan
    path = plot_bullseye(values, tmp_path / "thickness.png", "ED wall thickness", "mm", vmin=5.0, vmax=12.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] > 300 and image.size[1] > 300
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert np.any(np.all(pixels == (0xB3, 0xB3, 0xB3), axis=1))  # the NaN segment is grey
    with pytest.raises(OutputError):
        plot_bullseye(values, path, "again", "mm")
    plot_bullseye({1: 1.0}, path, "one value", "%", overwrite=True)
    with pytest.raises(ValueError, match="1-17"):
        plot_bullseye({0: 1.0}, tmp_path / "bad.png", "bad", "mm")
