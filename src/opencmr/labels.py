"""The segmentation label convention and the diagnostic groups, written down once.

opencmr uses the convention of the ACDC challenge (Bernard et al., IEEE TMI
37(11), 2018, doi:10.1109/TMI.2018.2837502) everywhere: in label files it reads
and writes, in model outputs and in metrics.

======  ===================  =======================
value   structure            :class:`Label` member
======  ===================  =======================
0       background           ``Label.BACKGROUND``
1       RV blood pool        ``Label.RV_BLOOD_POOL``
2       LV myocardium        ``Label.LV_MYOCARDIUM``
3       LV blood pool        ``Label.LV_BLOOD_POOL``
======  ===================  =======================
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Label(IntEnum):
    """Values of a cardiac label map (ACDC convention)."""

    BACKGROUND = 0
    RV_BLOOD_POOL = 1
    LV_MYOCARDIUM = 2
    LV_BLOOD_POOL = 3

    @property
    def abbreviation(self) -> str:
        """Short name used in tables and JSON keys (``bg``, ``rv``, ``myo``, ``lv``)."""
        return _ABBREVIATIONS[self]


_ABBREVIATIONS = {
    Label.BACKGROUND: "bg",
    Label.RV_BLOOD_POOL: "rv",
    Label.LV_MYOCARDIUM: "myo",
    Label.LV_BLOOD_POOL: "lv",
}

#: The foreground structures, in label order.
STRUCTURES: tuple[Label, ...] = (Label.RV_BLOOD_POOL, Label.LV_MYOCARDIUM, Label.LV_BLOOD_POOL)

#: Every valid label value.
LABEL_VALUES: frozenset[int] = frozenset(int(label) for label in Label)


class DiagnosticGroup(str, Enum):
    """Diagnostic groups of the ACDC challenge."""

    NOR = "NOR"
    """Normal."""
    DCM = "DCM"
    """Dilated cardiomyopathy."""
    HCM = "HCM"
    """Hypertrophic cardiomyopathy."""
    MINF = "MINF"
    """Previous myocardial infarction."""
    RV = "RV"
    """Abnormal right ventricle."""

    @classmethod
    def parse(cls, value: str) -> DiagnosticGroup:
        """Convert a user- or file-supplied string (case-insensitive) to a group.

        Raises
        ------
        ValueError
            If the string names no group.
        """
        try:
            return cls(value.strip().upper())
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ValueError(f"unknown diagnostic group {value!r} (expected one of {names})") from None
