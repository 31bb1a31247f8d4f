"""Image a heart model as a short-axis bSSFP cine stack in patient space.

* **Placement**: the heart frame is put in the chest with a double-oblique
  orientation (long axis pointing right, posterior and superior from the
  apex, seeded jitter), and the short-axis stack is planned perpendicular to
  the long axis, displayed the conventional way (anterior up, the RV on the
  image left).
* **Contrast**: balanced SSFP cine -- bright blood, dark-grey myocardium, bright
  fat, dark lungs -- in a chest of soft tissue with a subcutaneous fat rim,
  lungs, liver below the diaphragm, descending aorta and spine.
* **Partial volume**: each voxel averages ``n x n`` in-plane by ``m``
  through-plane sub-samples across the slice thickness. To stay fast only the
  voxels a boundary passes through (their probes or neighbours differ) are
  supersampled; labels come from the voxel centre on the slice centre plane.
* **Acquisition**: a smooth multiplicative coil sensitivity, Rician noise
  (magnitude of complex Gaussian noise), integer raw values clipped to the
  stored range.

References
----------
.. [1] H. Gudbjartsson, S. Patz, "The Rician distribution of noisy MRI data",
   Magn. Reson. Med. 34(6), 1995, doi:10.1002/mrm.1910340618.
.. [2] J. Schulz-Menger et al., "Standardized image interpretation and
   post-processing in cardiovascular magnetic resonance: 2020 update",
   J. Cardiovasc. Magn. Reson. 22:19, 2020, doi:10.1186/s12968-020-00610-6
   (short-axis planning and display).
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
        Unit vector of the image column axis (the short-axis display's
        "right"); the row axis is ``axes[:, 2] x col_direction``.
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
    columns follow the patient's left projected on the short-axis plane, so
    that anterior is up; the septum points to image left and about 15 deg up.
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
        Heart-frame ``z`` of each slice centre plane.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    slice_thickness_mm: float
    slice_z_mm: np.ndarray

    @property
    def slab_mm(self) -> tuple[float, float]:
        """``(z_lo, z_hi)`` of the imaged slab: slice centres +- half the slice spacing."""
        half = 0.5 * float(np.linalg.norm(self.affine[:3, 2]))
        return float(self.slice_z_mm[0] - half), float(self.slice_z_mm[-1] + half)


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

    Slice 0 is the most apical (the slice axis points from apex to base, along
    ``row x column`` as DICOM's normal). The top of the slab lies 1--6 mm above
    the ED base; the field of view is centred between the LV and RV with a
    seeded offset.
    """
    rows, cols = matrix
    top_edge = rng.uniform(1.0, 6.0)
    z = top_edge - slice_spacing_mm / 2 - slice_spacing_mm * np.arange(n_slices)[::-1]
    centre_heart = np.array([12.0 + rng.uniform(-8.0, 8.0), rng.uniform(-8.0, 8.0), z[0]])
    ez = placement.axes[:, 2]
    col = placement.col_direction
    row = np.cross(ez, col)
    centre = placement.origin + placement.axes @ centre_heart
    affine = np.eye(4)
    affine[:3, 0] = col * pixel_spacing_mm
    affine[:3, 1] = row * pixel_spacing_mm
    affine[:3, 2] = ez * slice_spacing_mm
    affine[:3, 3] = centre - affine[:3, 0] * (cols - 1) / 2 - affine[:3, 1] * (rows - 1) / 2
    return StackGrid(affine=affine, shape=(n_slices, rows, cols), slice_thickness_mm=slice_thickness_mm, slice_z_mm=z)


@dataclass(frozen=True)
class Contrast:
    """Signal of each tissue as a fraction of the blood signal (balanced SSFP).

    Parameters
    ----------
    blood : float
        Raw signal of LV blood (before the coil sensitivity).
    myocardium, rv_blood, atrial_blood, fat, soft_tissue, lung, liver, aorta, bone, csf : float
        Relative signals.
    """

    blood: float = 1800.0
    myocardium: float = 0.31
    rv_blood: float = 0.95
    atrial_blood: float = 0.92
    fat: float = 0.85
    soft_tissue: float = 0.3
    lung: float = 0.05
    liver: float = 0.4
    aorta: float = 0.85
    bone: float = 0.45
    csf: float = 0.95

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
        return table


def sample_contrast(rng: np.random.Generator, blood: float) -> Contrast:
    """A seeded variation of :class:`Contrast` around ``blood`` raw units."""
    return Contrast(
        blood=blood * rng.uniform(0.9, 1.1),
        myocardium=rng.uniform(0.26, 0.35),
        rv_blood=rng.uniform(0.9, 1.0),
        fat=rng.uniform(0.75, 0.95),
        soft_tissue=rng.uniform(0.25, 0.33),
        liver=rng.uniform(0.33, 0.45),
    )


def _voxel_points(grid: StackGrid, slices: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Patient coordinates of (possibly fractional) voxel indices, ``(..., 3)``."""
    a = grid.affine
    return cols[..., None] * a[:3, 0] + rows[..., None] * a[:3, 1] + slices[..., None] * a[:3, 2] + a[:3, 3]


def _body(p: np.ndarray, contrast: Contrast, heart_mid: np.ndarray) -> np.ndarray:
    """Relative signal of the chest (everything but the heart) at patient points ``(..., 3)``."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2] - heart_mid[2]
    value = np.zeros(x.shape, dtype=np.float32)
    bw, bd, y0, fat = 165.0, 115.0, -10.0, 14.0
    value[(x / bw) ** 2 + ((y - y0) / bd) ** 2 <= 1.0] = contrast.fat
    inner = (x / (bw - fat)) ** 2 + ((y - y0) / (bd - fat)) ** 2 <= 1.0
    value[inner] = contrast.soft_tissue
    dome = -55.0 - ((x - 40.0) ** 2 + (y + 10.0) ** 2) / 300.0  # diaphragm height
    above = z > dome
    lungs = ((x + 95.0) / 52.0) ** 2 + ((y + 15.0) / 78.0) ** 2 <= 1.0
    lungs |= ((x - 82.0) / 57.0) ** 2 + ((y + 15.0) / 82.0) ** 2 <= 1.0
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
    table = contrast.heart_table()

    ks, rs, cs = np.meshgrid(
        np.arange(n_s, dtype=np.float32),
        np.arange(r0, r1, dtype=np.float32),
        np.arange(c0, c1, dtype=np.float32),
        indexing="ij",
    )
    centre = [(h0[i] + cs * hc[i] + rs * hr[i] + ks * hs[i]).astype(np.float32) for i in range(3)]
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
        idx = np.nonzero(mixed)
        if idx[0].size:
            px = centre[0][idx][:, None] + d_heart[:, 0]
            py = centre[1][idx][:, None] + d_heart[:, 1]
            pz = centre[2][idx][:, None] + d_heart[:, 2]
            cls = anatomy.classify(px, py, pz, state)
            values = np.where(cls > 0, table[cls], bg_crop[idx][:, None])
            crop[idx] = values.mean(axis=1)
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
