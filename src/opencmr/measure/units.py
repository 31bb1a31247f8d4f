"""The unit a measurement key carries in its name (``lv_edv_ml`` -> ``mL``), for tables, plots and reports.

opencmr's keys end in their unit (``measurements.json``; see
``opencmr.measure.function.UNITS_NOTE``): this is the one table that reads
them back, used by the agreement tables and plots and by the HTML report.
"""

from __future__ import annotations

__all__ = ["KEY_UNITS", "unit_of"]

#: Key suffix -> unit, longest suffix first (the first match wins).
KEY_UNITS: tuple[tuple[str, str], ...] = (
    ("_l_min_m2", "L/min/m²"),
    ("_ml_m2", "mL/m²"),
    ("_g_m2", "g/m²"),
    ("_l_min", "L/min"),
    ("_percent", "%"),
    ("_bpm", "bpm"),
    ("_ml", "mL"),
    ("_mm", "mm"),
    ("_cm", "cm"),
    ("_kg", "kg"),
    ("_m2", "m²"),
    ("_g", "g"),
)


def unit_of(key: str) -> str:
    """The unit a key carries in its suffix, case-insensitively, or ``""``.

    Examples
    --------
    >>> unit_of("lv_edv_ml"), unit_of("lv_edv_ml_m2"), unit_of("lv_co_l_min"), unit_of("lv_ef_percent")
    ('mL', 'mL/m²', 'L/min', '%')
    >>> unit_of("wall_score"), unit_of("ed_frame")
    ('', '')
    """
    lowered = key.lower()
    return next((unit for suffix, unit in KEY_UNITS if lowered.endswith(suffix)), "")
