"""``opencmr meta``: evidence synthesis commands, a Typer sub-application registered by :mod:`opencmr.cli`.

:mod:`opencmr.cli` imports this module to register :data:`meta_app`, and the
commands here use its ``_user_errors`` decorator and ``console``. To keep the
import one-way, this module never imports :mod:`opencmr.cli` at import time:
:func:`opencmr.cli_errors.cli_errors` looks ``_user_errors`` up when a command runs (by then
``opencmr.cli`` is fully loaded, whichever module was imported first), and
commands fetch ``console`` the same way. Importing either module first works.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from opencmr.cli_errors import cli_errors

meta_app = typer.Typer(
    help="Evidence synthesis: meta-analysis of diagnostic accuracy and of continuous metrics.",
    no_args_is_help=True,
)

class MethodChoice(str, Enum):
    """``--method`` values (the library's :class:`~opencmr.meta.continuous.PoolingMethod`, kept here so that
    ``opencmr --help`` does not import numpy/scipy)."""

    reml = "reml"
    dl = "dl"
    fe = "fe"


@meta_app.command("mean")
@cli_errors
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
        typer.Option(
            "--method", case_sensitive=False, help="Between-study variance: REML, DerSimonian-Laird, or fixed effect."
        ),
    ] = MethodChoice.reml,
    logit: Annotated[
        bool,
        typer.Option("--logit", help="Pool on the logit scale (metrics in (0, 1) such as Dice), back-transformed."),
    ] = False,
    difference: Annotated[
        bool,
        typer.Option(
            "--difference", help="Two-arm CSV (n1i, m1i, sd1i, n2i, m2i, sd2i): pool mean differences (pooled SD)."
        ),
    ] = False,
    prediction_t: Annotated[
        bool,
        typer.Option("--prediction-t", help="t-based prediction interval (k-2 df, Higgins 2009) instead of normal."),
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
    table = Table(
        title=f"{'mean difference' if difference else 'mean'}: {result.method_label}{', logit scale' if logit else ''}",
        show_header=False,
        title_justify="left",
    )
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


class BivariateMethod(str, Enum):
    """``--method`` of ``meta dta``: the bivariate model's estimation."""

    reml = "reml"
    ml = "ml"


class ScopeChoice(str, Enum):
    """``--correction-scope`` values (mada's ``correction.control``)."""

    all = "all"
    single = "single"
    none = "none"


class ConventionChoice(str, Enum):
    """``--convention``: textbook formulas, or mada's printed numbers (quirks included)."""

    textbook = "textbook"
    mada = "mada"


@meta_app.command("dta")
@cli_errors
def dta(
    studies_csv: Annotated[
        Path,
        typer.Argument(
            help="CSV with one study per row: TP, FP, FN, TN, a study id and optional covariates.", show_default=False
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for per_study.csv, univariate.csv, bivariate.csv, summary.json, forest and SROC "
            "plots (PNG and SVG).",
            file_okay=False,
        ),
    ] = None,
    method: Annotated[
        BivariateMethod, typer.Option("--method", case_sensitive=False, help="Bivariate model fit.")
    ] = BivariateMethod.reml,
    correction: Annotated[
        float, typer.Option("--correction", min=0.0, help="Continuity correction added to cells.")
    ] = 0.5,
    correction_scope: Annotated[
        ScopeChoice,
        typer.Option(
            "--correction-scope",
            case_sensitive=False,
            help="all: every study when any cell is zero (mada); single: only studies with a zero; none.",
        ),
    ] = ScopeChoice.all,
    convention: Annotated[
        ConventionChoice,
        typer.Option("--convention", case_sensitive=False, help="Univariate formulas: textbook, or mada's."),
    ] = ConventionChoice.textbook,
    covariate: Annotated[
        str | None, typer.Option("--covariate", help="Study-level covariate for bivariate meta-regression (LRT, AIC).")
    ] = None,
    evaluation: Annotated[
        Path | None,
        typer.Option(
            "--evaluation",
            help="Add opencmr's own evaluation as a study: the two_by_two.csv of "
            "'opencmr evaluate-diagnosis'. It is pooled and marked on the SROC plot.",
        ),
    ] = None,
    evaluation_class: Annotated[
        str | None, typer.Option("--evaluation-class", help="Which class of --evaluation to add (default: all).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Diagnostic-test-accuracy meta-analysis: per-study accuracy, univariate pooling (as MetaDisc 1.4) and the
    bivariate model (Reitsma 2005, as R's mada), with paired forest and SROC plots."""
    from rich.table import Table

    from opencmr.cli import console
    from opencmr.io._atomic import check_writable
    from opencmr.meta.data import ContinuityCorrection, read_dta_csv
    from opencmr.meta.dta import OUTPUT_FILES, add_evaluation, dta_meta_analysis, write_dta_outputs

    if out is not None:
        for name in OUTPUT_FILES:
            check_writable(out / name, overwrite)
    studies = read_dta_csv(studies_csv)
    highlighted: tuple[str, ...] = ()
    if evaluation is not None:
        studies, highlighted = add_evaluation(studies, evaluation, evaluation_class)
    analysis = dta_meta_analysis(
        studies,
        ContinuityCorrection(correction, correction_scope.value),
        method=method.value,
        convention=convention.value,
        covariate=covariate,
        highlighted=highlighted,
    )
    uni, biv = analysis.univariate, analysis.bivariate
    table = Table(title=f"{studies.k} studies; {uni.correction.describe(studies.counts())}")
    for column in ("measure", "fixed effect (95% CI)", "random effects (95% CI)", "I²", "tau²"):
        table.add_column(column)
    for name, pooled in (
        ("sensitivity", uni.sensitivity),
        ("specificity", uni.specificity),
        ("LR+", uni.positive_lr),
        ("LR-", uni.negative_lr),
        ("DOR", uni.dor),
    ):
        fixed, random, het = pooled.fixed, pooled.random, pooled.heterogeneity
        table.add_row(name, _estimate(fixed), _estimate(random), f"{het.i2:.1f}%", f"{het.tau2:.3g}")
    console.print(table)
    rho = uni.threshold.spearman_rho
    console.print(
        f"threshold effect: Spearman rho(logit TPR, logit FPR) = {rho:.3f} (p = {uni.threshold.spearman_p:.3g})",
        highlight=False,
    )
    if biv is not None and biv.sensitivity is not None:
        s, f = biv.sensitivity, biv.fpr
        console.print(
            f"bivariate ({method.value.upper()}): sensitivity {s.estimate:.3f} ({s.ci_lower:.3f}-{s.ci_upper:.3f}), "
            f"FPR {f.estimate:.3f} ({f.ci_lower:.3f}-{f.ci_upper:.3f}), AUC {biv.auc:.3f}, pAUC {biv.pauc:.3f}",
            highlight=False,
        )
    if analysis.summary_points is not None:
        sp = analysis.summary_points
        console.print(
            f"bivariate summary (sampled): LR+ {sp.pos_lr.median:.3g}, LR- {sp.neg_lr.median:.3g}, DOR {sp.dor.median:.3g}",
            highlight=False,
        )
    if analysis.phm is not None and analysis.phm.auc is not None:
        console.print(
            f"proportional hazards model: theta {analysis.phm.theta.estimate:.4g}, AUC {analysis.phm.auc.estimate:.3f}",
            highlight=False,
        )
    if biv is not None and biv.regression is not None:
        r = biv.regression
        console.print(
            f"meta-regression on {covariate}: LRT {r.lr_statistic:.3f} (df {r.lr_df}, p = {r.lr_p_value:.3g}), "
            f"AIC {r.aic_ml_with:.2f} with, {r.aic_ml_without:.2f} without",
            highlight=False,
        )
    for note in analysis.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if out is not None:
        written = write_dta_outputs(analysis, out, overwrite=overwrite)
        console.print(f"wrote {', '.join(p.name for p in written)} to {out}", highlight=False)


def _estimate(pooled: Any) -> str:
    value, (low, high) = pooled.value, pooled.value_ci
    return f"{value:.3g} ({low:.3g}-{high:.3g})"
