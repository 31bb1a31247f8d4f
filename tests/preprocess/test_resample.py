from __future__ import annotations

import numpy as np
import pytest

from opencmr.io.study import CineStudy, Geometry, LabelMap
from opencmr.preprocess.resample import in_plane_grid, resample_in_plane, resample_to_grid
from tests.conftest import blob_labels, oblique_affine


def geometry(spacing: tuple[float, float] = (1.5, 1.25)) -> Geometry:
    return Geometry(oblique_affine((spacing[1], spacing[0], 8.0)), (4, 40, 48))


def labels_on(geo: Geometry) -> LabelMap:
    data = np.transpose(blob_labels((48, 40, 4)), (2, 1, 0))[np.newaxis]
    return LabelMap(data, geo, (3,))


def world(geo: Geometry, index_crs: np.ndarray) -> np.ndarray:
    return (np.asarray(geo.affine) @ np.append(index_crs, 1.0))[:3]


def test_grid_keeps_field_of_view_and_slices() -> None:
    geo = geometry()
    new = in_plane_grid(geo, (1.0, 1.0))
    assert new.shape == (4, 60, 60)
    assert new.spacing == pytest.approx((8.0, 1.0, 1.0))
    # the outer corner of the field of view and every slice centre stay where they were
    np.testing.assert_allclose(world(new, np.array([-0.5, -0.5, 0.0])), world(geo, np.array([-0.5, -0.5, 0.0])), atol=1e-9)
    np.testing.assert_allclose(world(new, np.array([59.5, 59.5, 3.0])), world(geo, np.array([47.5, 39.5, 3.0])), atol=1e-9)
    with pytest.raises(ValueError, match="positive"):
        in_plane_grid(geo, (0.0, 1.0))


def test_labels_use_nearest_neighbour_and_round_trip_exactly() -> None:
    labels = labels_on(geometry((2.0, 2.0)))
    up = resample_in_plane(labels, (1.0, 1.0))
    assert isinstance(up, LabelMap) and up.data.dtype == np.uint8
    assert set(np.unique(up.data).tolist()) == {0, 1, 2, 3}
    back = resample_to_grid(up, labels.geometry)
    np.testing.assert_array_equal(back.data, labels.data)
    assert back.frame_numbers == (3,)


def test_label_volumes_are_preserved() -> None:
    geo = Geometry(oblique_affine((1.25, 1.5, 8.0)), (2, 80, 96))
    r, c = np.mgrid[:80, :96]
    radius = np.hypot((r - 40) * 1.5, (c - 52) * 1.25)  # in mm
    plane = np.where(radius < 22, 2, 0) + np.where(radius < 15, 1, 0)
    plane[(np.hypot((r - 40) * 1.5, (c - 30) * 1.25) < 26) & (radius >= 22)] = 1
    labels = LabelMap(np.stack([plane, plane])[np.newaxis].astype(np.uint8), geo, (0,))
    new = resample_in_plane(labels, (1.0, 1.0))
    for value in (1, 2, 3):
        before = np.count_nonzero(labels.data == value) * labels.geometry.voxel_volume_ml
        after = np.count_nonzero(new.data == value) * new.geometry.voxel_volume_ml
        assert after == pytest.approx(before, rel=0.02), value


def test_images_are_interpolated_linearly_in_world_coordinates() -> None:
    geo = geometry((1.5, 1.25))
    s, r, c = np.meshgrid(np.arange(4), np.arange(40), np.arange(48), indexing="ij")
    image = (3.0 * c + 2.0 * r + 100.0 * s)[np.newaxis].astype(np.float32)  # linear in the index
    study = CineStudy(image, geo, labels=labels_on(geo), frame_numbers=(3,))
    new = resample_in_plane(study, (1.0, 1.1))
    assert isinstance(new, CineStudy) and isinstance(new.labels, LabelMap)
    assert new.labels.geometry.same_grid(new.geometry)
    inverse = np.linalg.inv(np.asarray(geo.affine))
    for index in ([10.0, 7.0, 2.0], [30.0, 20.0, 1.0], [5.0, 33.0, 3.0]):
        c0, r0, s0, _ = inverse @ np.append(world(new.geometry, np.array(index)), 1.0)
        expected = 3.0 * c0 + 2.0 * r0 + 100.0 * s0
        actual = new.image[0, int(index[2]), int(index[1]), int(index[0])]
        assert actual == pytest.approx(expected, abs=1e-3)


def test_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="CineStudy or LabelMap"):
        resample_to_grid(np.zeros((1, 2, 3, 4)), geometry())  # type: ignore[type-var]
