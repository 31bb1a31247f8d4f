"""Synthetic short-axis cine studies with known ground truth.

A continuous, beating heart model (:mod:`opencmr.phantom.anatomy`) with
plausible parameters for the five ACDC groups (:mod:`opencmr.phantom.groups`)
is imaged as a double-oblique bSSFP cine stack, base to apex, over the whole
chest, with partial volume, trabeculations, patchy epicardial fat,
pericardium, blood-flow inhomogeneity, coil sensitivity, an in-plane
point-spread function and Rician noise (:mod:`opencmr.phantom.render`), its
shapes, contrast and texture measured against the ACDC images. The ground truth
(:mod:`opencmr.phantom.truth`) is integrated from the same implicit functions
that draw the images and labels.

>>> from opencmr.phantom import PhantomConfig, make_phantom, write_phantom
>>> ph = make_phantom(PhantomConfig(group="HCM", seed=3))       # doctest: +SKIP
>>> ph.truth.lv_ef_percent, ph.truth.max_wall_thickness_mm     # doctest: +SKIP
>>> write_phantom(ph, "out/hcm3", dicom=True)                  # doctest: +SKIP
"""

from opencmr.phantom.anatomy import CycleShape, HeartAnatomy, HeartState, Infarct, SeptalHypertrophy, Tissue
from opencmr.phantom.groups import GROUP_PROFILES, GroupProfile, PhantomParameters, sample_parameters
from opencmr.phantom.make import Phantom, PhantomConfig, make_phantom
from opencmr.phantom.truth import PhantomTruth
from opencmr.phantom.write import write_phantom

__all__ = [
    "GROUP_PROFILES",
    "CycleShape",
    "GroupProfile",
    "HeartAnatomy",
    "HeartState",
    "Infarct",
    "Phantom",
    "PhantomConfig",
    "PhantomParameters",
    "PhantomTruth",
    "SeptalHypertrophy",
    "Tissue",
    "make_phantom",
    "sample_parameters",
    "write_phantom",
]
