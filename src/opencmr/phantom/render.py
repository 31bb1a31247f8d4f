"""Image a heart model as a short-axis bSSFP cine stack in patient space.

* **Placement**: the heart frame is put in the chest with a double-oblique
  orientation (long axis pointing right, posterior and superior from the
  apex, seeded jitter), and the short-axis stack is planned perpendicular to
  the long axis from the base to the apex. The voxel axes follow the ACDC
  volumes (79 of the 80 training patients have their most basal slice
  first; the RV lies at lower column and higher row indices than the LV):
  columns run towards the patient's left, rows towards anterior and slices
  from base to apex -- a right-handed grid, so that a DICOM reader sorting
  by position along the slice normal gets the same order. (The conventional
  display, anterior up, is this image flipped vertically.)
* **Field of view**: the whole chest cross-section, like clinical cine
  (ACDC median 370 x 325 mm, 256 x 216 pixels of 1.52 mm).
* **Contrast**: balanced SSFP cine -- bright blood, dark-grey myocardium, bright
  fat, dark lungs -- in a chest of soft tissue with a subcutaneous fat rim,
  lungs, liver below the diaphragm, descending aorta and spine. Relative
  signals follow ACDC at ED (medians over 80 patients, 10th--90th
  percentile): myocardium 0.35 (0.28--0.52) and RV blood 0.81 (0.69--0.93)
  of the LV blood signal.
* **Partial volume**: each voxel averages ``n x n`` in-plane by ``m``
  through-plane sub-samples across the slice thickness. To stay fast only the
  voxels a boundary passes through (their probes or neighbours differ) are
  supersampled; labels come from the voxel centre on the slice centre plane.
* **Acquisition**: a smooth multiplicative coil sensitivity, complex Gaussian
  noise, an in-plane point-spread function (an acquired resolution coarser
  than the reconstructed pixels), and the magnitude (Rician) image as
  integer raw values clipped to the stored range (see
  :func:`opencmr.phantom.make.make_phantom`).

References
----------
.. [1] H. Gudbjartsson, S. Patz, "The Rician distribution of noisy MRI data",
   Magn. Reson. Med. 34(6), 1995, doi:10.1002/mrm.1910340618.
.. [2] J. Schulz-Menger et al., "Standardized image interpretation and
   post-processing in cardiovascular magnetic resonance: 2020 update",
   J. Cardiovasc. Magn. Reson. 22:19, 2020, doi:10.1186/s12968-020-00610-6
   (short-axis planning and display).
.. [3] O. Bernard et al., IEEE TMI 37(11), 2018, doi:10.1109/TMI.2018.2837502
   (the ACDC data set the measurements above come from).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from opencmr.phantom.anatomy import TISSUE_LABELS, HeartAnatomy, HeartState, Tissue

__all__ = [
    "Contrast",
    "Placement",
    "StackGrid",
    "coil_sensitivity",
    "flow_modulation",
    "place_heart",
    "plan_stack",
    "render_cine",
    "sample_contrast",
]


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _rotate_about(v: np.ndarray, axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rodrigues' rotation of ``v`` about the unit ``axis``."""
    return v * np.cos(angle_rad) + np.cross(axis, v) * np.sin(angle_rad) + axis * (axis @ v) * (1 - np.cos(angle_rad))


@dataclass(frozen=True, eq=False)
class Placement:
    """The heart frame in patient space (RAS+ mm).

    Parameters
    ----------
    origin : numpy.ndarray
        Patient position of the heart-frame origin (LV base centre at ED).
    axes : numpy.ndarray
        ``(3, 3)`` with the heart ``x, y, z`` unit vectors as columns.
    col_direction : numpy.ndarray
        Unit vector of the image column axis (towards the patient's left,
        projected on the short-axis plane); the row axis is
        ``col_direction x axes[:, 2]`` (towards anterior) and the slice axis
        ``-axes[:, 2]`` (base to apex).
    """

    origin: np.ndarray
    axes: np.ndarray
    col_direction: np.ndarray

    def to_heart(self, points: np.ndarray) -> np.ndarray:
        """Heart-frame coordinates of patient points ``(..., 3)``."""
        return (np.asarray(points) - self.origin) @ self.axes


def place_heart(rng: np.random.Generator, lv_length_mm: float, jitter_deg: float = 10.0) -> Placement:
    """Put the heart in the chest with a seeded double-oblique orientation.

    The long axis (apex to base) points right, posterior and superior
    (about 50 deg from the sagittal and 40 deg from the axial plane); the image
    columns follow the patient's left projected on the short-axis plane; seen
    in the conventional display (anterior up) the septum points to the image
    left and about 15 deg up.
    """
    tilt = np.deg2rad(rng.uniform(-jitter_deg, jitter_deg, size=2))
    ez = _unit([0.6, -0.5, 0.62])
    ez = _rotate_about(ez, _unit(np.cross(ez, [0.0, 0.0, 1.0])), tilt[0])
    ez = _unit(_rotate_about(ez, np.array([0.0, 0.0, 1.0]), tilt[1]))
    left = np.array([-1.0, 0.0, 0.0])
    col = _unit(left - (left @ ez) * ez)
    col = _unit(_rotate_about(col, ez, np.deg2rad(rng.uniform(-jitter_deg, jitter_deg))))
    row = np.cross(ez, col)
    septal = np.deg2rad(15.0 + rng.uniform(-jitter_deg, jitter_deg))
    ex = _unit(-np.cos(septal) * col - np.sin(septal) * row)
    ey = np.cross(ez, ex)
    mid_cavity = np.array([-25.0, 20.0, 0.0]) + rng.uniform(-5.0, 5.0, size=3)
    origin = mid_cavity + 0.5 * lv_length_mm * ez
    return Placement(origin=origin, axes=np.stack([ex, ey, ez], axis=1), col_direction=col)


@dataclass(frozen=True, eq=False)
class StackGrid:
    """The short-axis stack: affine, shape, thickness, and the slab it covers in heart ``z``.

    Parameters
    ----------
    affine : numpy.ndarray
        ``(col, row, slice)`` index to RAS+ mm.
    shape : tuple of int
        ``(slices, rows, cols)``.
    slice_thickness_mm : float
    slice_z_mm : numpy.ndarray
        Heart-frame ``z`` of each slice centre plane (decreasing: slice 0 is
        the most basal).
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    slice_thickness_mm: float
    slice_z_mm: np.ndarray

    @property
    def slab_mm(self) -> tuple[float, float]:
        """``(z_lo, z_hi)`` of the imaged slab: slice centres +- half the slice spacing."""
        half = 0.5 * float(np.linalg.norm(self.affine[:3, 2]))
        return float(self.slice_z_mm.min() - half), float(self.slice_z_mm.max() + half)


def plan_stack(
    placement: Placement,
    rng: np.random.Generator,
    *,
    n_slices: int,
    matrix: tuple[int, int],
    pixel_spacing_mm: float,
    slice_spacing_mm: float,
    slice_thickness_mm: float,
) -> StackGrid:
    """Plan a short-axis stack from just above the ED base plane towards the apex.

    Slice 0 is the most basal, as in ACDC and in the usual planning from the
    base to the apex: the slice axis points from the base to the apex, and the
    grid ``(column, row, slice)`` is right-handed, so the slice axis is
    DICOM's normal (row direction cosines x column direction cosines). The
    top of the slab lies between 3 mm below and 3 mm above the ED base, so
    that the first slice shows the basal LV as a ring of myocardium with at
    most 2 mm of atrium in its thickness (the first ACDC slice shows the LV,
    with a complete myocardial ring, at ED in 75 of 80 patients); the field
    of view is
    centred near the heart with a seeded offset of up to 20 mm each way (the
    centre of the ACDC labels lies within about 20 mm of the centre of the
    field of view in most patients), less in a small field of view, which
    must still cover the heart.
    """
    rows, cols = matrix
    top_edge = rng.uniform(-3.0, 3.0)
    z = top_edge - slice_spacing_mm / 2 - slice_spacing_mm * np.arange(n_slices)
    room = float(np.clip((min(rows, cols) * pixel_spacing_mm - 130.0) / 2.0, 0.0, 20.0))
    centre_heart = np.array([15.0 + room * rng.uniform(-1.0, 1.0), room * rng.uniform(-1.0, 1.0), z[0]])
    ez = placement.axes[:, 2]
    col = placement.col_direction
    row = np.cross(col, ez)
    centre = placement.origin + placement.axes @ centre_heart
    affine = np.eye(4)
    affine[:3, 0] = col * pixel_spacing_mm
    affine[:3, 1] = row * pixel_spacing_mm
    affine[:3, 2] = -ez * slice_spacing_mm
    affine[:3, 3] = centre - affine[:3, 0] * (cols - 1) / 2 - affine[:3, 1] * (rows - 1) / 2
    return StackGrid(affine=affine, shape=(n_slices, rows, cols), slice_thickness_mm=slice_thickness_mm, slice_z_mm=z)


@dataclass(frozen=True)
class Contrast:
    """Signal of each tissue as a fraction of the blood signal (balanced SSFP).

    Parameters
    ----------
    blood : float
        Raw signal of LV blood (before the coil sensitivity).
    myocardium, rv_blood, atrial_blood, fat, soft_tissue, lung, liver, aorta, bone, csf, pericardium : float
        Relative signals (the fibrous pericardium, of short T2, is dark on bSSFP).
    flow_variation : float
        Standard deviation of the logarithm of a smooth random modulation of
        the blood signal (:func:`flow_modulation`).
    flow_seed : int
        Seed of that modulation.
    """

    blood: float = 1800.0
    myocardium: float = 0.34
    rv_blood: float = 0.82
    atrial_blood: float = 0.92
    fat: float = 0.85
    soft_tissue: float = 0.3
    lung: float = 0.05
    liver: float = 0.4
    aorta: float = 0.85
    bone: float = 0.45
    csf: float = 0.95
    pericardium: float = 0.12
    flow_variation: float = 0.0
    flow_seed: int = 0

    def heart_table(self) -> np.ndarray:
        """Relative signal indexed by :class:`~opencmr.phantom.anatomy.Tissue` (0: not heart, unused)."""
        table = np.zeros(len(Tissue), dtype=np.float32)
        table[Tissue.RV_BLOOD] = self.rv_blood
        table[Tissue.MYOCARDIUM] = self.myocardium
        table[Tissue.LV_BLOOD] = 1.0
        table[Tissue.RV_WALL] = self.myocardium
        table[Tissue.ATRIAL_BLOOD] = self.atrial_blood
        table[Tissue.PAPILLARY] = 1.05 * self.myocardium
        table[Tissue.EPICARDIAL_FAT] = self.fat
        table[Tissue.TRABECULAE] = 1.05 * self.myocardium
        table[Tissue.RV_TRABECULAE] = 1.05 * self.myocardium
        table[Tissue.PERICARDIUM] = self.pericardium
        table[Tissue.MEDIASTINUM] = self.soft_tissue
        return table

    def blood_table(self) -> np.ndarray:
        """:meth:`heart_table` restricted to the blood pools (the part that :func:`flow_modulation` modulates)."""
        table = self.heart_table()
        blood = np.zeros_like(table)
        for tissue in (Tissue.RV_BLOOD, Tissue.LV_BLOOD, Tissue.ATRIAL_BLOOD):
            blood[tissue] = table[tissue]
        return blood


def sample_contrast(rng: np.random.Generator, blood: float) -> Contrast:
    """A seeded variation of :class:`Contrast` around ``blood`` raw units.

    The myocardium and RV blood ranges cover the ACDC interquartile ranges
    of the measured ratios (which also include partial volume and, for the
    RV, its trabeculations); fat is about as bright as blood (in ACDC the
    90th percentile of a 2--15 mm band under the body surface, mostly
    subcutaneous fat, is 1.08 times the LV blood signal, 0.70--1.67).
    """
    return Contrast(
        blood=blood * rng.uniform(0.9, 1.1),
        myocardium=rng.uniform(0.28, 0.42),
        rv_blood=rng.uniform(0.75, 0.92),
        fat=rng.uniform(0.85, 1.15),
        soft_tissue=rng.uniform(0.25, 0.33),
        liver=rng.uniform(0.33, 0.45),
        flow_variation=0.1,
        flow_seed=int(rng.integers(2**31)),
    )


def flow_modulation(x: np.ndarray, y: np.ndarray, z: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Smooth multiplicative variation of the blood signal at heart-frame points (mm).

    ``exp(sigma * F)`` with ``F`` a seeded sum of 24 plane waves of
    wavelengths 12--80 mm in random directions (unit variance). In bSSFP cine
    the blood signal varies with through-plane inflow and flow dephasing: the
    LV blood signal of ACDC patients varies within a slice (robust standard
    deviation of the 3 mm-smoothed pool, relative to the slice median: 0.14,
    0.10--0.21) and between slices (standard deviation of the slice medians:
    0.10, 0.05--0.19), where an evenly bright pool gives 0.05 and 0.01 and
    ``sigma = 0.1`` (with the trabeculations) 0.10 and 0.07.
    """
    if sigma <= 0:
        return np.ones(np.shape(x), dtype=np.float32)
    rng = np.random.default_rng(seed)
    n_waves = 24
    wavenumber = 2 * np.pi / rng.uniform(12.0, 80.0, n_waves)
    direction = rng.normal(size=(n_waves, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k = (direction * wavenumber[:, None]).tolist()
    phase = rng.uniform(0.0, 2 * np.pi, n_waves).tolist()
    total = np.zeros(np.shape(x), dtype=np.float32)
    for (kx, ky, kz), psi in zip(k, phase, strict=True):
        total += np.cos(kx * x + ky * y + kz * z + psi)
    return np.exp(np.float32(sigma * np.sqrt(2.0 / n_waves)) * total).astype(np.float32)


def _voxel_points(grid: StackGrid, slices: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Patient coordinates of (possibly fractional) voxel indices, ``(..., 3)``."""
    a = grid.affine
    return cols[..., None] * a[:3, 0] + rows[..., None] * a[:3, 1] + slices[..., None] * a[:3, 2] + a[:3, 3]


def _body(p: np.ndarray, contrast: Contrast, heart_mid: np.ndarray) -> np.ndarray:
    """Relative signal of the chest (everything but the heart) at patient points ``(..., 3)``.

    The lungs wrap around the heart (the heart model, drawn over this
    background, hides them where it lies), as in the chest: outside the
    heart, cine shows lung (dark) over most of the lateral and posterior
    circumference of the ventricles, not soft tissue of myocardial signal
    (in ACDC, bands 4.5--7.5 mm outside the LV are darker than the
    myocardium: median 0.23--0.28 of the LV blood signal).
    """
    x, y, z = p[..., 0], p[..., 1], p[..., 2] - heart_mid[2]
    value = np.zeros(x.shape, dtype=np.float32)
    bw, bd, y0, fat = 165.0, 115.0, -10.0, 14.0
    value[(x / bw) ** 2 + ((y - y0) / bd) ** 2 <= 1.0] = contrast.fat
    inner = (x / (bw - fat)) ** 2 + ((y - y0) / (bd - fat)) ** 2 <= 1.0
    value[inner] = contrast.soft_tissue
    dome = -55.0 - ((x - 40.0) ** 2 + (y + 10.0) ** 2) / 300.0  # diaphragm height
    above = z > dome
    lungs = ((x + 85.0) / 72.0) ** 2 + ((y + 5.0) / 92.0) ** 2 <= 1.0
    lungs |= ((x - 80.0) / 68.0) ** 2 + ((y + 5.0) / 92.0) ** 2 <= 1.0
    lungs &= ~((np.abs(x) < 28.0) & (y < -30.0))  # posterior mediastinum: aorta, oesophagus, spine
    value[inner & above & lungs] = contrast.lung
    value[inner & ~above & (x > -50.0)] = contrast.liver
    value[(x + 22.0) ** 2 + (y + 62.0) ** 2 <= 12.0**2] = contrast.aorta
    value[x**2 + (y + 92.0) ** 2 <= 17.0**2] = contrast.bone
    value[x**2 + (y + 115.0) ** 2 <= 7.0**2] = contrast.csf
    return value


def _mark_boundaries(classes: np.ndarray) -> np.ndarray:
    """Voxels whose class differs from one of their 4 in-plane neighbours (``classes[..., row, col]``)."""
    mixed = np.zeros(classes.shape, dtype=bool)
    for sl_a, sl_b in (
        ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
        ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
    ):
        a, b = (..., *sl_a), (..., *sl_b)
        diff = classes[a] != classes[b]
        mixed[a] |= diff
        mixed[b] |= diff
    return mixed


def render_cine(
    anatomy: HeartAnatomy,
    states: Sequence[HeartState],
    placement: Placement,
    grid: StackGrid,
    contrast: Contrast,
    *,
    inplane_samples: int = 3,
    through_plane_samples: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free relative signal and labels of every frame.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(frames, slices, rows, cols)`` float32 signal relative to blood
        (multiply by ``contrast.blood``), and uint8 ACDC labels.
    """
    n_s, n_r, n_c = grid.shape
    n_in, n_th = inplane_samples, through_plane_samples
    sub = (np.arange(n_in) + 0.5) / n_in - 0.5
    spacing = float(np.linalg.norm(grid.affine[:3, 2]))
    through = ((np.arange(n_th) + 0.5) / n_th - 0.5) * grid.slice_thickness_mm / spacing  # in slice units

    # Static chest, supersampled in-plane on the slice centre planes.
    heart_mid = placement.origin - 0.5 * anatomy.lv_axes_mm[2] * placement.axes[:, 2]
    s_idx, r_idx, c_idx = np.meshgrid(np.arange(n_s), np.arange(n_r), np.arange(n_c), indexing="ij")
    background = np.zeros(grid.shape, dtype=np.float32)
    for dr in sub:
        for dc in sub:
            p = _voxel_points(grid, s_idx.astype(float), r_idx + dr, c_idx + dc)
            background += _body(p, contrast, heart_mid)
    background /= n_in * n_in

    # Heart-frame mapping of voxel indices: h = h0 + c * hc + r * hr + s * hs.
    to_heart = placement.axes.T
    h0 = to_heart @ (grid.affine[:3, 3] - placement.origin)
    hc, hr, hs = (to_heart @ grid.affine[:3, k] for k in range(3))

    # Crop to the in-plane region the heart can reach.
    max_scale = max(s.rv_scale for s in states)
    radius = anatomy.inplane_extent_mm(max_scale) + 2 * float(np.linalg.norm(hc))
    rr, cc = np.mgrid[:n_r, :n_c]
    hx = h0[0] + cc * hc[0] + rr * hr[0]
    hy = h0[1] + cc * hc[1] + rr * hr[1]
    near = hx**2 + hy**2 <= radius**2
    rows_in, cols_in = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
    n_frames = len(states)
    signal = np.broadcast_to(background, (n_frames, *grid.shape)).copy()
    labels = np.zeros((n_frames, *grid.shape), dtype=np.uint8)
    if rows_in.size == 0:
        return signal, labels
    r0, r1, c0, c1 = rows_in[0], rows_in[-1] + 1, cols_in[0], cols_in[-1] + 1
    bg_crop = background[:, r0:r1, c0:c1]
    table, blood_table = contrast.heart_table(), contrast.blood_table()

    ks, rs, cs = np.meshgrid(
        np.arange(n_s, dtype=np.float32),
        np.arange(r0, r1, dtype=np.float32),
        np.arange(c0, c1, dtype=np.float32),
        indexing="ij",
    )
    centre = [(h0[i] + cs * hc[i] + rs * hr[i] + ks * hs[i]).astype(np.float32) for i in range(3)]
    flow = flow_modulation(*centre, contrast.flow_variation, contrast.flow_seed) - np.float32(1.0)
    probe_offsets = (through[0], 0.0, through[-1]) if n_th > 1 else (0.0,)
    offsets = np.stack(np.meshgrid(sub, sub, through, indexing="ij"), axis=-1).reshape(-1, 3)  # (dr, dc, ds)
    d_heart = (offsets[:, 0:1] * hr + offsets[:, 1:2] * hc + offsets[:, 2:3] * hs).astype(np.float32)

    for f, state in enumerate(states):
        probes = np.stack(
            [
                anatomy.classify(centre[0] + o * hs[0], centre[1] + o * hs[1], centre[2] + o * hs[2], state)
                for o in probe_offsets
            ]
        )
        mid = probes[len(probe_offsets) // 2]
        mixed = (probes != mid).any(axis=0)
        for probe in probes:
            mixed |= _mark_boundaries(probe)
        crop = np.where(mid > 0, table[mid], bg_crop)
        blood = blood_table[mid]
        idx = np.nonzero(mixed)
        if idx[0].size:
            px = centre[0][idx][:, None] + d_heart[:, 0]
            py = centre[1][idx][:, None] + d_heart[:, 1]
            pz = centre[2][idx][:, None] + d_heart[:, 2]
            cls = anatomy.classify(px, py, pz, state)
            values = np.where(cls > 0, table[cls], bg_crop[idx][:, None])
            crop[idx] = values.mean(axis=1)
            blood[idx] = blood_table[cls].mean(axis=1)
        crop += flow * blood
        signal[f, :, r0:r1, c0:c1] = crop
        labels[f, :, r0:r1, c0:c1] = TISSUE_LABELS[mid]
    return signal, labels


def coil_sensitivity(
    grid: StackGrid, placement: Placement, rng: np.random.Generator, strength: float, heart_mid: np.ndarray
) -> np.ndarray:
    """A smooth multiplicative coil sensitivity (1 at the heart centre) on the stack grid.

    ``exp(strength * (g . n - 0.5 |n|^2))`` with ``n`` the distance from the
    heart in units of 150 mm and ``g`` a seeded direction biased anteriorly
    (towards the anterior surface coil).
    """
    n_s, n_r, n_c = grid.shape
    s_idx, r_idx, c_idx = np.meshgrid(np.arange(n_s), np.arange(n_r), np.arange(n_c), indexing="ij")
    n = (_voxel_points(grid, s_idx.astype(float), r_idx.astype(float), c_idx.astype(float)) - heart_mid) / 150.0
    g = _unit(np.array([0.0, 1.0, 0.0]) + 0.6 * rng.normal(size=3))
    field = np.exp(strength * (n @ g - 0.5 * (n * n).sum(axis=-1)))
    return field.astype(np.float32)
