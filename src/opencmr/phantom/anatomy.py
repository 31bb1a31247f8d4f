"""A continuous, beating heart model defined by vectorised implicit functions.

Heart coordinate frame
----------------------
Millimetres, right-handed: ``z`` is the long axis of the left ventricle (LV),
pointing from the apex to the base; ``x`` points from the LV axis towards the
right ventricle (RV), i.e. to the interventricular septum; ``y = z x x``
points to the anterior wall. In-plane angles are measured from ``+x``
(0 deg septal, 90 deg anterior, 180 deg lateral, 270 deg inferior). The origin
is the centre of the LV base (mitral plane) at end-diastole (ED); the base
descends towards the fixed apex in systole.

Shapes
------
* **LV blood pool**: a half prolate ellipsoid (semi-axes ``a != b`` in-plane,
  ``c`` along the long axis) centred on the base plane and truncated by it.
* **LV myocardium**: the shell between the endocardium and an epicardium that
  is star-shaped about the same centre. In each direction ``u`` from the
  centre the epicardial radius obeys ``R_epi(u)^3 = R_endo(u)^3 + K(u)`` with
  ``K`` fixed at ED, so the myocardial volume of every solid-angle sector, and
  hence the total mass, is conserved exactly while the wall thickens in
  systole.
* **RV blood pool**: an ellipsoid offset from the LV towards the septum, cut by
  the base plane, minus the LV epicardium: a crescent that wraps the septum and
  stops short of the LV apex. Its axis is oblique (sheared towards the LV
  axis below the base), so that the RV stays against the septum down to its
  apex. A thin RV free wall surrounds it.
* Regional pathology: asymmetric septal hypertrophy (an epicardial bulge) and
  an infarcted sector (thin, akinetic: its endocardium does not move inward and
  the wall does not thicken).
* Context for realistic images: papillary muscles and a trabecular layer
  along the endocardium of both ventricles (dark, labelled as the blood pool
  they lie in, as in ACDC), epicardial fat (mostly in the atrioventricular
  and interventricular grooves, patchy elsewhere), a thin layer of
  pericardial fluid, pericardium and mediastinal tissue between the heart and
  the lungs (never labelled), and the atria and aortic root above the base
  plane.

Every boundary is a radius function of direction, so the same functions
classify arbitrary points (rendering, labels) and integrate volumes along rays
(ground truth, :mod:`opencmr.phantom.truth`).

References
----------
.. [1] O. Bernard et al., "Deep learning techniques for automatic MRI cardiac
   multi-structures segmentation and diagnosis: is the problem solved?",
   IEEE TMI 37(11), 2018, doi:10.1109/TMI.2018.2837502 (labels, groups).
.. [2] W. P. Segars et al., "4D XCAT phantom for multimodality imaging
   research", Med. Phys. 37(9), 2010, doi:10.1118/1.3480985 (the idea of a
   continuous beating-heart phantom with known truth).
.. [3] R. C. Hendel et al. / AHA, "Standardized myocardial segmentation and
   nomenclature for tomographic imaging of the heart", Circulation 105, 2002,
   doi:10.1161/hc0402.102975 (coronary territories of the infarct sectors).
.. [4] S. E. Petersen et al., "Left ventricular non-compaction: insights from
   cardiovascular magnetic resonance imaging", J. Am. Coll. Cardiol. 46(1),
   2005, doi:10.1016/j.jacc.2005.03.045 (a trabecular layer is a normal
   finding on cine CMR; normal non-compacted to compacted ratio below 2.3).
.. [5] G. Iacobellis, "Local and systemic effects of the multifaceted
   epicardial adipose tissue depot", Nat. Rev. Endocrinol. 11, 2015,
   doi:10.1038/nrendo.2015.58 (epicardial fat lies mainly in the
   atrioventricular and interventricular grooves and along the RV free wall).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from enum import IntEnum

import numpy as np

__all__ = [
    "TISSUE_LABELS",
    "CycleShape",
    "HeartAnatomy",
    "HeartState",
    "Infarct",
    "SeptalHypertrophy",
    "Tissue",
    "half_ellipsoid_volume",
]

_EPS = 1e-9

#: Pericardial fluid (bright on bSSFP, like fat; 15--50 mL normally) and the fibrous pericardium outside it
#: (a dark line, normally 1--2 mm): the thin layers that outline the epicardium on cine.
_PERICARDIAL_FLUID_MM, _PERICARDIUM_MM = 1.0, 1.5


class Tissue(IntEnum):
    """Tissue classes of the heart model (what a point is made of)."""

    NONE = 0
    """Not part of the heart model (the body background shows through)."""
    RV_BLOOD = 1
    MYOCARDIUM = 2
    LV_BLOOD = 3
    RV_WALL = 4
    ATRIAL_BLOOD = 5
    """Atria and aortic root above the base plane (bright, labelled background)."""
    PAPILLARY = 6
    """Papillary muscles (dark, labelled LV blood pool as in ACDC)."""
    EPICARDIAL_FAT = 7
    TRABECULAE = 8
    """LV trabeculations (dark, labelled LV blood pool as in ACDC)."""
    RV_TRABECULAE = 9
    """RV trabeculations (dark, labelled RV blood pool as in ACDC)."""
    PERICARDIUM = 10
    """The fibrous pericardium: a thin dark line around the heart and its epicardial fat (labelled background)."""
    MEDIASTINUM = 11
    """Pleura and mediastinal soft tissue between the pericardium and the lungs (labelled background)."""


#: ACDC label of each :class:`Tissue` (index by tissue value).
TISSUE_LABELS: np.ndarray = np.array([0, 1, 2, 3, 0, 0, 3, 0, 3, 1, 0, 0], dtype=np.uint8)
TISSUE_LABELS.flags.writeable = False


def half_ellipsoid_volume(a: float, b: float, c: float, z_lo: float = -np.inf, z_hi: float = np.inf) -> float:
    """Volume (mm^3) of the half ellipsoid ``x^2/a^2 + y^2/b^2 + z^2/c^2 <= 1, z <= 0`` between two planes.

    Parameters
    ----------
    a, b, c : float
        Semi-axes in mm (``c`` along ``z``).
    z_lo, z_hi : float
        The slab ``z_lo <= z <= z_hi`` (mm, same frame) the volume is restricted to.

    Returns
    -------
    float
        ``pi a b [(z1 - z0) - (z1^3 - z0^3) / (3 c^2)]`` with ``z0 = max(-c, z_lo)``,
        ``z1 = min(0, z_hi)``; ``2/3 pi a b c`` for the whole half ellipsoid.
    """
    z0, z1 = max(-c, z_lo), min(0.0, z_hi)
    if z1 <= z0:
        return 0.0
    return float(np.pi * a * b * ((z1 - z0) - (z1**3 - z0**3) / (3.0 * c * c)))


@dataclass(frozen=True)
class CycleShape:
    """Normalised LV volume over the cardiac cycle, ``1`` at ED and ``0`` at ES.

    Piecewise raised-cosine ramps with zero slope at every junction (so the
    curve is smooth and periodic): ejection to ES, rapid filling, diastasis,
    atrial contraction.

    Parameters
    ----------
    es_phase : float
        Time of end-systole as a fraction of the RR interval.
    rapid_filling_duration : float
        Duration of rapid filling (fraction of RR).
    rapid_filling_fraction : float
        Fraction of the stroke volume refilled by the end of rapid filling.
    atrial_phase : float
        Onset of atrial contraction (fraction of RR).
    diastasis_fraction : float
        Fraction refilled by the onset of atrial contraction; the atrial kick
        fills the rest.
    """

    es_phase: float = 0.35
    rapid_filling_duration: float = 0.2
    rapid_filling_fraction: float = 0.75
    atrial_phase: float = 0.82
    diastasis_fraction: float = 0.84

    def __post_init__(self) -> None:
        if not 0.1 <= self.es_phase < self.es_phase + self.rapid_filling_duration < self.atrial_phase < 1.0:
            raise ValueError(f"cycle phases must satisfy 0.1 <= es < es + rapid filling < atrial < 1: {self}")
        if not 0.0 < self.rapid_filling_fraction <= self.diastasis_fraction <= 1.0:
            raise ValueError(f"filling fractions must satisfy 0 < rapid <= diastasis <= 1: {self}")

    def __call__(self, phase: np.ndarray | float) -> np.ndarray:
        """Normalised volume at ``phase`` (fraction of RR, taken modulo 1)."""
        t = np.mod(np.asarray(phase, dtype=np.float64), 1.0)
        es, rf_end, at = self.es_phase, self.es_phase + self.rapid_filling_duration, self.atrial_phase
        f_rf, f_dd = self.rapid_filling_fraction, self.diastasis_fraction

        def ramp(t0: float, t1: float) -> np.ndarray:
            x = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
            return 0.5 * (1.0 - np.cos(np.pi * x))

        return np.where(
            t <= es,
            1.0 - ramp(0.0, es),
            f_rf * ramp(es, rf_end) + (f_dd - f_rf) * ramp(rf_end, at) + (1.0 - f_dd) * ramp(at, 1.0),
        )


@dataclass(frozen=True)
class SeptalHypertrophy:
    """Asymmetric (septal) hypertrophy: extra ED wall thickness added to the epicardium.

    Parameters
    ----------
    extra_mm : float
        Peak extra thickness.
    angle_deg, width_deg : float
        Centre and half-width at half maximum of the bulge, in-plane.
    level : float
        Elevation of the peak, as ``mu = -u_z`` (0 at the base, 1 at the apex).
    level_width : float
        Gaussian width of the bulge in ``mu``.
    """

    extra_mm: float
    angle_deg: float = 10.0
    width_deg: float = 55.0
    level: float = 0.3
    level_width: float = 0.3


@dataclass(frozen=True)
class Infarct:
    """A transmural infarct: a sector of thin (``wall_mm``), akinetic myocardium.

    Parameters
    ----------
    angle_deg, half_width_deg : float
        In-plane centre and half-width of the sector.
    from_level : float
        The sector spans elevations ``mu >= from_level`` (``mu = -u_z``,
        0 at the base, 1 at the apex).
    wall_mm : float
        Wall thickness in the scar.
    apical : bool
        Whether the apical cap is included (LAD territory): directions within
        about 18 deg of the long axis (``mu >= 0.95``), i.e. the apex and the
        adjacent apical segments.
    """

    angle_deg: float
    half_width_deg: float
    from_level: float
    wall_mm: float = 4.0
    apical: bool = False


@dataclass(frozen=True)
class HeartState:
    """The heart at one instant (see :meth:`HeartAnatomy.state`).

    Parameters
    ----------
    contraction : float
        ``q``: 0 at ED, 1 at the nominal ES contraction.
    base_z_mm : float
        Height of the base plane (LV and RV ellipsoid centres); 0 at ED.
    lv_axes_mm : tuple of float
        Endocardial semi-axes ``(a, b, c)`` of the contracting myocardium.
    rv_scale : float
        Scale of the in-plane RV ellipsoid semi-axes relative to their ED values.
    rv_long_mm : float
        Long semi-axis of the RV ellipsoid (its apex is fixed).
    """

    contraction: float
    base_z_mm: float
    lv_axes_mm: tuple[float, float, float]
    rv_scale: float
    rv_long_mm: float


def rotate_xy(x: np.ndarray, y: np.ndarray, angle_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of ``(x, y)`` in a frame rotated by ``angle_rad``."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)  # Python floats keep float32 arrays float32
    return x * c + y * s, y * c - x * s


def _sphere_directions(n_mu: int, n_phi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors on a ``(mu, phi)`` grid of the lower hemisphere, including the base plane and the apex."""
    mu, phi = np.meshgrid(np.linspace(0.0, 1.0, n_mu), np.linspace(0.0, 2 * np.pi, n_phi, endpoint=False))
    s = np.sqrt(1.0 - mu**2)
    return (s * np.cos(phi)).ravel(), (s * np.sin(phi)).ravel(), -mu.ravel()


def _texture_terms(seed: int, n_terms: int, azimuthal: tuple[int, int], axial: tuple[int, int]) -> np.ndarray:
    """Seeded ``(n_terms, 4)`` table of azimuthal order, axial order, phase and radial wavenumber of a texture."""
    rng = np.random.default_rng(seed)
    n = rng.integers(azimuthal[0], azimuthal[1] + 1, n_terms)
    m = rng.integers(axial[0], axial[1] + 1, n_terms) * rng.choice([-1, 1], n_terms)
    k = rng.uniform(-2 * np.pi / 6.0, 2 * np.pi / 6.0, n_terms)
    return np.stack([n, m, rng.uniform(0.0, 2 * np.pi, n_terms), k], axis=1)


def _texture(phi: np.ndarray, mu: np.ndarray, terms: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
    """A smooth random field of unit variance: ``sqrt(2/K) sum cos(n phi + m pi mu + k depth + psi)``.

    Integer azimuthal orders make it continuous around the circumference;
    low axial orders make its features run along the long axis, like
    trabeculations; the optional ``depth`` (mm) term, with wavelengths of
    6 mm and more, breaks them into irregular strands and islands.
    """
    total = np.zeros(np.shape(phi), dtype=np.result_type(phi, np.float32))
    for n, m, psi, k in terms.tolist():  # Python floats keep float32 arrays float32
        phase = n * phi + (m * math.pi) * mu + psi
        total += np.cos(phase if depth is None else phase + k * depth)
    return total * math.sqrt(2.0 / len(terms))


def _smooth_step(x: np.ndarray, width: float) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(x / width))


def _cos_angle_to(ux: np.ndarray, uy: np.ndarray, angle_deg: float) -> np.ndarray:
    """Cosine of the in-plane angle between directions ``(ux, uy)`` and the direction ``angle_deg``."""
    rho = np.sqrt(ux * ux + uy * uy) + _EPS
    angle = math.radians(angle_deg)
    return (ux * math.cos(angle) + uy * math.sin(angle)) / rho


@dataclass(frozen=True)
class HeartAnatomy:
    """End-diastolic geometry and motion parameters of the heart model (mm, heart frame).

    Parameters
    ----------
    lv_axes_mm : tuple of float
        Endocardial semi-axes ``(a, b, c)`` at ED; ``a`` lies at
        ``lv_angle_deg`` in-plane, ``c`` is the cavity length from the base.
    lv_angle_deg : float
        In-plane orientation of the ``a`` axis.
    wall_mm, apex_wall_mm : float
        ED wall thickness in-plane and at the apex (epicardial semi-axes
        ``a + wall, b + wall, c + apex_wall``).
    radial_shortening : float
        Fractional shortening of the in-plane endocardial semi-axes at ``q = 1``.
    long_axis_shortening : float
        Fractional shortening of the cavity length at ``q = 1`` (the base
        descends, the apex stays).
    rv_offset_mm, rv_angle_deg : float
        Distance and in-plane direction from the LV axis to the RV ellipsoid centre.
    rv_axes_mm : tuple of float
        RV ellipsoid semi-axes at ``rv_scale = 1``: radial (along the offset),
        tangential, long.
    rv_wall_mm : float
        RV free-wall thickness.
    fat_mm : float
        Epicardial fat scale: the fat in the interventricular grooves is
        about 1.2 times as thick, patches elsewhere up to 1.6 times; the
        atrioventricular groove adds 4 mm at the base.
    septal : SeptalHypertrophy, optional
    infarct : Infarct, optional
    papillary : bool
        Draw two papillary muscles in the LV cavity.
    atria : bool
        Draw the atria and aortic root above the base plane.
    trabeculae_mm : float
        Depth of the trabecular layer along the endocardium of both
        ventricles (0 for smooth walls). Trabeculations are dark fingers of
        muscle labelled as the blood pool they protrude into.
    texture_seed : int
        Seed of the trabecular and fat patterns.
    rv_tilt : float
        Shift of the centre of the RV's short-axis sections towards the LV
        axis per mm below the base plane (a shear: the volume and the section
        areas of the ellipsoid do not change).
    pericardium_mm : float
        Thickness of the layer that separates the ventricles and their
        epicardial fat from the lungs (0 for none): pericardial fluid
        (bright, 1 mm), the fibrous pericardium (a dark line of 1.5 mm), then
        pleura and mediastinal soft tissue with patches of pericardial fat
        over about a seventh of it. In ACDC at ED, bands 1.5--7.5 mm outside
        the LV (away from the RV) are lung-dark (below 0.15 of the LV blood
        signal) in only 8--23 % of their pixels, fat-bright (above 0.6) in
        12--19 %, and the rest is tissue of about the myocardial signal: the
        lungs do not touch the epicardium.
    """

    lv_axes_mm: tuple[float, float, float]
    lv_angle_deg: float
    wall_mm: float
    apex_wall_mm: float
    radial_shortening: float
    long_axis_shortening: float
    rv_offset_mm: float
    rv_angle_deg: float
    rv_axes_mm: tuple[float, float, float]
    rv_wall_mm: float = 3.5
    fat_mm: float = 2.0
    septal: SeptalHypertrophy | None = None
    infarct: Infarct | None = None
    papillary: bool = True
    atria: bool = True
    trabeculae_mm: float = 0.0
    texture_seed: int = 0
    rv_tilt: float = 0.0
    pericardium_mm: float = 0.0

    def __post_init__(self) -> None:
        if min(self.lv_axes_mm) <= 0 or min(self.rv_axes_mm) <= 0:
            raise ValueError("semi-axes must be positive")
        if self.wall_mm <= 0 or self.apex_wall_mm <= 0:
            raise ValueError("wall thicknesses must be positive")
        if not 0.0 <= self.radial_shortening < 0.9 or not 0.0 <= self.long_axis_shortening < 0.5:
            raise ValueError("shortening fractions out of range")
        if min(self.trabeculae_mm, self.fat_mm, self.pericardium_mm) < 0:
            raise ValueError("trabecular depth, fat and pericardium thickness must be >= 0")

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dictionary of every parameter."""
        return asdict(self)

    # ------------------------------------------------------------------ motion
    def state(self, contraction: float, rv_scale: float = 1.0) -> HeartState:
        """The heart at contraction ``q`` (0 ED, 1 nominal ES) with the RV at ``rv_scale``."""
        a, b, c = self.lv_axes_mm
        q = float(contraction)
        radial = 1.0 - self.radial_shortening * q
        length = c * (1.0 - self.long_axis_shortening * q)
        base = length - c  # the apex (z = -c) stays where it is
        return HeartState(
            contraction=q,
            base_z_mm=base,
            lv_axes_mm=(a * radial, b * radial, length),
            rv_scale=float(rv_scale),
            rv_long_mm=self.rv_axes_mm[2] + base,
        )

    # --------------------------------------------------- radius functions (LV)
    def _infarct_mask(self, ux: np.ndarray, uy: np.ndarray, uz: np.ndarray) -> np.ndarray:
        inf = self.infarct
        assert inf is not None
        cos_d = _cos_angle_to(ux, uy, inf.angle_deg)
        in_sector = _smooth_step(cos_d - math.cos(math.radians(inf.half_width_deg)), 0.05)
        mu = -uz
        in_level = _smooth_step(mu - inf.from_level, 0.05)
        if inf.apical:
            in_sector = np.maximum(in_sector, _smooth_step(mu - 0.95, 0.02))
        return in_sector * in_level

    def _septal_bulge(self, ux: np.ndarray, uy: np.ndarray, uz: np.ndarray) -> np.ndarray:
        sep = self.septal
        assert sep is not None
        cos_d = _cos_angle_to(ux, uy, sep.angle_deg)
        kappa = math.log(2.0) / (1.0 - math.cos(math.radians(sep.width_deg)))
        level = np.exp(-(((-uz) - sep.level) / sep.level_width) ** 2)
        return sep.extra_mm * np.exp(kappa * (cos_d - 1.0)) * level

    def lv_radii_cubed(
        self, ux: np.ndarray, uy: np.ndarray, uz: np.ndarray, state: HeartState
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cubed endocardial and epicardial radii along unit directions from the LV centre.

        Parameters
        ----------
        ux, uy, uz : numpy.ndarray
            Unit direction vectors (heart frame), any common shape.
        state : HeartState

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            ``R_endo^3`` and ``R_epi^3`` in mm^3. A point at distance ``r`` in
            direction ``u`` below the base plane is in the cavity when
            ``r^3 <= R_endo^3`` and inside the epicardium when ``r^3 <= R_epi^3``.
        """
        a, b, c = self.lv_axes_mm
        at, bt, ct = state.lv_axes_mm
        xr, yr = rotate_xy(ux, uy, math.radians(self.lv_angle_deg))
        xx, yy, zz = xr * xr, yr * yr, uz * uz
        r_endo_ed = 1.0 / np.sqrt(xx / a**2 + yy / b**2 + zz / c**2)
        w, wa = self.wall_mm, self.apex_wall_mm
        r_epi_ed = 1.0 / np.sqrt(xx / (a + w) ** 2 + yy / (b + w) ** 2 + zz / (c + wa) ** 2)
        if self.septal is not None:
            r_epi_ed = r_epi_ed + self._septal_bulge(ux, uy, uz)
        r_endo = 1.0 / np.sqrt(xx / at**2 + yy / bt**2 + zz / ct**2)
        if self.infarct is not None:
            m = self._infarct_mask(ux, uy, uz)
            r_epi_ed = r_epi_ed + m * (r_endo_ed + self.infarct.wall_mm - r_epi_ed)
            r_endo = r_endo + m * (r_endo_ed - r_endo)
        r_endo3 = r_endo**3
        return r_endo3, r_endo3 + (r_epi_ed**3 - r_endo_ed**3)

    # ------------------------------------------------------------------- RV
    def rv_centre(self, state: HeartState) -> tuple[float, float, float]:
        """Centre of the RV ellipsoid (on the base plane)."""
        ang = math.radians(self.rv_angle_deg)
        d = self.rv_offset_mm
        return d * math.cos(ang), d * math.sin(ang), state.base_z_mm

    def rv_axes(self, state: HeartState, grow_mm: float = 0.0) -> tuple[float, float, float]:
        """RV ellipsoid semi-axes at ``state`` (radial, tangential, long), optionally grown by ``grow_mm``."""
        ra, rb, _ = self.rv_axes_mm
        return ra * state.rv_scale + grow_mm, rb * state.rv_scale + grow_mm, state.rv_long_mm + grow_mm

    def _rv_frame(
        self, x: np.ndarray, y: np.ndarray, dz: np.ndarray, state: HeartState
    ) -> tuple[np.ndarray, np.ndarray]:
        """In-plane coordinates from the centre of the RV section at ``dz``, along its radial and tangential axes."""
        cx, cy, _ = self.rv_centre(state)
        xr, yr = rotate_xy(x - cx, y - cy, math.radians(self.rv_angle_deg))
        return xr - self.rv_tilt * dz, yr

    def _rv_rho2(
        self, xr: np.ndarray, yr: np.ndarray, dz: np.ndarray, state: HeartState, grow_mm: float | np.ndarray = 0.0
    ) -> np.ndarray:
        """Normalised squared radius in the (grown) RV ellipsoid of points in RV-frame coordinates."""
        ra, rb, rc = self.rv_axes(state, grow_mm)  # type: ignore[arg-type]
        return (xr / ra) ** 2 + (yr / rb) ** 2 + (dz / rc) ** 2

    def inplane_extent_mm(self, max_rv_scale: float = 1.0) -> float:
        """A radius about the LV axis that contains every structure of the model, in-plane."""
        a, b, _ = self.lv_axes_mm
        extra = self.septal.extra_mm if self.septal is not None else 0.0
        fat = self._fat_max_mm
        lv = max(a, b) + self.wall_mm + extra + fat
        rv = self.rv_offset_mm + max(self.rv_axes_mm[:2]) * max_rv_scale + self.rv_wall_mm + fat
        s = 0.5 * (a + b) / 27.0
        atria = max(self.rv_offset_mm + 45.0 * s, 40.0 * s)
        return float(max(lv, rv, atria)) + 2.0

    @functools.cached_property
    def _lv_bound(self) -> float:
        """Ratio to the ED endocardial ellipsoid of a surface enclosing the epicardium and its fat at any time.

        The endocardium only moves inward and the epicardium obeys the cube
        law, so the ED epicardium (plus the thickest fat) bounds every frame.
        """
        ux, uy, uz = _sphere_directions(64, 128)
        endo3, epi3 = self.lv_radii_cubed(ux, uy, uz, self.state(0.0))
        fat = self._fat_max_mm
        return float(((np.cbrt(epi3) + fat) / np.cbrt(endo3)).max()) * 1.02 + 0.01

    # ------------------------------------------------------------ classifier
    def classify(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, state: HeartState) -> np.ndarray:
        """Tissue class (:class:`Tissue`) at points ``(x, y, z)`` of the heart frame.

        Parameters
        ----------
        x, y, z : numpy.ndarray
            Heart-frame coordinates in mm, broadcastable to a common shape.
        state : HeartState

        Returns
        -------
        numpy.ndarray
            ``uint8`` tissue codes; map them to ACDC labels with
            ``TISSUE_LABELS[codes]``.
        """
        x, y, z = np.broadcast_arrays(x, y, z)
        dz = z - state.base_z_mm
        r2 = x * x + y * y + dz * dz
        r = np.sqrt(r2) + _EPS
        below = dz <= 0.0
        # The LV radii are costly: evaluate them only inside a bounding ellipsoid of the LV and its fat.
        a, b, c = self.lv_axes_mm
        xl, yl = rotate_xy(x, y, math.radians(self.lv_angle_deg))
        near = np.nonzero(below & ((xl / a) ** 2 + (yl / b) ** 2 + (dz / c) ** 2 <= self._lv_bound**2))
        endo3, epi3 = np.zeros(x.shape, x.dtype), np.zeros(x.shape, x.dtype)
        rn = r[near]
        endo3[near], epi3[near] = self.lv_radii_cubed(x[near] / rn, y[near] / rn, dz[near] / rn, state)
        r3 = r2 * r
        endo = below & (r3 <= endo3)
        epi = below & (r3 <= epi3)
        outside_lv = below & ~epi
        xr, yr = self._rv_frame(x, y, dz, state)
        rv = outside_lv & (self._rv_rho2(xr, yr, dz, state) <= 1.0)
        rv_wall = outside_lv & ~rv & (self._rv_rho2(xr, yr, dz, state, self.rv_wall_mm) <= 1.0)

        out = np.zeros(x.shape, dtype=np.uint8)
        if self.fat_mm > 0 or self.pericardium_mm > 0:
            rest = np.nonzero(outside_lv & ~rv & ~rv_wall)
            reach = self._fat_max_mm  # the thickest fat and pericardial layer: skip points beyond it
            near_lv = (epi3[rest] > 0) & (r[rest] <= np.cbrt(epi3[rest]) + reach)
            near_rv = self._rv_rho2(xr[rest], yr[rest], dz[rest], state, self.rv_wall_mm + reach) <= 1.0
            rest = tuple(i[near_lv | near_rv] for i in rest)
            lv_fat_w, rv_fat_w = self._fat_thickness(x[rest], y[rest], dz[rest], r[rest])
            r_epi, xr_rest, yr_rest, dz_rest = np.cbrt(epi3[rest]), xr[rest], yr[rest], dz[rest]
            lv_fat = r[rest] <= r_epi + lv_fat_w
            rv_fat = self._rv_rho2(xr_rest, yr_rest, dz_rest, state, self.rv_wall_mm + rv_fat_w) <= 1.0
            tissue = np.where(lv_fat | rv_fat, Tissue.EPICARDIAL_FAT, Tissue.NONE)
            if self.pericardium_mm > 0:
                p = self.pericardium_mm
                lv_peri = (r[rest] <= r_epi + lv_fat_w + p) & (r_epi > 0)
                rv_peri = self._rv_rho2(xr_rest, yr_rest, dz_rest, state, self.rv_wall_mm + rv_fat_w + p) <= 1.0
                layer = np.flatnonzero((tissue == Tissue.NONE) & (lv_peri | rv_peri))
                # Depth outside the fat, about: from the LV epicardium and fat, or from the RV wall and fat.
                lv_depth = r[rest][layer] - r_epi[layer] - lv_fat_w[layer]
                rv_depth = self._rv_depth(xr_rest[layer], yr_rest[layer], dz_rest[layer], state, rv_fat_w[layer])
                depth = np.where(r_epi[layer] > 0, np.minimum(lv_depth, rv_depth), rv_depth)
                phi = np.arctan2(y[rest][layer], x[rest][layer])
                mu = np.clip(-dz_rest[layer] / r[rest][layer], 0.0, 1.0)
                pericardial_fat = _texture(phi, mu, self._pericardial_fat_terms, depth) > 1.1  # about a seventh
                outer = np.where(pericardial_fat, Tissue.EPICARDIAL_FAT, Tissue.MEDIASTINUM)
                # Pericardial fluid is drawn as fat (both bright on bSSFP), then the dark pericardium.
                inner = np.where(depth <= _PERICARDIAL_FLUID_MM, Tissue.EPICARDIAL_FAT, Tissue.PERICARDIUM)
                tissue[layer] = np.where(depth <= _PERICARDIAL_FLUID_MM + _PERICARDIUM_MM, inner, outer)
            out[rest] = tissue
        out[rv_wall] = Tissue.RV_WALL
        out[rv] = Tissue.RV_BLOOD
        out[epi & ~endo] = Tissue.MYOCARDIUM
        out[endo] = Tissue.LV_BLOOD
        if self.trabeculae_mm > 0:
            inside = np.nonzero(endo)
            hit = self._lv_trabeculae(x[inside], y[inside], dz[inside], r[inside], endo3[inside], state)
            out[tuple(i[hit] for i in inside)] = Tissue.TRABECULAE
            inside = np.nonzero(rv)
            hit = self._rv_trabeculae(xr[inside], yr[inside], dz[inside], state)
            out[tuple(i[hit] for i in inside)] = Tissue.RV_TRABECULAE
        if self.papillary:
            inside = np.nonzero(endo)
            hit = self._papillary(x[inside], y[inside], dz[inside], state)
            out[tuple(i[hit] for i in inside)] = Tissue.PAPILLARY
        if self.atria:
            above = np.nonzero(~below)
            hit = self._atria(x[above], y[above], dz[above])
            out[tuple(i[hit] for i in above)] = Tissue.ATRIAL_BLOOD
        return out

    @functools.cached_property
    def _fat_max_mm(self) -> float:
        """Upper bound of :meth:`_fat_thickness` plus the pericardial layer."""
        return self.fat_mm * (1.2 + 0.8 * 2.0) + 4.0 + self.pericardium_mm

    @functools.cached_property
    def _rv_junctions_rad(self) -> tuple[float, float]:
        """In-plane angles (rad) of the anterior and inferior RV insertions on the ED basal epicardium."""
        a, b, _ = self.lv_axes_mm
        radius = math.sqrt(a * b) + self.wall_mm
        phi = np.linspace(-math.pi, math.pi, 1441) + math.radians(self.rv_angle_deg)
        xr, yr = self._rv_frame(radius * np.cos(phi), radius * np.sin(phi), np.zeros_like(phi), self.state(0.0))
        ra, rb, _ = self.rv_axes_mm
        inside = np.flatnonzero((xr / ra) ** 2 + (yr / rb) ** 2 <= 1.0)
        if inside.size == 0:  # the RV does not reach the epicardium: grooves either side of its direction
            centre = math.radians(self.rv_angle_deg)
            return centre + math.radians(60.0), centre - math.radians(60.0)
        return float(phi[inside[-1]]), float(phi[inside[0]])

    def _fat_thickness(
        self, x: np.ndarray, y: np.ndarray, dz: np.ndarray, r: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Epicardial fat thickness over the LV and over the RV free wall, by direction from the LV centre.

        In the interventricular grooves (on the LV epicardium either side of
        the RV insertions), in patches elsewhere, and thick in the
        atrioventricular groove. Real cine CMR shows bright fat (above 0.6 of
        the LV blood signal) in only about 6--22 % of bands 1.5--7.5 mm
        outside the RV free wall and the LV (ACDC, 80 patients at ED), not as
        a continuous rim.
        """
        phi = np.arctan2(y, x)
        mu = np.clip(-dz / r, 0.0, 1.0)
        groove = np.zeros(np.shape(x), dtype=np.result_type(x, np.float32))
        for angle in self._rv_junctions_rad:
            d = np.mod(phi - angle + math.pi, 2 * math.pi) - math.pi
            groove += np.exp(-((d / math.radians(15.0)) ** 2))
        patches = np.clip(_texture(phi, mu, self._fat_terms) - 1.0, 0.0, 2.0)
        av_groove = 4.0 * np.exp(np.minimum(dz, 0.0) / 5.0)  # within about 5 mm of the base plane
        lv = self.fat_mm * (1.2 * np.minimum(groove, 1.0) + 0.8 * patches) + av_groove
        return lv, self.fat_mm * 0.8 * patches + av_groove

    @functools.cached_property
    def _fat_terms(self) -> np.ndarray:
        return _texture_terms(self.texture_seed + 2, 12, (1, 6), (0, 2))

    @functools.cached_property
    def _pericardial_fat_terms(self) -> np.ndarray:
        return _texture_terms(self.texture_seed + 3, 12, (2, 8), (0, 2))

    @functools.cached_property
    def _trabecular_terms(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            _texture_terms(self.texture_seed, 24, (6, 30), (0, 3)),
            _texture_terms(self.texture_seed + 1, 24, (5, 24), (0, 3)),
        )

    def _lv_trabeculae(
        self, x: np.ndarray, y: np.ndarray, dz: np.ndarray, r: np.ndarray, endo3: np.ndarray, state: HeartState
    ) -> np.ndarray:
        """Which LV cavity points are trabeculae: a random pattern that thins out away from the endocardium.

        Depth is measured in-plane (short-axis sections are where
        trabeculations are seen): ``section - rho`` with ``section = rho R_endo / r``
        the in-plane radius at which the point's ray from the LV centre meets
        the endocardium. The layer is at most a quarter of that radius and
        fades out in the small sections near the apex.
        """
        at, bt, _ = state.lv_axes_mm
        rho = np.sqrt(x * x + y * y) + _EPS
        septal = np.maximum(x / rho, 0.0)  # the septum (+x) is smooth, the free wall trabeculated
        section = rho * np.cbrt(endo3) / r
        depth = section - rho
        apical_fade = np.clip((section / math.sqrt(at * bt) - 0.35) / 0.25, 0.0, 1.0)
        layer = np.minimum(self.trabeculae_mm, 0.25 * section) * apical_fade
        hit = np.zeros(np.shape(x), dtype=bool)
        band = np.flatnonzero(depth < layer)
        if band.size:
            field = _texture(
                np.arctan2(y[band], x[band]), -dz[band] / r[band], self._trabecular_terms[0], depth[band]
            )
            hit[band] = field > 0.5 + 1.2 * septal[band] + 1.6 * depth[band] / layer[band]
        return hit

    def _rv_depth(
        self, xr: np.ndarray, yr: np.ndarray, dz: np.ndarray, state: HeartState, fat_mm: np.ndarray
    ) -> np.ndarray:
        """About how far (mm) points lie outside the RV free wall and its fat (first order)."""
        ra, rb, rc = self.rv_axes(state, self.rv_wall_mm)
        ra, rb, rc = ra + fat_mm, rb + fat_mm, rc + fat_mm
        rho2 = (xr / ra) ** 2 + (yr / rb) ** 2 + (dz / rc) ** 2
        gradient = 2.0 * np.sqrt((xr / ra**2) ** 2 + (yr / rb**2) ** 2 + (dz / rc**2) ** 2) + _EPS
        return (rho2 - 1.0) / gradient

    def _rv_trabeculae(self, xr: np.ndarray, yr: np.ndarray, dz: np.ndarray, state: HeartState) -> np.ndarray:
        """Which RV cavity points (RV-frame coordinates) are trabeculae along the RV free wall."""
        ra, rb, rc = self.rv_axes(state)
        rho2 = (xr / ra) ** 2 + (yr / rb) ** 2 + (dz / rc) ** 2
        gradient = 2.0 * np.sqrt((xr / ra**2) ** 2 + (yr / rb**2) ** 2 + (dz / rc**2) ** 2) + _EPS
        depth = (1.0 - rho2) / gradient  # first-order distance to the ellipsoid surface
        hit = np.zeros(np.shape(xr), dtype=bool)
        band = np.flatnonzero(depth < self.trabeculae_mm)
        if band.size:
            phi = np.arctan2(yr[band] / rb, xr[band] / ra)
            field = _texture(phi, -dz[band] / rc, self._trabecular_terms[1], depth[band])
            hit[band] = field > 0.5 + 1.6 * depth[band] / self.trabeculae_mm
        return hit

    def _papillary(self, x: np.ndarray, y: np.ndarray, dz: np.ndarray, state: HeartState) -> np.ndarray:
        """Two papillary muscles: columns against the anterolateral and inferolateral walls, mid-cavity."""
        at, bt, ct = state.lv_axes_mm
        level = -dz / ct
        in_level = (level >= 0.25) & (level <= 0.72)
        section = np.sqrt(np.clip(1.0 - level**2, 0.0, 1.0)) * 0.5 * (at + bt)
        radius = 4.5 + 2.0 * state.contraction  # thicker in systole
        centre = np.maximum(section - radius - 1.0, 0.5 * section)  # close to the wall they arise from
        hit = np.zeros(x.shape, dtype=bool)
        for angle in (130.0, 255.0):
            px, py = math.cos(math.radians(angle)), math.sin(math.radians(angle))
            cx, cy = centre * px, centre * py
            hit |= (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
        return hit & in_level

    def _atria(self, x: np.ndarray, y: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """Left and right atria and the aortic root, rigidly attached above the base plane."""
        a, b, _ = self.lv_axes_mm
        s = 0.5 * (a + b) / 27.0  # scale with the heart
        la = ((x + 4 * s) / (22 * s)) ** 2 + ((y + 14 * s) / (18 * s)) ** 2 + ((dz - 20) / 24) ** 2 <= 1.0
        cx, cy, _ = self.rv_centre(HeartState(0.0, 0.0, self.lv_axes_mm, 1.0, self.rv_axes_mm[2]))
        ra = ((x - 0.9 * cx) / (21 * s)) ** 2 + ((y - cy + 18 * s) / (19 * s)) ** 2 + ((dz - 22) / 25) ** 2 <= 1.0
        ao = ((x - 9 * s) ** 2 + (y - 12 * s) ** 2 <= (12 * s) ** 2) & (dz <= 35.0)
        return la | ra | ao
