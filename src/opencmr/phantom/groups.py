"""Plausible adult parameters for the five ACDC diagnostic groups, and a seeded sampler.

The group means follow the ACDC definitions and adult CMR reference values:
normal LV EDV about 140 mL with EF about 62 % and an 8 mm wall; dilated
cardiomyopathy (DCM) with a large, thin-walled LV and EF about 20 %;
hypertrophic cardiomyopathy (HCM) with a wall of 16--22 mm (mostly
asymmetric, septal), a small cavity and a high EF; previous myocardial
infarction (MINF) with a thinned (about 5.5 mm), akinetic sector in one coronary
territory and EF about 35 %; abnormal right ventricle (RV) with a dilated,
poorly contracting RV and a normal LV.

The infarct wall (5.5 mm, 4.5--6.5) and the extent of the LAD territory's
apical cap follow the ACDC MINF labels: the thinnest tenth of the wall at
ED measures 6.8 mm at mid-ventricle and 6.2 mm in the apical third (median
over 16 patients, radial thickness from the cavity centre, against 8.7 and
6.8 mm in normal hearts), and less than 5.5 mm in only 3--4 % of the
circumference (median; 75th percentile 6--18 %).

Every heart gets a trabecular layer of 5 mm (3--7; dark muscle fingers that
ACDC counts as blood pool) and a 3--7 mm layer of pericardium and
mediastinal tissue between its epicardial fat and the lungs. In ACDC the
lungs come within 7.5 mm of the LV epicardium along only about a fifth of
its circumference, which a thicker layer would match better; with a 4--9 mm
layer the release model drew the epicardium of a thin-walled (DCM) phantom
about 2 mm too far out, so the thinner layer is a compromise.

The RV end-diastolic volumes and the shape of the RV cross-section follow the
ACDC training labels (80 patients, 16 per group): the median ratio of RV to LV
end-diastolic volume is 1.17 (NOR), 0.58 (DCM), 0.87 (HCM), 0.75 (MINF) and
1.83 (RV); an ellipse fitted to the RV free wall on a basal slice at ED (see
:class:`GroupProfile`) has its centre about one LV epicardial radius from the
LV axis, so that the RV crescent spans about 110 deg around the LV and is
about as thick as the LV radius, rather than a thin rim wrapping half of it.

References
----------
.. [1] O. Bernard et al., IEEE TMI 37(11), 2018, doi:10.1109/TMI.2018.2837502
   (group definitions: DCM LV EF < 40 % and EDV > 100 mL/m2; HCM EF > 55 % and
   a wall > 15 mm in diastole; MINF EF < 40 % with abnormal contraction of
   several segments; RV EDV > 110 mL/m2 or RV EF < 40 %).
.. [2] N. Kawel-Boehm et al., "Reference ranges ('normal values') for
   cardiovascular magnetic resonance (CMR) in adults and children: 2020
   update", J. Cardiovasc. Magn. Reson. 22:87, 2020,
   doi:10.1186/s12968-020-00683-3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opencmr.labels import DiagnosticGroup
from opencmr.phantom.anatomy import CycleShape, HeartAnatomy, Infarct, SeptalHypertrophy

__all__ = ["GROUP_PROFILES", "GroupProfile", "PhantomParameters", "body_surface_area", "sample_parameters"]

Spread = tuple[float, float]
"""``(mean, standard deviation)`` of a normally distributed parameter."""


@dataclass(frozen=True)
class GroupProfile:
    """Population of one diagnostic group (values for a body surface area of 1.9 m^2).

    Parameters
    ----------
    lv_edv_ml, lv_ef, rv_edv_ml, rv_ef : Spread
        End-diastolic volumes (mL) and ejection fractions (fractions).
    wall_mm : Spread
        ED LV wall thickness.
    lv_length_mm : float
        Cavity length (base to endocardial apex) at the group's mean EDV.
    long_axis_shortening : float
        Fractional shortening of the cavity length at end-systole.
    rv_length_ratio : float
        RV ellipsoid length as a fraction of the LV epicardial length.
    rv_wall_mm : Spread
        RV free-wall thickness.
    rv_section : tuple of float
        ``(offset, radial, tangential)``: distance of the RV ellipsoid centre
        from the LV axis and its in-plane semi-axes at ED, in units of the
        ED basal LV epicardial radius. Measured on the ACDC training labels
        (median per group of an ellipse fitted to the RV free wall -- the RV
        border away from the septum -- on the slice a quarter of the RV's
        extent below its most basal slice, at ED, in units of the equivalent
        radius of the LV blood pool and myocardium on that slice). Below
        the base the sections move towards the LV axis (``rv_tilt``), so
        that the RV stays against the septum down to its apex.
    septal_extra_mm : Spread, optional
        Extra septal thickness of asymmetric hypertrophy.
    asymmetric_probability : float
        Probability that the hypertrophy is septal rather than concentric
        (a concentric one has wall ``wall_mm + septal_extra_mm``).
    infarct : bool
        Whether an akinetic, thinned infarct sector is present.
    rapid_filling_fraction, diastasis_fraction : float
        Diastolic filling pattern (see :class:`CycleShape`); impaired
        relaxation shifts filling to the atrial kick.
    male_fraction : float
        Probability of a male patient.
    """

    lv_edv_ml: Spread
    lv_ef: Spread
    rv_edv_ml: Spread
    rv_ef: Spread
    wall_mm: Spread
    lv_length_mm: float
    long_axis_shortening: float
    rv_length_ratio: float = 0.8
    rv_wall_mm: Spread = (3.5, 0.4)
    rv_section: tuple[float, float, float] = (1.16, 0.85, 1.24)
    septal_extra_mm: Spread | None = None
    asymmetric_probability: float = 1.0
    infarct: bool = False
    rapid_filling_fraction: float = 0.75
    diastasis_fraction: float = 0.84
    male_fraction: float = 0.5


#: Parameters of each diagnostic group.
GROUP_PROFILES: dict[DiagnosticGroup, GroupProfile] = {
    DiagnosticGroup.NOR: GroupProfile(
        lv_edv_ml=(140.0, 14.0),
        lv_ef=(0.62, 0.025),
        rv_edv_ml=(160.0, 14.0),
        rv_ef=(0.55, 0.025),
        wall_mm=(8.0, 0.6),
        lv_length_mm=88.0,
        long_axis_shortening=0.15,
    ),
    DiagnosticGroup.DCM: GroupProfile(
        lv_edv_ml=(260.0, 25.0),
        lv_ef=(0.20, 0.03),
        rv_edv_ml=(160.0, 18.0),
        rv_ef=(0.40, 0.05),
        wall_mm=(6.5, 0.5),
        lv_length_mm=98.0,
        long_axis_shortening=0.06,
        rv_section=(0.91, 0.72, 1.09),
        rapid_filling_fraction=0.55,
        diastasis_fraction=0.7,
        male_fraction=0.7,
    ),
    DiagnosticGroup.HCM: GroupProfile(
        lv_edv_ml=(118.0, 12.0),
        lv_ef=(0.70, 0.03),
        rv_edv_ml=(110.0, 12.0),
        rv_ef=(0.60, 0.03),
        wall_mm=(11.5, 0.7),
        lv_length_mm=80.0,
        long_axis_shortening=0.12,
        rv_section=(1.0, 0.73, 1.07),
        septal_extra_mm=(7.5, 1.2),
        asymmetric_probability=0.75,
        rapid_filling_fraction=0.5,
        diastasis_fraction=0.65,
        male_fraction=0.65,
    ),
    DiagnosticGroup.MINF: GroupProfile(
        lv_edv_ml=(190.0, 20.0),
        lv_ef=(0.35, 0.03),
        rv_edv_ml=(140.0, 15.0),
        rv_ef=(0.50, 0.04),
        wall_mm=(8.5, 0.6),
        lv_length_mm=94.0,
        long_axis_shortening=0.09,
        rv_section=(1.02, 0.79, 1.12),
        infarct=True,
        rapid_filling_fraction=0.6,
        diastasis_fraction=0.75,
        male_fraction=0.75,
    ),
    DiagnosticGroup.RV: GroupProfile(
        lv_edv_ml=(130.0, 14.0),
        lv_ef=(0.60, 0.03),
        rv_edv_ml=(250.0, 25.0),
        rv_ef=(0.30, 0.03),
        wall_mm=(7.5, 0.6),
        lv_length_mm=86.0,
        long_axis_shortening=0.13,
        rv_length_ratio=0.9,
        rv_wall_mm=(5.0, 0.6),
        rv_section=(1.21, 0.97, 1.55),
    ),
}

#: Coronary territories an infarct may occupy: (centre angle, half-width, from level, apical).
_TERRITORIES: tuple[tuple[float, float, float, bool], ...] = (
    (60.0, 55.0, 0.3, True),  # LAD: anterior wall and anterior septum, mid to apex
    (200.0, 45.0, 0.15, False),  # LCx: lateral wall
    (275.0, 45.0, 0.15, False),  # RCA: inferior wall
)


@dataclass(frozen=True)
class PhantomParameters:
    """Everything sampled for one phantom before the motion is solved.

    Parameters
    ----------
    anatomy : HeartAnatomy
        ED geometry (``radial_shortening`` still 0: solved from ``lv_ef``).
    lv_edv_ml, lv_ef, rv_edv_ml, rv_ef : float
        Targets of the whole (not slab-restricted) model.
    cycle : CycleShape
        Shared normalised volume curve of both ventricles.
    height_cm, weight_kg : float
    sex : str
        ``"M"`` or ``"F"``.
    """

    anatomy: HeartAnatomy
    lv_edv_ml: float
    lv_ef: float
    rv_edv_ml: float
    rv_ef: float
    cycle: CycleShape
    height_cm: float
    weight_kg: float
    sex: str


def body_surface_area(height_cm: float, weight_kg: float) -> float:
    """Body surface area in m^2 by Mosteller's formula, ``sqrt(height * weight / 3600)``.

    References
    ----------
    R. D. Mosteller, "Simplified calculation of body-surface area",
    N. Engl. J. Med. 317(17), 1987, doi:10.1056/NEJM198710223171717.
    """
    return float(np.sqrt(height_cm * weight_kg / 3600.0))


def _normal(rng: np.random.Generator, spread: Spread, lo: float, hi: float) -> float:
    return float(np.clip(rng.normal(*spread), lo, hi))


def _within(rng: np.random.Generator, spread: Spread) -> float:
    """A normal draw truncated to the mean +- 2 standard deviations."""
    mean, sd = spread
    return _normal(rng, spread, mean - 2.0 * sd, mean + 2.0 * sd)


def sample_parameters(
    group: DiagnosticGroup,
    rng: np.random.Generator,
    *,
    height_cm: float | None = None,
    weight_kg: float | None = None,
    sex: str | None = None,
) -> PhantomParameters:
    """Draw the anatomy, function targets and body size of one phantom of ``group``.

    Volumes scale with body surface area (relative to 1.9 m^2, kept within
    0.8--1.25 times the group mean); every other parameter is drawn from a
    normal distribution truncated at two standard deviations.
    """
    p = GROUP_PROFILES[group]
    if sex is None:
        sex = "M" if rng.random() < p.male_fraction else "F"
    sex = sex.upper()[:1]
    if sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', got {sex!r}")
    if height_cm is None:
        height_cm = round(_normal(rng, (177.0, 7.0) if sex == "M" else (164.0, 6.0), 145.0, 205.0))
    if weight_kg is None:
        bmi = _normal(rng, (26.0, 3.5), 18.5, 38.0)
        weight_kg = round(bmi * (height_cm / 100.0) ** 2)
    size = body_surface_area(height_cm, weight_kg) / 1.9

    def volume(spread: Spread) -> float:  # scaled with body size, kept within 0.8--1.25 x the group mean
        return float(np.clip(_within(rng, spread) * size, 0.8 * spread[0], 1.25 * spread[0]))

    lv_edv, rv_edv = volume(p.lv_edv_ml), volume(p.rv_edv_ml)
    lv_ef, rv_ef = _within(rng, p.lv_ef), _within(rng, p.rv_ef)

    wall = _within(rng, p.wall_mm)
    septal = None
    if p.septal_extra_mm is not None:
        extra = _within(rng, p.septal_extra_mm)
        if rng.random() < p.asymmetric_probability:
            septal = SeptalHypertrophy(extra_mm=extra, angle_deg=float(rng.uniform(-5.0, 25.0)))
        else:
            wall += extra
    length = p.lv_length_mm * (lv_edv / p.lv_edv_ml[0]) ** (1.0 / 3.0) * float(rng.uniform(0.95, 1.05))
    ellipticity = _normal(rng, (1.12, 0.04), 1.03, 1.22)
    ab = 3.0 * lv_edv * 1000.0 / (2.0 * np.pi * length)
    a = float(np.sqrt(ab * ellipticity))
    b = ab / a
    apex_wall = wall * float(rng.uniform(0.7, 0.85))

    infarct = None
    if p.infarct:
        angle, half_width, level, apical = _TERRITORIES[int(rng.integers(len(_TERRITORIES)))]
        infarct = Infarct(
            angle_deg=angle + float(rng.uniform(-10.0, 10.0)),
            half_width_deg=half_width * float(rng.uniform(0.85, 1.1)),
            from_level=level,
            wall_mm=_normal(rng, (5.5, 0.5), 4.5, 6.5),
            apical=apical,
        )

    epi_radius = float(np.sqrt(ab)) + wall
    offset, radial, tangential = p.rv_section
    rv_length = p.rv_length_ratio * (length + apex_wall)
    # Oblique RV axis: the section centre reaches the LV epicardium (an ellipsoid) at the RV apex.
    rv_tilt = (offset - np.sqrt(1.0 - p.rv_length_ratio**2)) * epi_radius / rv_length
    lv_angle = float(rng.uniform(0.0, 180.0))
    long_axis_shortening = p.long_axis_shortening * float(rng.uniform(0.85, 1.15))
    rv_angle = float(rng.uniform(2.0, 18.0))
    rv_wall = _normal(rng, p.rv_wall_mm, 2.5, 7.0)
    fat = _normal(rng, (2.0, 0.6), 0.8, 3.5)
    cycle = CycleShape(
        es_phase=_normal(rng, (0.35, 0.012), 0.32, 0.38),
        rapid_filling_fraction=p.rapid_filling_fraction,
        diastasis_fraction=p.diastasis_fraction,
    )
    anatomy = HeartAnatomy(
        lv_axes_mm=(a, b, length),
        lv_angle_deg=lv_angle,
        wall_mm=wall,
        apex_wall_mm=apex_wall,
        radial_shortening=0.0,
        long_axis_shortening=long_axis_shortening,
        rv_offset_mm=offset * epi_radius,
        rv_angle_deg=rv_angle,
        rv_axes_mm=(radial * epi_radius, tangential * epi_radius, rv_length),
        rv_wall_mm=rv_wall,
        rv_tilt=float(rv_tilt),
        pericardium_mm=float(rng.uniform(3.0, 7.0)),  # thinner than ACDC suggests: see the module notes
        fat_mm=fat,
        septal=septal,
        infarct=infarct,
        trabeculae_mm=_normal(rng, (5.0, 1.0), 3.0, 7.0),
        texture_seed=int(rng.integers(2**31)),
    )
    return PhantomParameters(
        anatomy=anatomy,
        lv_edv_ml=lv_edv,
        lv_ef=lv_ef,
        rv_edv_ml=rv_edv,
        rv_ef=rv_ef,
        cycle=cycle,
        height_cm=float(height_cm),
        weight_kg=float(weight_kg),
        sex=sex,
    )
