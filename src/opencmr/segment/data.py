"""Training data: labelled short-axis slices, pre-processed once and kept in memory.

Every labelled frame of every patient is prepared with
:func:`opencmr.segment.preprocess.prepare_study` (the inference path) and cut
into slices. Crops are drawn from them on the fly: a share centred anywhere
in the image (so the network learns what background far from the heart
looks like) and the rest centred near the heart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opencmr.errors import InputError
from opencmr.io.read import read_study
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.preprocess import context_indices, prepare_study

__all__ = ["Case", "SliceBank", "end_slices", "find_cases", "load_cases", "split_cases"]


@dataclass(frozen=True)
class Case:
    """One labelled volume (a frame of a patient) on the model grid."""

    patient: str
    frame: int
    image: np.ndarray  # (slices, rows, cols) float32
    labels: np.ndarray  # (slices, rows, cols) uint8
    spacing_mm: tuple[float, float, float]


def find_cases(data_dir: str | os.PathLike[str]) -> list[Path]:
    """Patient folders (any folder holding labels that :func:`read_study` accepts) under ``data_dir``, sorted."""
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(root, "is not a folder of training patients")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*_gt.nii*")))
    if not folders:
        raise InputError(root, "holds no patient folders with *_gt.nii.gz label files")
    return folders


def split_cases(folders: Sequence[Path], n_validation: int, seed: int, groups: Sequence[str] | None = None) -> tuple[list[Path], list[Path]]:
    """Patient-level split: ``n_validation`` patients held out, spread evenly over ``groups`` when given."""
    rng = np.random.default_rng(seed)
    folders = list(folders)
    if n_validation <= 0:
        return folders, []
    if n_validation >= len(folders):
        raise ValueError(f"cannot hold out {n_validation} of {len(folders)} patients")
    order = list(rng.permutation(len(folders)))
    if groups is not None:
        # round-robin over groups so every group is represented
        by_group: dict[str, list[int]] = {}
        for i in order:
            by_group.setdefault(groups[i], []).append(i)
        queues = [by_group[g] for g in sorted(by_group)]
        order = [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)]
    held = set(order[:n_validation])
    return [f for i, f in enumerate(folders) if i not in held], [f for i, f in enumerate(folders) if i in held]


def load_cases(
    folders: Sequence[Path], config: SegmentationConfig, progress: Callable[[int, int], None] | None = None
) -> list[Case]:
    """Read, normalise and resample every labelled frame of ``folders``."""
    cases = []
    for n, folder in enumerate(folders):
        study = read_study(folder)
        if study.labels is None:
            raise InputError(folder, "has no label files")
        prepared = prepare_study(study, config, frames=study.labels.frame_numbers)
        assert prepared.labels is not None
        for k, frame in enumerate(prepared.label_frames):
            cases.append(
                Case(
                    folder.name,
                    frame,
                    np.ascontiguousarray(prepared.image[k]),
                    np.ascontiguousarray(prepared.labels[k]),
                    prepared.geometry.spacing,
                )
            )
        if progress is not None:
            progress(n + 1, len(folders))
    return cases


def end_slices(labels: np.ndarray) -> tuple[int, ...]:
    """The first and the last slice of a ``(slices, rows, cols)`` label volume with any structure in it.

    In a short-axis stack these are the most basal and the most apical slices
    of the heart (which is which depends on the stack's direction), where
    automatic and manual segmentation disagree most (Bernard et al., IEEE TMI
    2018): is a basal slice ventricle or atrium?

    >>> v = np.zeros((5, 2, 2), np.uint8); v[1:4, 0, 0] = 3
    >>> end_slices(v)
    (1, 3)
    """
    present = np.flatnonzero(np.asarray(labels).reshape(len(labels), -1).any(axis=1))
    return () if present.size == 0 else tuple(sorted({int(present[0]), int(present[-1])}))


@dataclass
class SliceBank:
    """All labelled slices, with their neighbours (for simulated thick slices) and heart boxes."""

    cases: list[Case]
    index: list[tuple[int, int]] = field(init=False)
    boxes: dict[tuple[int, int], tuple[int, int, int, int]] = field(init=False)
    ends: set[tuple[int, int]] = field(init=False)
    _probabilities: dict[float, np.ndarray] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = [(c, s) for c, case in enumerate(self.cases) for s in range(case.image.shape[0])]
        self.ends = {(c, s) for c, case in enumerate(self.cases) for s in end_slices(case.labels)}
        self.boxes = {}
        for c, case in enumerate(self.cases):
            fg_volume = np.argwhere(case.labels > 0)
            for s in range(case.image.shape[0]):
                fg = np.argwhere(case.labels[s] > 0)
                if fg.size == 0 and fg_volume.size:
                    fg = fg_volume[:, 1:]
                if fg.size:
                    self.boxes[(c, s)] = (*fg.min(0).tolist(), *fg.max(0).tolist())

    def __len__(self) -> int:
        return len(self.index)

    def _draw_probabilities(self, end_slice_weight: float) -> np.ndarray:
        """Probability of drawing each slice of :attr:`index` when end slices weigh ``end_slice_weight``."""
        if end_slice_weight not in self._probabilities:
            weights = np.array([end_slice_weight if key in self.ends else 1.0 for key in self.index])
            self._probabilities[end_slice_weight] = weights / weights.sum()
        return self._probabilities[end_slice_weight]

    def sample(
        self, rng: np.random.Generator, batch_size: int, patch: tuple[int, int], heart_fraction: float = 0.5,
        thick_slice_probability: float = 0.15, context: int = 0, end_slice_weight: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """A batch of crops ``(batch, 1 + 2 * context, rows, cols)`` float32 and labels ``(batch, rows, cols)`` int64.

        Crops beyond the image are zero-padded (label background). With
        probability ``thick_slice_probability`` a slice is blended with its
        neighbours, as partial volume in a thicker slice would. With
        ``context`` > 0 the neighbouring slices come as extra channels
        (edge slices repeated, as :func:`opencmr.segment.preprocess.stack_context`
        does), in reversed order for half of the crops, since stacks run
        base-to-apex or apex-to-base depending on the scanner. A slice at
        either end of a case's heart (:func:`end_slices`: the most basal and
        the most apical, where short-axis segmentation errs most) is drawn
        ``end_slice_weight`` times as often as any other slice (1: uniformly).
        """
        images = np.zeros((batch_size, 1 + 2 * context, *patch), np.float32)
        labels = np.zeros((batch_size, *patch), np.int64)
        if end_slice_weight == 1.0:
            picks = rng.integers(0, len(self.index), batch_size)
        else:
            picks = rng.choice(len(self.index), batch_size, p=self._draw_probabilities(end_slice_weight))
        for b, pick in enumerate(picks):
            c, s = self.index[pick]
            case = self.cases[c]
            n_slices = case.image.shape[0]
            image = case.image[s]
            if rng.random() < thick_slice_probability and n_slices > 1:
                lo, hi = max(s - 1, 0), min(s + 1, n_slices - 1)
                w = rng.uniform(0.1, 0.35)
                image = (1 - w) * image + w * 0.5 * (case.image[lo] + case.image[hi])
            stack = [image]
            if context:
                order = context_indices(n_slices, context)[s]
                order = order[::-1] if rng.random() < 0.5 else order
                stack = [image if k == context else case.image[i] for k, i in enumerate(order)]
            rows, cols = image.shape
            box = self.boxes.get((c, s))
            if box is not None and rng.random() < heart_fraction:
                cr = rng.integers(box[0], box[2] + 1)
                cc = rng.integers(box[1], box[3] + 1)
            else:
                cr, cc = rng.integers(0, rows), rng.integers(0, cols)
            r0, c0 = cr - patch[0] // 2, cc - patch[1] // 2
            src_r = slice(max(r0, 0), min(r0 + patch[0], rows))
            src_c = slice(max(c0, 0), min(c0 + patch[1], cols))
            dst_r = slice(src_r.start - r0, src_r.stop - r0)
            dst_c = slice(src_c.start - c0, src_c.stop - c0)
            for channel, plane in enumerate(stack):
                images[b, channel, dst_r, dst_c] = plane[src_r, src_c]
            labels[b, dst_r, dst_c] = case.labels[s][src_r, src_c]
        return images, labels
