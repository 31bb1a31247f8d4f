"""Body-surface area, for indexing volumes and mass to body size.

References
----------
.. [1] R. D. Mosteller, "Simplified calculation of body-surface area",
   N Engl J Med 317, 1987, p. 1098, doi:10.1056/NEJM198710223171717.
.. [2] D. Du Bois and E. F. Du Bois, "A formula to estimate the approximate
   surface area if height and weight be known", Arch Intern Med 17, 1916,
   pp. 863-871, doi:10.1001/archinte.1916.00080130010002.
"""

from __future__ import annotations

import math
from enum import Enum

__all__ = ["BsaFormula", "body_surface_area"]


class BsaFormula(str, Enum):
    """Body-surface-area formula."""

    MOSTELLER = "mosteller"
    """sqrt(height_cm x weight_kg / 3600) [1]_ (the default; recommended for its simplicity)."""
    DUBOIS = "dubois"
    """0.007184 x weight_kg^0.425 x height_cm^0.725 [2]_."""


def body_surface_area(height_cm: float, weight_kg: float, formula: BsaFormula | str = BsaFormula.MOSTELLER) -> float:
    """Body-surface area in m² from height (cm) and weight (kg).

    Raises
    ------
    ValueError
        Non-positive or implausible height or weight (height outside 30-272 cm,
        weight outside 1-650 kg: almost certainly metres or pounds given by mistake).

    Examples
    --------
    >>> round(body_surface_area(180, 80), 4)  # sqrt(180 * 80 / 3600) = sqrt(4)
    2.0
    >>> round(body_surface_area(180, 80, "dubois"), 3)
    1.996
    """
    formula = BsaFormula(formula)
    if not (math.isfinite(height_cm) and 30.0 <= height_cm <= 272.0):
        raise ValueError(f"height {height_cm} cm is not a plausible body height in centimetres")
    if not (math.isfinite(weight_kg) and 1.0 <= weight_kg <= 650.0):
        raise ValueError(f"weight {weight_kg} kg is not a plausible body weight in kilograms")
    if formula is BsaFormula.MOSTELLER:
        return math.sqrt(height_cm * weight_kg / 3600.0)
    return 0.007184 * weight_kg**0.425 * height_cm**0.725
