"""``opencmr meta``: evidence synthesis commands, a Typer sub-application registered by :mod:`opencmr.cli`.

:mod:`opencmr.cli` imports this module to register :data:`meta_app`, and the
commands here use its ``_user_errors`` decorator and ``console``. To keep the
import one-way, this module never imports :mod:`opencmr.cli` at import time:
:func:`_cli_errors` looks ``_user_errors`` up when a command runs (by then
``opencmr.cli`` is fully loaded, whichever module was imported first), and
commands fetch ``console`` the same way. Importing either module first works.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

meta_app = typer.Typer(
    help="Evidence synthesis: meta-analysis of diagnostic accuracy and of continuous metrics.",
    no_args_is_help=True,
)

F = TypeVar("F", bound=Callable[..., Any])


class MethodChoice(str, Enum):
    """``--method`` values (the library's :class:`~opencmr.meta.continuous.PoolingMethod`, kept here so that
    ``opencmr --help`` does not import numpy/scipy)."""

    reml = "reml"
    dl = "dl"
    fe = "fe"


def _cli_errors(func: F) -> F:
    """``opencmr.cli._user_errors`` applied at call time (one-line errors, exit code 1, ``--debug``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from opencmr.cli import _user_errors

        return _user_errors(func)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@meta_app.command("mean")
@_cli_errors
def mean(
    studies_csv: Annotated[
        Path,
        typer.Argument(
            help="CSV with one study per row: study, mean, sd, n (e.g. Dice reported as mean ± SD over n cases).",
            show_default=False,
        ),
    ],
    method: Annotated[
        MethodChoice,
        typer.Option("--method", case_sensitive=False, help="Between-study variance: REML, DerSimonian-Laird, or fixed effect."),
    ] = MethodChoice.reml,
    logit: Annotated[
        bool, typer.Option("--logit", help="Pool on the logit scale (metrics in (0, 1) such as Dice), back-transformed.")
    ] = False,
    difference: Annotated[
        bool,
        typer.Option(
            "--difference", help="Two-arm CSV (n1i, m1i, sd1i, n2i, m2i, sd2i): pool mean differences (pooled SD)."
        ),
    ] = False,
    prediction_t: Annotated[
        bool, typer.Option("--prediction-t", help="t-based prediction interval (k-2 df, Higgins 2009) instead of normal.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for summary.json, studies.csv, forest.png and forest.svg.", file_okay=False),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Pool a continuous metric reported per study as mean ± SD (inverse variance, random effects)."""
    from rich.table import Table

    from opencmr.cli import console
    from opencmr.io._atomic import check_writable
    from opencmr.meta.continuous import pool_means, read_means_csv, write_pooling_json, write_studies_csv

    names = ("summary.json", "studies.csv", "forest.png", "forest.svg")
    if out is not None:  # refuse before computing or writing anything
        for name in names:
            check_writable(out / name, overwrite)
    studies = read_means_csv(studies_csv, logit=logit, difference=difference)
    result = pool_means(studies, method.value, logit=logit, prediction="t" if prediction_t else "normal")
    level = f"{result.level:.0%}"
    table = Table(title=f"{'mean difference' if difference else 'mean'}: {result.method_label}"
                  f"{', logit scale' if logit else ''}", show_header=False, title_justify="left")
    table.add_column("statistic", style="bold")
    table.add_column("value")
    low, high = result.estimate_ci
    p_low, p_high = result.prediction_interval
    table.add_row("studies (k)", str(result.k))
    table.add_row("pooled estimate", f"{result.estimate:.4g} ({level} CI {low:.4g} to {high:.4g})")
    table.add_row("tau²" + (" (logit scale)" if logit else ""), f"{result.tau2:.4g} (tau {result.tau:.4g})")
    table.add_row("I²", f"{result.i2:.1f}%")
    table.add_row("Cochran Q", f"{result.q:.4g} (df {result.q_df}, p = {result.q_pvalue:.2g})")
    table.add_row(f"{level} prediction interval", f"{p_low:.4g} to {p_high:.4g}")
    console.print(table)
    if out is not None:
        from opencmr.meta.forest_means import plot_mean_forest

        write_pooling_json(result, out / "summary.json", overwrite=overwrite)
        write_studies_csv(result, out / "studies.csv", overwrite=overwrite)
        for name in ("forest.png", "forest.svg"):
            plot_mean_forest(result, out / name, overwrite=overwrite)
        console.print(f"wrote {', '.join(names)} to {out}", highlight=False)
