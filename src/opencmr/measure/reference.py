"""Reference ranges of adult cardiac MRI (short-axis bSSFP cine) and flags for measured values.

:data:`REFERENCE_RANGES` maps an index name (the keys that
:mod:`opencmr.measure.function` writes, units in the name) and a sex (``"M"``,
``"F"``) to a :class:`ReferenceRange`; :func:`flag_values` compares measured
values with them and returns one :class:`Flag` per value that has a range.

Where the numbers come from
---------------------------
Every number below was read on a retrieved page, named beside it. The
preferred source, the pooled adult tables of Kawel-Boehm et al. 2020 [1]_,
could not be retrieved (only its Table 1, the list of studies and how each
handled the papillary muscles, was readable), so **no number here is a limit
printed in a paper**: each range is **mean ± 2 SD computed here from the
published mean ± SD** of a peer-reviewed 1.5 T SSFP study of healthy adults
(see each entry's ``note``). They are whole-cohort ranges, not age-specific,
and they mix studies:

* LVEF and LV mass index: Petersen et al. 2017 (UK Biobank, n = 804, 45–74
  years) [2]_; papillary muscles counted in the LV *volume* (not the mass),
  as in Kawel-Boehm 2020 Table 1, which is how an ACDC-style label map
  (papillary muscles inside the blood-pool label) measures them.
* LV and RV EDV and ESV in mL: Hudsmith et al. 2005 (n = 108, 21–68 years)
  [3]_; papillary muscles counted in the LV *mass* (Kawel-Boehm 2020 Table 1),
  so its LV volumes run a little smaller than a blood-pool label's.
* LV and RV EDV indexed to BSA: the 2003 J Magn Reson Imaging study of 60
  volunteers (20–65 years), SSFP values [4]_; its abstract does not say how the
  papillary muscles were handled.
* Maximal LV wall thickness: the adult diagnostic criterion of hypertrophic
  cardiomyopathy, wall thickness ≥ 15 mm in one or more LV myocardial segments
  by any imaging technique (2014 ESC guidelines [5]_), the same for both sexes.

No verifiable range was found for LV and RV SV (absolute and indexed), LV
ESV index, absolute LV mass, RVEF and RV ESV index: they are not in the table
and :func:`flag_values` skips them, as it skips every key without a range.

Boundary rule
-------------
A value equal to a limit is normal: ``low`` if ``value < lower``, ``high`` if
``value > upper``. A limit that is itself a diagnostic criterion written with
"≥" is exclusive instead (``upper_inclusive=False``): a maximal wall thickness
of exactly 15 mm is ``high``.

Unknown sex
-----------
``None``, ``""``, ``"O"``, ``"U"``, ``"other"`` and ``"unknown"`` mean that sex
is not known. A range that is the same for both sexes is applied as usual.
Otherwise the flag is ``unknown`` and its text gives both ranges, unless the
value has the same status for both sexes: inside both ranges it is
``normal``, outside both on the same side ``low`` or ``high``, "for either
sex" (nothing is guessed: the answer does not depend on sex). The flag's ``lower`` and
``upper`` are then the envelope of the two ranges (lowest lower, highest upper).

References
----------
.. [1] N. Kawel-Boehm et al., "Reference ranges ("normal values") for
   cardiovascular magnetic resonance (CMR) in adults and children: 2020
   update", J Cardiovasc Magn Reson 22, 2020, 87, doi:10.1186/s12968-020-00683-3;
   Table 1 read at
   https://jcmr-online.biomedcentral.com/articles/10.1186/s12968-020-00683-3/tables/1
.. [2] S. E. Petersen et al., "Reference ranges for cardiac structure and
   function using cardiovascular magnetic resonance (CMR) in Caucasians from
   the UK Biobank population cohort", J Cardiovasc Magn Reson 19, 2017, 18,
   doi:10.1186/s12968-017-0327-9.
.. [3] L. E. Hudsmith et al., "Normal human left and right ventricular and left
   atrial dimensions using steady state free precession magnetic resonance
   imaging", J Cardiovasc Magn Reson 7, 2005, 775-782,
   doi:10.1080/10976640500295516.
.. [4] "Normal human left and right ventricular dimensions for MRI as assessed
   by turbo gradient echo and steady-state free precession imaging sequences",
   J Magn Reson Imaging 17(3), 2003, 323-329, doi:10.1002/jmri.10262.
.. [5] P. M. Elliott et al., "2014 ESC Guidelines on diagnosis and management
   of hypertrophic cardiomyopathy", Eur Heart J 35, 2014, 2733-2779,
   doi:10.1093/eurheartj/ehu284.

Examples
--------
>>> [flag.text for flag in flag_values({"lv_ef_percent": 24.0}, "female")]
['LVEF 24.0 % (normal 51–71 % for women): low']
>>> flag_values({"lv_ef_percent": 50.0, "lv_sv_ml": 80.0}, None)[0].status.value  # low for women only
'unknown'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "INDICES",
    "REFERENCE_RANGES",
    "Flag",
    "FlagStatus",
    "ReferenceRange",
    "Sex",
    "flag_values",
    "parse_sex",
]


class Sex(StrEnum):
    """Sex as the reference ranges are stratified (the DICOM PatientSex letters)."""

    MALE = "M"
    FEMALE = "F"

    @property
    def plural(self) -> str:
        """``"men"`` or ``"women"``, for flag texts."""
        return "men" if self is Sex.MALE else "women"


class FlagStatus(StrEnum):
    """Where a value lies with respect to its reference range."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    UNKNOWN = "unknown"
    """The range depends on sex and sex is not known."""


def _number(x: float) -> str:
    """``51`` for 51.0, ``52.9`` for 52.9: limits as short as they are exact."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


_SEX_WORDS = {"M": Sex.MALE, "MALE": Sex.MALE, "F": Sex.FEMALE, "FEMALE": Sex.FEMALE}
_UNKNOWN_SEX_WORDS = frozenset({"", "O", "U", "OTHER", "UNKNOWN"})


def parse_sex(value: str | None) -> Sex | None:
    """Convert a user- or file-supplied sex (case-insensitive) to a :class:`Sex`, or ``None`` when unknown.

    Accepted: ``"M"``, ``"F"``, ``"male"``, ``"female"``; ``None``, ``""``,
    ``"O"``, ``"U"``, ``"other"`` and ``"unknown"`` give ``None``.

    Raises
    ------
    ValueError
        For any other value, naming it.

    Examples
    --------
    >>> parse_sex("female"), parse_sex("U")
    (<Sex.FEMALE: 'F'>, None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        word = value.strip().upper()
        if word in _SEX_WORDS:
            return _SEX_WORDS[word]
        if word in _UNKNOWN_SEX_WORDS:
            return None
    raise ValueError(
        f"unknown sex {value!r} (expected M, F, male or female; None, '', O, U, other or unknown when not known)"
    )


@dataclass(frozen=True)
class ReferenceRange:
    """The normal range of one index for one sex.

    Parameters
    ----------
    index : str
        Index name with its unit, as written by :mod:`opencmr.measure.function`.
    sex : str
        ``"M"`` or ``"F"``.
    lower, upper : float or None
        Limits of the normal range; ``None`` where there is none.
    unit : str
        Unit for display (``"mL"``, ``"%"``, ``"g/m²"``...).
    source : str
        Paper, table or section, DOI, and the URL where the numbers were read.
    note : str
        What kind of range it is (how the limits were obtained) and the
        contouring convention of the source.
    upper_inclusive : bool
        Whether a value equal to ``upper`` is normal (default). ``False`` for
        a criterion written "≥ upper".
    """

    index: str
    sex: str
    lower: float | None
    upper: float | None
    unit: str
    source: str
    note: str
    upper_inclusive: bool = True

    def __post_init__(self) -> None:
        if self.lower is None and self.upper is None:
            raise ValueError(f"{self.index}: a reference range needs a lower or an upper limit")
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ValueError(f"{self.index}: lower limit {self.lower} is not below upper limit {self.upper}")

    def status(self, value: float) -> FlagStatus:
        """``low``, ``normal`` or ``high`` (see the boundary rule in the module docstring)."""
        if self.lower is not None and value < self.lower:
            return FlagStatus.LOW
        if self.upper is not None and (value > self.upper if self.upper_inclusive else value >= self.upper):
            return FlagStatus.HIGH
        return FlagStatus.NORMAL

    def describe(self) -> str:
        """The normal range in words: ``"51–71 %"``, ``"< 15 mm"``."""
        if self.lower is not None and self.upper is not None:
            return f"{_number(self.lower)}–{_number(self.upper)} {self.unit}"
        if self.upper is not None:
            return f"{'≤' if self.upper_inclusive else '<'} {_number(self.upper)} {self.unit}"
        return f"≥ {_number(self.lower)} {self.unit}"  # type: ignore[arg-type]

    def _same_limits(self, other: ReferenceRange) -> bool:
        return (self.lower, self.upper, self.upper_inclusive) == (other.lower, other.upper, other.upper_inclusive)


@dataclass(frozen=True)
class Flag:
    """A measured value compared with its reference range.

    ``lower`` and ``upper`` are the limits applied: the range of the given
    sex, or, when sex is unknown, the envelope of both sexes' ranges.
    ``sex`` is ``"M"``, ``"F"`` or ``None`` (unknown).
    """

    index: str
    value: float
    lower: float | None
    upper: float | None
    status: FlagStatus
    text: str
    unit: str
    sex: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``status`` as its string)."""
        return {
            "index": self.index,
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "unit": self.unit,
            "sex": self.sex,
            "status": self.status.value,
            "text": self.text,
        }


#: Display names of the index names the measurement module writes.
_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "lv_edv_ml": "LV EDV",
        "lv_esv_ml": "LV ESV",
        "lv_sv_ml": "LV SV",
        "lv_ef_percent": "LVEF",
        "lv_mass_g": "LV mass",
        "lv_edv_ml_m2": "LV EDV index",
        "lv_esv_ml_m2": "LV ESV index",
        "lv_sv_ml_m2": "LV SV index",
        "lv_mass_g_m2": "LV mass index",
        "rv_edv_ml": "RV EDV",
        "rv_esv_ml": "RV ESV",
        "rv_sv_ml": "RV SV",
        "rv_ef_percent": "RVEF",
        "rv_edv_ml_m2": "RV EDV index",
        "rv_esv_ml_m2": "RV ESV index",
        "rv_sv_ml_m2": "RV SV index",
        "max_wall_thickness_mm": "Maximal LV wall thickness",
    }
)

#: Every index name this module knows; only those in :data:`REFERENCE_RANGES` have a range.
INDICES: tuple[str, ...] = tuple(_LABELS)

# ---------------------------------------------------------------------------
# Sources: what was read, and where.
# ---------------------------------------------------------------------------

_PETERSEN_2017 = (
    "Petersen SE et al., Reference ranges for cardiac structure and function using CMR in Caucasians from the "
    "UK Biobank population cohort, J Cardiovasc Magn Reson 2017;19:18, doi:10.1186/s12968-017-0327-9; "
    "abstract, Results (n = 804, 45-74 years, 1.5 T SSFP); read at "
    "https://jcmr-online.biomedcentral.com/articles/10.1186/s12968-017-0327-9"
)
_HUDSMITH_2005 = (
    "Hudsmith LE, Petersen SE, Francis JM, Robson MD, Neubauer S, Normal human left and right ventricular and "
    "left atrial dimensions using steady state free precession magnetic resonance imaging, J Cardiovasc Magn Reson "
    "2005;7:775-782, doi:10.1080/10976640500295516; abstract, Results (63 men, 45 women, 1.5 T SSFP); read at "
    "https://www.cardioscience.ox.ac.uk/publications/104926 and https://id.scribd.com/document/57508446"
)
_JMRI_2003 = (
    "Normal human left and right ventricular dimensions for MRI as assessed by turbo gradient echo and "
    "steady-state free precession imaging sequences, J Magn Reson Imaging 2003;17(3):323-329, "
    "doi:10.1002/jmri.10262, PMID 12594722; abstract, Results, SSFP values (30 men, 30 women, 20-65 years); "
    "read at https://pubmed.ncbi.nlm.nih.gov/12594722/"
)
_ESC_HCM_2014 = (
    "Elliott PM et al., 2014 ESC Guidelines on diagnosis and management of hypertrophic cardiomyopathy, "
    "Eur Heart J 2014;35:2733-2779, doi:10.1093/eurheartj/ehu284, Diagnostic criteria, adults: 'a wall thickness "
    ">=15 mm in one or more LV myocardial segments ... measured by any imaging technique (echo, CMR or CT)'; "
    "read on the guideline summary slides https://www.slideshare.net/slideshow/2014-esc-hcm/45159344 "
    "(the guideline's own pages were retrievable only up to its author list); the 2023 ESC cardiomyopathy "
    "guidelines keep '15 mm or greater in any myocardial segment' (criteria page read at "
    "https://bibliotheek.ehb.be:2400/topics/en-us/409/criteria)"
)
_KAWEL_BOEHM_TABLE_1 = (
    "https://jcmr-online.biomedcentral.com/articles/10.1186/s12968-020-00683-3/tables/1 (Kawel-Boehm 2020, Table 1)"
)
_PAPILLARY_IN_VOLUME = f"Papillary muscles included in the LV volume ({_KAWEL_BOEHM_TABLE_1})."
_PAPILLARY_IN_MASS = (
    f"Papillary muscles included in the LV mass ({_KAWEL_BOEHM_TABLE_1}); "
    "LV volumes therefore smaller than with papillary muscles in the blood pool."
)
_PAPILLARY_NOT_STATED = "How the papillary muscles were handled is not stated in the abstract."
_RV_NOT_STATED = "How RV trabeculations were handled is not stated in the abstract."


def _mean_2sd(index: str, sex: Sex, mean: float, sd: float, unit: str, source: str, convention: str) -> ReferenceRange:
    """A range of mean ± 2 SD from a published mean ± SD (the source prints no limits for it)."""
    return ReferenceRange(
        index=index,
        sex=sex.value,
        lower=round(mean - 2.0 * sd, 2),
        upper=round(mean + 2.0 * sd, 2),
        unit=unit,
        source=source,
        note=(
            f"Kind: mean ± 2 SD, computed here from the published mean ± SD {_number(mean)} ± {_number(sd)} {unit} "
            f"({sex.plural}); not a limit printed in the source. Whole cohort, not age-specific. {convention}"
        ),
    )


def _criterion_upper(index: str, sex: Sex, upper: float, unit: str, source: str, note: str) -> ReferenceRange:
    """An upper limit that is a diagnostic criterion 'value ≥ upper'."""
    return ReferenceRange(index, sex.value, None, float(upper), unit, source, note, upper_inclusive=False)


_M, _F = Sex.MALE, Sex.FEMALE

_ENTRIES: tuple[ReferenceRange, ...] = (
    # Hudsmith 2005 abstract: "LV end-diastolic volume 160 +/- 29 mL vs. 135 +/- 26 mL" (males vs females).
    _mean_2sd("lv_edv_ml", _M, 160, 29, "mL", _HUDSMITH_2005, _PAPILLARY_IN_MASS),
    _mean_2sd("lv_edv_ml", _F, 135, 26, "mL", _HUDSMITH_2005, _PAPILLARY_IN_MASS),
    # Hudsmith 2005 abstract: "LV end-systolic volume 50 +/- 16 mL vs. 42 +/- 12 mL".
    _mean_2sd("lv_esv_ml", _M, 50, 16, "mL", _HUDSMITH_2005, _PAPILLARY_IN_MASS),
    _mean_2sd("lv_esv_ml", _F, 42, 12, "mL", _HUDSMITH_2005, _PAPILLARY_IN_MASS),
    # Petersen 2017 abstract: LVEF "mean ± standard deviation [SD] of 61 ± 5% vs 58 ± 5%" (females vs males).
    _mean_2sd("lv_ef_percent", _M, 58, 5, "%", _PETERSEN_2017, _PAPILLARY_IN_VOLUME),
    _mean_2sd("lv_ef_percent", _F, 61, 5, "%", _PETERSEN_2017, _PAPILLARY_IN_VOLUME),
    # JMRI 2003 abstract: SSFP LV EDV/BSA "in males it was 82.3 +/- 14.7 and in females it was 77.7 +/- 10.8".
    _mean_2sd("lv_edv_ml_m2", _M, 82.3, 14.7, "mL/m²", _JMRI_2003, _PAPILLARY_NOT_STATED),
    _mean_2sd("lv_edv_ml_m2", _F, 77.7, 10.8, "mL/m²", _JMRI_2003, _PAPILLARY_NOT_STATED),
    # Petersen 2017 abstract: LV mass "mean ± SD of 53 ± 9 g/m2 vs 42 ± 7 g/m2" (males vs females).
    _mean_2sd("lv_mass_g_m2", _M, 53, 9, "g/m²", _PETERSEN_2017, _PAPILLARY_IN_VOLUME),
    _mean_2sd("lv_mass_g_m2", _F, 42, 7, "g/m²", _PETERSEN_2017, _PAPILLARY_IN_VOLUME),
    # Hudsmith 2005 abstract: "RV end-diastolic volume 190 +/- 33 mL vs. 148 +/- 35 mL".
    _mean_2sd("rv_edv_ml", _M, 190, 33, "mL", _HUDSMITH_2005, _RV_NOT_STATED),
    _mean_2sd("rv_edv_ml", _F, 148, 35, "mL", _HUDSMITH_2005, _RV_NOT_STATED),
    # Hudsmith 2005 abstract: "RV end-systolic volume 78 +/- 20 mL vs. 56 +/- 18 mL".
    _mean_2sd("rv_esv_ml", _M, 78, 20, "mL", _HUDSMITH_2005, _RV_NOT_STATED),
    _mean_2sd("rv_esv_ml", _F, 56, 18, "mL", _HUDSMITH_2005, _RV_NOT_STATED),
    # JMRI 2003 abstract: SSFP RV EDV/BSA "in males it was 86.2 +/- 14.1 and in females it was 75.2 +/- 13.8".
    _mean_2sd("rv_edv_ml_m2", _M, 86.2, 14.1, "mL/m²", _JMRI_2003, _PAPILLARY_NOT_STATED),
    _mean_2sd("rv_edv_ml_m2", _F, 75.2, 13.8, "mL/m²", _JMRI_2003, _PAPILLARY_NOT_STATED),
    # 2014 ESC HCM guidelines: adult HCM criterion, maximal LV wall thickness >= 15 mm, both sexes.
    *(
        _criterion_upper(
            "max_wall_thickness_mm",
            sex,
            15,
            "mm",
            _ESC_HCM_2014,
            "Kind: diagnostic criterion (HCM in adults: >= 15 mm in any LV segment), not a population range; "
            "15 mm itself is high. The same for both sexes; 13-14 mm is diagnostic only in first-degree "
            "relatives of a patient with HCM, which is not handled here.",
        )
        for sex in (_M, _F)
    ),
)


def _build_table(entries: tuple[ReferenceRange, ...]) -> Mapping[str, Mapping[str, ReferenceRange]]:
    table: dict[str, dict[str, ReferenceRange]] = {}
    for entry in entries:
        table.setdefault(entry.index, {})[entry.sex] = entry
    return MappingProxyType({index: MappingProxyType(by_sex) for index, by_sex in table.items()})


#: ``REFERENCE_RANGES[index][sex]``: the :class:`ReferenceRange` of an index (``"lv_ef_percent"``) for
#: ``"M"`` or ``"F"``. Indices without a verifiable range are absent (see the module docstring).
REFERENCE_RANGES: Mapping[str, Mapping[str, ReferenceRange]] = _build_table(_ENTRIES)


def flag_values(values: Mapping[str, float | None], sex: str | None) -> list[Flag]:
    """Compare measured values with the adult reference ranges.

    Parameters
    ----------
    values : mapping of str to float or None
        Index name (``"lv_ef_percent"``...) to value. ``None`` and NaN are
        skipped, and so is every key without a range in
        :data:`REFERENCE_RANGES`.
    sex : str or None
        ``"M"``, ``"F"``, ``"male"``, ``"female"`` (any case); ``None``, ``""``,
        ``"O"``, ``"U"``, ``"other"``, ``"unknown"`` when not known.

    Returns
    -------
    list of Flag
        In the order of :data:`REFERENCE_RANGES`.

    Raises
    ------
    ValueError
        If ``sex`` is none of the accepted strings (the message names it).

    Examples
    --------
    >>> flags = flag_values({"lv_ef_percent": 40.0, "max_wall_thickness_mm": 16.0}, "")
    >>> [(flag.index, flag.status.value) for flag in flags]
    [('lv_ef_percent', 'low'), ('max_wall_thickness_mm', 'high')]
    >>> flags[0].text
    'LVEF 40.0 % (normal 48–68 % for men, 51–71 % for women): low for either sex'
    """
    parsed = parse_sex(sex)
    flags = []
    for index, by_sex in REFERENCE_RANGES.items():
        value = values.get(index)
        if value is None or math.isnan(value):
            continue
        value = float(value)
        if parsed is not None:
            flags.append(_flag_known_sex(by_sex[parsed.value], value, parsed))
        else:
            flags.append(_flag_unknown_sex(index, by_sex, value))
    return flags


def _flag_known_sex(reference: ReferenceRange, value: float, sex: Sex) -> Flag:
    status = reference.status(value)
    head = _value_text(reference.index, value, reference.unit)
    text = f"{head} (normal {reference.describe()} for {sex.plural}): {status}"
    return Flag(reference.index, value, reference.lower, reference.upper, status, text, reference.unit, sex.value)


def _flag_unknown_sex(index: str, by_sex: Mapping[str, ReferenceRange], value: float) -> Flag:
    men, women = by_sex[Sex.MALE.value], by_sex[Sex.FEMALE.value]
    head = _value_text(index, value, men.unit)
    if men._same_limits(women):
        status = men.status(value)
        text = f"{head} (normal {men.describe()} for men and women): {status}"
        return Flag(index, value, men.lower, men.upper, status, text, men.unit, None)
    lower = None if men.lower is None or women.lower is None else min(men.lower, women.lower)
    upper = None if men.upper is None or women.upper is None else max(men.upper, women.upper)
    both = f"{men.describe()} for men, {women.describe()} for women"
    statuses = {men.status(value), women.status(value)}
    if statuses in ({FlagStatus.LOW}, {FlagStatus.HIGH}, {FlagStatus.NORMAL}):
        (status,) = statuses
        text = f"{head} (normal {both}): {status} for either sex"
    else:
        status = FlagStatus.UNKNOWN
        text = f"{head}: the normal range depends on sex ({both}) and sex is unknown"
    return Flag(index, value, lower, upper, status, text, men.unit, None)


def _value_text(index: str, value: float, unit: str) -> str:
    return f"{_LABELS.get(index, index)} {value:.1f} {unit}"
