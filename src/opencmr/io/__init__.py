"""Studies in and out: the study model, NIfTI files, ACDC folders and DICOM series.

The DICOM functions live in :mod:`opencmr.io.dicom`,
:mod:`opencmr.io.dicom_write` and :mod:`opencmr.io.dicom_write_enhanced` and
are imported from there (pydicom is loaded only when DICOM is used).
"""

from opencmr.io.acdc import parse_info_cfg, read_acdc_folder
from opencmr.io.nifti import read_nifti, write_label_map, write_study_nifti
from opencmr.io.read import read_study
from opencmr.io.study import CineStudy, Geometry, LabelMap, StudyMetadata

__all__ = [
    "CineStudy",
    "Geometry",
    "LabelMap",
    "StudyMetadata",
    "parse_info_cfg",
    "read_acdc_folder",
    "read_nifti",
    "read_study",
    "write_label_map",
    "write_study_nifti",
]
