from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from opencmr.evaluate.metrics import (
    BOTH_EMPTY_DICE,
    BOTH_EMPTY_DISTANCE_MM,
    MaskStatus,
    assd,
    dice,
    distance_metrics,
    hausdorff,
    hd95,
    mask_status,
    surface_distances,
)

ACDC_SPACING = (10.0, 1.5, 1.5)  # (slice, row, col) mm


def medpy_surface_distances(a: np.ndarray, b: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """medpy.metric.binary.__surface_distances, both directions, on the whole array (no cropping)."""
    footprint = ndimage.generate_binary_structure(a.ndim, 1)
    a_surface = a ^ ndimage.binary_erosion(a, structure=footprint, iterations=1)
    b_surface = b ^ ndimage.binary_erosion(b, structure=footprint, iterations=1)
    a_to_b = ndimage.distance_transform_edt(~b_surface, sampling=spacing)[a_surface]
    b_to_a = ndimage.distance_transform_edt(~a_surface, sampling=spacing)[b_surface]
    return a_to_b, b_to_a


def test_dice_of_known_overlaps() -> None:
    pred = np.zeros((1, 1, 10), bool)
    gt = np.zeros((1, 1, 10), bool)
    pred[..., 0:4] = True  # 4 voxels
    gt[..., 1:7] = True  # 6 voxels, 3 shared
    assert dice(pred, gt) == pytest.approx(2 * 3 / (4 + 6))
    assert dice(gt, gt) == 1.0
    assert dice(pred, np.roll(pred, 5, axis=-1)) == 0.0


def test_slabs_one_slice_apart_are_one_slice_spacing_apart() -> None:
    pred = np.zeros((4, 5, 5), bool)
    gt = np.zeros((4, 5, 5), bool)
    pred[1:3] = True
    gt[2:4] = True
    # two-slice slabs: every voxel is a surface voxel; half of each slab lies on the other
    pred_to_gt, gt_to_pred = surface_distances(pred, gt, ACDC_SPACING)
    assert sorted(set(pred_to_gt.tolist())) == [0.0, 10.0] and np.count_nonzero(pred_to_gt == 10.0) == 25
    assert sorted(set(gt_to_pred.tolist())) == [0.0, 10.0] and np.count_nonzero(gt_to_pred == 10.0) == 25
    assert hausdorff(pred, gt, ACDC_SPACING) == 10.0
    assert hd95(pred, gt, ACDC_SPACING) == 10.0
    assert assd(pred, gt, ACDC_SPACING) == pytest.approx(5.0)
    assert hausdorff(pred, gt, (5.0, 1.5, 1.5)) == 5.0


def test_in_plane_offset_uses_the_pixel_spacing() -> None:
    pred = np.zeros((1, 6, 12), bool)
    gt = np.zeros((1, 6, 12), bool)
    pred[0, 1:5, 2:8] = True
    gt[0, 1:5, 4:10] = True  # two columns to the right
    # one slice: every voxel is surface; per row the two leftmost pred voxels are 2 and 1 columns
    # from gt (3.0 and 1.5 mm), and symmetrically for gt -> pred; 24 voxels per mask
    hd, hd_95, mean = distance_metrics(pred, gt, ACDC_SPACING)
    assert hd == pytest.approx(3.0)
    assert mean == pytest.approx(4 * (3.0 + 1.5) / 24)
    assert hd_95 == pytest.approx(3.0)  # 8 of the 48 stacked distances are 3.0 mm
    assert hausdorff(pred, gt, (10.0, 1.0, 1.0)) == pytest.approx(2.0)


def test_anisotropic_spacing_changes_the_answer_and_follows_axis_order() -> None:
    pred = np.zeros((2, 2, 1), bool)
    gt = np.zeros((2, 2, 1), bool)
    pred[0, 0, 0] = gt[1, 1, 0] = True  # one slice and one row apart
    assert hausdorff(pred, gt, (10.0, 1.5, 1.5)) == pytest.approx(math.hypot(10.0, 1.5))
    assert hausdorff(pred, gt, (1.0, 1.0, 1.0)) == pytest.approx(math.sqrt(2.0))
    slice_apart = np.zeros((2, 1, 1), bool), np.zeros((2, 1, 1), bool)
    slice_apart[0][0] = slice_apart[1][1] = True
    assert hausdorff(*slice_apart, (10.0, 1.0, 1.0)) == 10.0  # spacing is (slice, row, col)
    assert hausdorff(*slice_apart, (1.0, 1.0, 10.0)) == 1.0


def test_hd95_discounts_a_single_outlier_voxel() -> None:
    gt = np.zeros((1, 10, 10), bool)
    gt[0, :, :5] = True  # 50 voxels, all surface (one slice)
    pred = gt.copy()
    pred[0, 0, 9] = True  # 5 columns (7.5 mm) from gt column 4
    # stacked distances: 51 (pred -> gt) + 50 (gt -> pred), all 0 but one 7.5; 95th percentile = 0
    assert hausdorff(pred, gt, ACDC_SPACING) == pytest.approx(7.5)
    assert hd95(pred, gt, ACDC_SPACING) == 0.0
    assert assd(pred, gt, ACDC_SPACING) == pytest.approx((7.5 / 51 + 0.0) / 2)


def test_hd95_stacks_both_directions_as_medpy() -> None:
    gt = np.zeros((1, 1, 24), bool)
    gt[..., :18] = True
    pred = gt.copy()
    pred[..., 20:22] = True  # two outliers, 3 and 4 columns from gt
    # stacked: 36 zeros, 4.5, 6.0 -> numpy.percentile(..., 95) at rank 35.15 = 0.15 * 4.5;
    # the larger directed 95th percentile would be 4.5 + 0.05 * 1.5 (pred -> gt: rank 18.05 of 20)
    assert hd95(pred, gt, ACDC_SPACING) == pytest.approx(0.15 * 4.5)
    assert hausdorff(pred, gt, ACDC_SPACING) == 6.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surface_distances_match_the_medpy_algorithm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (6, 30, 28)
    pred = ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.5
    gt = ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.5
    pred[:, :4, :] = False  # leave some background so that the crop is smaller than the array
    gt[2:5, 10:14, -3:] = True  # and touch the array border
    spacing = (8.0, 1.25, 1.4)
    ours = surface_distances(pred, gt, spacing)
    reference = medpy_surface_distances(pred, gt, spacing)
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b)


def test_empty_mask_conventions() -> None:
    empty = np.zeros((2, 3, 3), bool)
    full = empty.copy()
    full[0, 1, 1] = True
    assert mask_status(empty, empty) is MaskStatus.BOTH_EMPTY
    assert (BOTH_EMPTY_DICE, BOTH_EMPTY_DISTANCE_MM) == (1.0, 0.0)
    assert dice(empty, empty) == 1.0
    assert distance_metrics(empty, empty, ACDC_SPACING) == (0.0, 0.0, 0.0)
    assert math.isnan(dice(empty, empty, both_empty=math.nan))
    assert all(math.isnan(v) for v in distance_metrics(empty, empty, ACDC_SPACING, both_empty=math.nan))
    for pred, gt, status in [(empty, full, MaskStatus.PRED_EMPTY), (full, empty, MaskStatus.GT_EMPTY)]:
        assert mask_status(pred, gt) is status
        assert dice(pred, gt) == 0.0
        assert all(math.isnan(f(pred, gt, ACDC_SPACING)) for f in (hausdorff, hd95, assd))
        with pytest.raises(ValueError, match=status.value):
            surface_distances(pred, gt, ACDC_SPACING)
    assert mask_status(full, full) is MaskStatus.OK


def test_inputs_are_checked() -> None:
    mask = np.ones((2, 3, 3), bool)
    with pytest.raises(TypeError, match="boolean"):
        dice(mask.astype(np.uint8), mask)
    with pytest.raises(ValueError, match="shape"):
        hausdorff(mask, mask[:1], ACDC_SPACING)
    with pytest.raises(ValueError, match="one spacing per mask axis"):
        hausdorff(mask, mask, (1.5, 1.5))
    with pytest.raises(ValueError, match="positive"):
        hausdorff(mask, mask, (0.0, 1.5, 1.5))
