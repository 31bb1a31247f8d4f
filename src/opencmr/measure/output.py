"""``measurements.json`` and ``measurements.csv``: the measurement results as files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from opencmr.io._atomic import atomic_output
from opencmr.measure.function import Measurements

__all__ = ["write_measurements_csv", "write_measurements_json"]


def write_measurements_json(
    measurements: Measurements, path: str | os.PathLike[str], *, case: str | None = None, overwrite: bool = False
) -> Path:
    """Write the ``measurements.json`` document (:meth:`Measurements.to_dict`), with ``case`` first when given."""
    document = {"case": case, **measurements.to_dict()} if case is not None else measurements.to_dict()
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        tmp.write_text(json.dumps(document, indent=1) + "\n")
    return target


def write_measurements_csv(
    measurements: Measurements, path: str | os.PathLike[str], *, case: str, overwrite: bool = False
) -> Path:
    """Write one CSV row (header + values) with the case identifier in the first column, ``case``."""
    row = {"case": case, **measurements.row()}
    target = Path(path)
    with atomic_output(target, overwrite) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return target
