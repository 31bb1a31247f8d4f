from __future__ import annotations

import numpy as np
import pytest

from opencmr.io.study import CineStudy, Geometry, LabelMap, StudyMetadata
from opencmr.labels import DiagnosticGroup, Label
from tests.conftest import oblique_affine


def geometry() -> Geometry:
    return Geometry(oblique_affine((1.25, 1.5, 8.0)), (3, 10, 12), slice_thickness_mm=6.0)


def test_spacing_is_derived_from_the_affine_and_distinct_from_thickness() -> None:
    geo = geometry()
    assert geo.spacing == pytest.approx((8.0, 1.5, 1.25))
    assert geo.pixel_spacing_mm == pytest.approx((1.5, 1.25))
    assert geo.slice_spacing_mm == pytest.approx(8.0)
    assert geo.slice_thickness_mm == 6.0
    assert geo.voxel_volume_ml == pytest.approx(8.0 * 1.5 * 1.25 / 1000)
    np.testing.assert_allclose(np.linalg.norm(geo.directions, axis=0), 1.0)


def test_geometry_rejects_singular_affine() -> None:
    with pytest.raises(ValueError, match="zero voxel size"):
        Geometry(np.diag([1.0, 1.0, 0.0, 1.0]), (2, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        Geometry(np.full((4, 4), np.nan), (2, 2, 2))


def test_study_frames_and_read_only_arrays() -> None:
    image = np.zeros((2, 3, 10, 12), np.float32)
    labels = LabelMap(np.zeros((1, 3, 10, 12), np.uint8), geometry(), (11,))
    study = CineStudy(image, geometry(), StudyMetadata(ed_frame=0, es_frame=11), frame_numbers=(0, 11), labels=labels)
    assert study.frame_index(11) == 1
    assert study.frame(11).shape == (3, 10, 12)
    with pytest.raises(KeyError, match="frame 5 is not in this study"):
        study.frame(5)
    with pytest.raises(ValueError):
        study.image[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        labels.data[0, 0, 0, 0] = 1


def test_study_validation() -> None:
    with pytest.raises(ValueError, match="4D"):
        CineStudy(np.zeros((3, 10, 12)), geometry())
    with pytest.raises(ValueError, match="does not match geometry"):
        CineStudy(np.zeros((1, 3, 10, 11)), geometry())
    with pytest.raises(ValueError, match="NaN"):
        CineStudy(np.full((1, 3, 10, 12), np.nan), geometry())
    with pytest.raises(ValueError, match="increasing distinct"):
        CineStudy(np.zeros((2, 3, 10, 12)), geometry(), frame_numbers=(3, 1))
    other = Geometry(np.diag([1.0, 1.0, 1.0, 1.0]), (3, 10, 12))
    with pytest.raises(ValueError, match="not on the image grid"):
        CineStudy(np.zeros((1, 3, 10, 12)), geometry(), labels=LabelMap(np.zeros((1, 3, 10, 12), np.uint8), other, (0,)))


def test_label_map_only_accepts_the_label_convention() -> None:
    with pytest.raises(ValueError, match=r"label values \[4\]"):
        LabelMap(np.full((1, 3, 10, 12), 4, np.uint8), geometry(), (0,))
    with pytest.raises(ValueError, match="integer"):
        LabelMap(np.zeros((1, 3, 10, 12), np.float32), geometry(), (0,))


def test_label_convention_is_acdc() -> None:
    assert [int(v) for v in Label] == [0, 1, 2, 3]
    assert Label(1) is Label.RV_BLOOD_POOL and Label(2) is Label.LV_MYOCARDIUM and Label(3) is Label.LV_BLOOD_POOL
    assert DiagnosticGroup.parse(" dcm ") is DiagnosticGroup.DCM
    with pytest.raises(ValueError, match="unknown diagnostic group"):
        DiagnosticGroup.parse("ABC")


def test_metadata_to_dict_is_json_friendly() -> None:
    meta = StudyMetadata(group=DiagnosticGroup.RV, notes=("gap",))
    as_dict = meta.to_dict()
    assert as_dict["group"] == "RV" and as_dict["notes"] == ["gap"]
