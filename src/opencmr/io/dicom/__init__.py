"""DICOM input: cine studies from scanner exports (classic and enhanced multi-frame MR, compressed, split series).

:func:`read_dicom` reads a folder tree, a zip archive or one multi-frame file
and returns the short-axis cine as a :class:`~opencmr.io.study.CineStudy`;
:func:`scan_dicom_folder` says what every series is and why it was or was not
chosen. The modules: :mod:`~opencmr.io.dicom.sources` (files and archives),
:mod:`~opencmr.io.dicom.headers` (image records from classic and multi-frame
headers), :mod:`~opencmr.io.dicom.stacks` (stack assembly and short-axis
choice), :mod:`~opencmr.io.dicom.reader` (pixels, geometry, metadata, provenance).
"""

from opencmr.io.dicom.reader import ProgressCallback, provenance, read_dicom, read_dicom_folder, scan_dicom_folder
from opencmr.io.dicom.stacks import SeriesSummary

__all__ = ["ProgressCallback", "SeriesSummary", "provenance", "read_dicom", "read_dicom_folder", "scan_dicom_folder"]
