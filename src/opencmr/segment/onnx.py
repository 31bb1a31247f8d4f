"""ONNX export of a segmentation model and an ONNX Runtime inference path.

The exported file carries the model's :class:`SegmentationConfig` and
provenance in its metadata (``opencmr_config``, ``opencmr_info``), so an
ONNX file, like a ``.pt`` model file, fully describes how to prepare input
for it. Rows, columns and batch are dynamic axes.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opencmr.errors import InputError, OpenCMRError
from opencmr.io._atomic import atomic_output
from opencmr.segment.config import SegmentationConfig
from opencmr.segment.model import SegmentationModel

__all__ = ["OnnxSegmentationModel", "export_onnx", "load_onnx_model"]

OPSET = 17


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise OpenCMRError(f"the ONNX path needs the '{module}' package: pip install 'opencmr[onnx]'") from None


def export_onnx(model: SegmentationModel, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Export ``model``'s network to ONNX (opset 17) with its configuration in the metadata."""
    onnx = _require("onnx")
    network = copy.deepcopy(model.network).cpu().eval()
    example = torch.zeros(1, model.config.in_channels, *model.config.patch_size)
    axes = {0: "batch", 2: "rows", 3: "cols"}
    with atomic_output(path, overwrite=overwrite) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and instance-norm training-mode notes
        torch.onnx.export(
            network, (example,), str(tmp), input_names=["image"], output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes}, opset_version=OPSET, dynamo=False,
        )
        proto = onnx.load(str(tmp))
        for key, value in (("opencmr_config", model.config.to_dict()), ("opencmr_info", model.info)):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        onnx.save(proto, str(tmp))
    return Path(path)


@dataclass(frozen=True, eq=False)
class OnnxSegmentationModel:
    """An ONNX Runtime session with the configuration read from the file's metadata."""

    config: SegmentationConfig
    session: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Short name for reports."""
        return str(self.info.get("name", "unnamed")) + " (onnx)"

    def forward_fn(self):
        """``logits = f(batch)`` through ONNX Runtime."""
        session = self.session

        def forward(batch: torch.Tensor) -> torch.Tensor:
            (logits,) = session.run(["logits"], {"image": np.ascontiguousarray(batch.numpy(), np.float32)})
            return torch.from_numpy(logits)

        return forward


def load_onnx_model(path: str | os.PathLike[str], threads: int = 0) -> OnnxSegmentationModel:
    """Open an exported model with ONNX Runtime (CPU); ``threads`` 0 uses the runtime's default."""
    ort = _require("onnxruntime")
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "ONNX model file not found")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 -- onnxruntime raises its own untyped errors
        raise InputError(path, f"is not a readable ONNX model ({type(exc).__name__})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if "opencmr_config" not in meta:
        raise InputError(path, "has no opencmr configuration in its metadata; export it with 'opencmr export-onnx'")
    try:
        config = SegmentationConfig.from_dict(json.loads(meta["opencmr_config"]))
        info = json.loads(meta.get("opencmr_info", "{}"))
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"has unusable opencmr metadata: {exc}") from None
    return OnnxSegmentationModel(config, session, info)
