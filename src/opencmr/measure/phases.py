"""End-diastole and end-systole: from the study's metadata, else from the LV volume curve.

Rules, in order (the one used is reported as ``ed_es_rule``):

``"metadata"``
    ED and ES given by the input (ACDC Info.cfg, or given by the user) and both segmented.
``"lv-volume-curve"``
    three or more frames: ED is the frame of largest LV blood-pool volume, ES of the smallest.
``"two-frames-lv-volume"``
    only two frames: the larger LV volume is ED, the smaller ES.

References
----------
.. [1] J. Schulz-Menger et al., "Standardized image interpretation and
   post-processing in cardiovascular magnetic resonance - 2020 update",
   JCMR 22, 2020, 19, doi:10.1186/s12968-020-00610-6 (ED and ES as the frames
   of largest and smallest LV volume).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from opencmr.measure.volumes import VolumeCurve

__all__ = ["EdEsRule", "Phases", "detect_ed_es"]


class EdEsRule(str, Enum):
    """How ED and ES were found."""

    METADATA = "metadata"
    LV_VOLUME_CURVE = "lv-volume-curve"
    TWO_FRAMES_LV_VOLUME = "two-frames-lv-volume"


@dataclass(frozen=True)
class Phases:
    """ED and ES acquisition frame numbers (0-based) and the rule that chose them."""

    ed_frame: int
    es_frame: int
    rule: EdEsRule
    notes: tuple[str, ...] = ()


def detect_ed_es(curve: VolumeCurve, ed_frame: int | None = None, es_frame: int | None = None) -> Phases:
    """Choose ED and ES for a volume curve, preferring frames the input names.

    Parameters
    ----------
    curve : VolumeCurve
        Volumes of every segmented frame.
    ed_frame, es_frame : int, optional
        Frames named by the input (0-based); used when both are segmented.

    Raises
    ------
    ValueError
        Fewer than two frames, or an LV that is empty in every frame.
    """
    frames = curve.frame_numbers
    notes: list[str] = []
    if ed_frame is not None and es_frame is not None:
        if ed_frame in frames and es_frame in frames and ed_frame != es_frame:
            phases = Phases(int(ed_frame), int(es_frame), EdEsRule.METADATA)
            return _check(curve, phases)
        notes.append(
            f"the input names ED {ed_frame} and ES {es_frame}, but the segmentation holds frames {list(frames)}"
        )
    if len(frames) < 2:
        raise ValueError(f"ED and ES need at least two segmented frames, got frames {list(frames)}")
    lv = np.asarray(curve.lv_ml)
    if not np.any(lv > 0):
        raise ValueError("the LV blood pool is empty in every frame: ED and ES cannot be found")
    rule = EdEsRule.LV_VOLUME_CURVE if len(frames) > 2 else EdEsRule.TWO_FRAMES_LV_VOLUME
    ed, es = frames[int(np.argmax(lv))], frames[int(np.argmin(lv))]
    if ed == es:  # a flat curve: keep the order of acquisition
        ed, es = frames[0], frames[-1]
        notes.append("the LV volume is the same in every frame; ED and ES are the first and last frames")
    return _check(curve, Phases(int(ed), int(es), rule, tuple(notes)))


def _check(curve: VolumeCurve, phases: Phases) -> Phases:
    ed, es = curve.at(phases.ed_frame)["lv"], curve.at(phases.es_frame)["lv"]
    if ed < es:
        note = f"LV volume at ED ({ed:.1f} mL) is smaller than at ES ({es:.1f} mL): check ED/ES or the segmentation"
        return Phases(phases.ed_frame, phases.es_frame, phases.rule, (*phases.notes, note))
    return phases
