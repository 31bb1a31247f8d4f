from __future__ import annotations

import numpy as np

from opencmr.segment.postprocess import fill_holes, keep_largest_component, postprocess_labels
from tests.conftest import blob_labels


def heart(slices: int = 3) -> np.ndarray:
    """``(slices, rows, cols)``: LV blood pool (3) in a myocardial ring (2), RV (1) beside it."""
    return np.transpose(blob_labels((40, 40, slices)), (2, 1, 0)).copy()


def test_largest_component_is_kept_per_structure() -> None:
    labels = heart()
    noisy = labels.copy()
    noisy[0, 1:3, 1:3] = 3  # a stray LV blob far from the heart
    noisy[2, 36:39, 36:39] = 1  # a stray RV blob
    noisy[1, 0, 38] = 2  # one stray myocardium voxel
    out = keep_largest_component(noisy)
    np.testing.assert_array_equal(out, labels)
    assert noisy[0, 1, 1] == 3  # the input is left alone


def test_components_touching_diagonally_across_slices_are_one() -> None:
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[0, 2:5, 2:5] = 3
    labels[1, 5:9, 5:9] = 3  # touches the first block only at a corner, in the next slice
    labels[0, 8, 0] = 3  # isolated
    out = keep_largest_component(labels)
    assert out[0, 2:5, 2:5].all() and out[1, 5:9, 5:9].all() and out[0, 8, 0] == 0


def test_holes_in_blood_pools_are_filled_but_not_the_myocardial_ring() -> None:
    labels = heart()
    holed = labels.copy()
    lv = np.argwhere(labels[1] == 3)
    r, c = lv[len(lv) // 2]
    holed[1, r, c] = 0  # a papillary muscle labelled background inside the LV
    rv = np.argwhere(labels[2] == 1)
    r, c = rv[len(rv) // 2]
    holed[2, r - 1 : r + 1, c - 1 : c + 1] = 0  # a hole inside the RV
    np.testing.assert_array_equal(fill_holes(holed), labels)

    ring = labels.copy()
    ring[ring == 3] = 0  # myocardium around an empty cavity: not a hole to fill with myocardium
    np.testing.assert_array_equal(fill_holes(ring), ring)
    np.testing.assert_array_equal(postprocess_labels(ring), ring)


def test_postprocess_combines_both_steps() -> None:
    labels = heart()
    noisy = labels.copy()
    lv = np.argwhere(labels[0] == 3)
    r, c = lv[len(lv) // 2]
    noisy[0, r, c] = 0
    noisy[0, 0:2, 0:2] = 3
    np.testing.assert_array_equal(postprocess_labels(noisy), labels)
    empty = np.zeros((2, 8, 8), np.uint8)
    np.testing.assert_array_equal(postprocess_labels(empty), empty)
