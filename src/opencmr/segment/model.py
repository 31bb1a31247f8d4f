"""Model files: the network's weights together with the configuration that prepares its input.

A model file is a plain ``torch.save`` dictionary of tensors, numbers and
strings, read back with ``torch.load(weights_only=True)``: loading never
unpickles arbitrary objects, so a model file from elsewhere cannot run code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from opencmr.errors import InputError
from opencmr.io._atomic import atomic_output
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.network import build_network

__all__ = ["FORMAT", "SegmentationModel", "default_model_path", "load_model", "load_segmenter", "load_weights_widening_input", "save_model"]

FORMAT = "opencmr-segmentation-model"
FORMAT_VERSION = 1
DEFAULT_MODEL = "acdc_unet.pt"


@dataclass(frozen=True, eq=False)
class SegmentationModel:
    """A network in evaluation mode and how to prepare its input.

    Attributes
    ----------
    config : SegmentationConfig
    network : torch.nn.Module
    info : dict
        Provenance: name, training data, iterations, validation metrics.
    """

    config: SegmentationConfig
    network: nn.Module
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Short name for reports (``info['name']`` or ``'unnamed'``)."""
        return str(self.info.get("name", "unnamed"))

    def forward_fn(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """``logits = f(batch)`` for float32 batches ``(N, config.in_channels, H, W)``, in inference mode, on the network's device."""
        network = self.network
        device = next(network.parameters()).device

        def forward(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return network(batch.to(device)).float().cpu()

        return forward


def default_model_path() -> Path:
    """The bundled release model (trained on ACDC; see ``MODEL_CARD.md`` beside it)."""
    return Path(str(resources.files("opencmr.segment") / "weights" / DEFAULT_MODEL))


def save_model(model: SegmentationModel, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``model`` (float32 weights, configuration, provenance) to ``path`` atomically."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "info": model.info,
        "state_dict": {k: v.detach().cpu().float() for k, v in model.network.state_dict().items()},
    }
    with atomic_output(path, overwrite=overwrite) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> SegmentationModel:
    """Load a model file (the bundled model when ``path`` is None), in evaluation mode."""
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unreadable file is the same user error
        raise InputError(path, f"is not a readable opencmr model file ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(path, "is not an opencmr segmentation model file")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(path, "was written by a newer opencmr; upgrade to read it")
    try:
        config = SegmentationConfig.from_dict(payload["config"])
        network = build_network(config)
        network.load_state_dict(payload["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise InputError(path, f"model file is inconsistent: {exc}") from None
    network.to(device).eval()
    return SegmentationModel(config, network, dict(payload.get("info", {})))


def load_weights_widening_input(network: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``network``, giving a network with more input channels the old single-slice weights.

    Weights whose only difference is a wider input axis (axis 1: a 2D model's
    first convolutions, loaded into a 2.5D network) are placed on the centre
    channel, the slice itself, with zeros for the neighbouring slices: the
    widened network starts out computing exactly what the 2D one did, and
    fine-tuning learns what the neighbours add.

    Raises
    ------
    ValueError
        When a weight differs in any other way (another architecture).
    """
    target = network.state_dict()
    if set(target) != set(state):
        raise ValueError("the initial weights belong to another architecture (different layers)")
    merged = {}
    for key, new in target.items():
        old = state[key]
        if old.shape == new.shape:
            merged[key] = old
        elif old.ndim == new.ndim >= 2 and old.shape[0] == new.shape[0] and old.shape[2:] == new.shape[2:] and (new.shape[1] - old.shape[1]) % 2 == 0:
            start = (new.shape[1] - old.shape[1]) // 2
            widened = torch.zeros_like(new)
            widened[:, start : start + old.shape[1]] = old
            merged[key] = widened
        else:
            raise ValueError(f"the initial weights do not fit the network: {key} is {tuple(old.shape)}, needs {tuple(new.shape)}")
    network.load_state_dict(merged)


_SEGMENTERS: dict[tuple[str, int, int], Any] = {}


def load_segmenter(path: str | os.PathLike[str] | None = None):
    """The bundled model, or a model file: ``.onnx`` files run through ONNX Runtime, others through PyTorch.

    Loaded once per process and kept (a cohort batch analyses many studies in
    one worker): a later call with the same file returns the same object,
    unless the file changed on disk (size or modification time). The models
    are used for inference only; do not train the returned object.
    """
    file = default_model_path() if path is None else Path(path)
    try:
        stat = file.stat()
        key: tuple[str, int, int] | None = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None  # let the loaders raise their own clear error
    if key is not None and key in _SEGMENTERS:
        return _SEGMENTERS[key]
    if file.suffix.lower() == ".onnx":
        from opencmr.segment.onnx import load_onnx_model

        model = load_onnx_model(file)
    else:
        model = load_model(file)
    if key is not None:
        _SEGMENTERS.clear()  # keep one: a new file replaces the previous one
        _SEGMENTERS[key] = model
    return model
