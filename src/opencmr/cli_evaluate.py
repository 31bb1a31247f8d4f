"""``opencmr evaluate``, ``evaluate-diagnosis`` and ``agreement``: the evaluation commands (registered by :mod:`opencmr.cli`).

Thin layers over :mod:`opencmr.evaluate`: segmentation metrics, diagnostic
accuracy of a group classifier, and agreement of clinical indices. Like
:mod:`opencmr.cli_batch`, this module never imports :mod:`opencmr.cli` at
import time; the error handling, consoles and formatting helpers are looked
up when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from opencmr.cli_errors import cli_errors

__all__ = ["agreement", "evaluate", "evaluate_diagnosis"]


@cli_errors
def evaluate_diagnosis(
    predictions: Annotated[
        Path,
        typer.Argument(
            metavar="PREDICTIONS.csv",
            help="One row per case: case id (column case), probabilities p_NOR, p_DCM, p_HCM, p_MINF, p_RV, "
            "the predicted group (column group; default: the most probable) and, without --truth, the true group "
            "(column truth).",
            show_default=False,
        ),
    ],
    truth: Annotated[
        Path | None, typer.Option("--truth", help="CSV of the true groups: columns case and group.", show_default=False)
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o",
            help="Folder for classification_report.json, two_by_two.csv, roc.png, reliability.png and confusion.png. "
            "Default: print only.",
        ),
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=0, help="Bootstrap resamples of the AUC intervals.")] = 2000,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Diagnostic accuracy of a group classifier (NOR, DCM, HCM, MINF, RV) against the true groups.

    Accuracy, and per group (one vs rest) sensitivity and specificity, with Wilson 95 % intervals.
    AUC per group (one vs rest) with stratified bootstrap intervals (seed 0), and their macro average.
    Multi-class Brier score, top-label ECE (10 bins) and the confusion matrix.
    two_by_two.csv: TP, FP, FN, TN per group (study: the PREDICTIONS file name), for a meta-analysis.
    """
    from opencmr.cli import console
    from opencmr.errors import InputError, OutputError
    from opencmr.evaluate.classification import (
        evaluate_classification,
        plot_confusion,
        plot_reliability,
        plot_roc,
        read_diagnosis_table,
        write_report_json,
        write_two_by_two_csv,
    )
    from opencmr.io._atomic import check_writable

    names = ("classification_report.json", "two_by_two.csv", "roc.png", "reliability.png", "confusion.png")
    if out is not None:  # every output is checked before any is written
        if out.exists() and not out.is_dir():
            raise OutputError(out, "is a file, not a folder")
        for name in names:
            check_writable(out / name, overwrite)
    table = read_diagnosis_table(predictions, truth)
    try:
        report = evaluate_classification(table.true, table.proba, table.classes, n_boot=n_boot, seed=0, pred=table.pred)
    except ValueError as exc:
        raise InputError(predictions, str(exc)) from None

    def ci(value: float, interval: tuple[float, float], compact: bool = False) -> str:
        if value != value:  # noqa: PLR0124 - NaN
            return "undefined"
        if interval[0] != interval[0]:
            return f"{value:.3f}"
        if compact:  # two lines in a narrow table cell
            return f"{value:.3f}\n({interval[0]:.3f}–{interval[1]:.3f})"
        return f"{value:.3f} ({interval[0]:.3f} to {interval[1]:.3f})"

    level = f"{100 * report.level:g}%"
    summary = Table(title=f"diagnosis: {report.n} cases", show_header=False, title_justify="left")
    summary.add_column("statistic", style="bold")
    summary.add_column("value")
    acc = report.accuracy
    summary.add_row("accuracy", f"{ci(acc.estimate, acc.ci)} {acc.successes}/{acc.n}, {level} CI Wilson")
    summary.add_row("balanced accuracy", f"{report.balanced_accuracy:.3f}")
    macro = report.auc_macro
    bootstrap = f" {level} CI bootstrap" if macro.ci[0] == macro.ci[0] else ""  # not NaN
    summary.add_row("macro AUC (one vs rest)", f"{ci(macro.value, macro.ci)}{bootstrap}")
    summary.add_row("Brier score (0 best, 2 worst)", f"{report.brier:.3f}")
    summary.add_row(f"ECE (top label, {report.n_bins} bins)", f"{report.ece:.3f}")
    console.print(summary)
    per_class = Table(title=f"per group, one vs rest ({level} CI)", title_justify="left")
    for header in ("group", "cases", "sensitivity", "specificity", "AUC", "Brier"):
        per_class.add_column(header, justify="left" if header == "group" else "right")
    for m in report.per_class:
        per_class.add_row(
            m.name, str(m.sensitivity.n), ci(m.sensitivity.estimate, m.sensitivity.ci, compact=True),
            ci(m.specificity.estimate, m.specificity.ci, compact=True), ci(m.auc.value, m.auc.ci, compact=True),
            f"{m.brier:.3f}",
        )  # fmt: skip
    console.print(per_class)
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("true \\ predicted", style="bold")
    for name in report.classes:
        confusion.add_column(name, justify="right")
    for name, row in zip(report.classes, report.confusion.tolist(), strict=True):
        confusion.add_row(name, *(str(count) for count in row))
    console.print(confusion)
    for note in (*table.notes, *report.notes):
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if out is not None:
        written = [
            write_report_json(report, out / names[0], overwrite=overwrite),
            write_two_by_two_csv(report, out / names[1], predictions.stem, overwrite=overwrite),
            plot_roc(report, out / names[2], overwrite=overwrite),
            plot_reliability(report, out / names[3], overwrite=overwrite),
            plot_confusion(report, out / names[4], overwrite=overwrite),
        ]
        console.print(f"wrote {len(written)} files to {out}: {', '.join(p.name for p in written)}", highlight=False)


@cli_errors
def evaluate(
    pred: Annotated[Path, typer.Option("--pred", help="Predicted label file or folder.", show_default=False)],
    gt: Annotated[Path, typer.Option("--gt", help="Reference label file or folder (ACDC tree accepted).", show_default=False)],
    gt_labels: Annotated[
        str | None, typer.Option("--gt-labels", help="Label mapping of the reference: 'mnms' or e.g. '1=3,2=2,3=1'.")
    ] = None,
    pred_labels: Annotated[str | None, typer.Option("--pred-labels", help="Label mapping of the prediction.")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write per-case metrics to this CSV file.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing CSV file.")] = False,
) -> None:
    """Dice, Hausdorff, HD95 and ASSD (mm, spacing-aware) per structure and phase."""
    from opencmr.cli import console
    from opencmr.evaluate.segmentation import (
        LabelMapping,
        evaluate_files,
        evaluate_folders,
        format_summary,
        summarize,
        write_csv,
    )
    from opencmr.io._atomic import check_writable

    if csv_path is not None:
        check_writable(csv_path, overwrite)
    from opencmr.errors import InputError

    mappings = {}
    for option, text in (("--gt-labels", gt_labels), ("--pred-labels", pred_labels)):
        try:
            mappings[option] = None if text is None else LabelMapping.parse(text)
        except ValueError as exc:
            raise InputError(option, str(exc)) from None
    gt_map, pred_map = mappings["--gt-labels"], mappings["--pred-labels"]
    if pred.is_dir() or gt.is_dir():
        rows = evaluate_folders(pred, gt, gt_mapping=gt_map, pred_mapping=pred_map)
    else:
        rows = evaluate_files(pred, gt, gt_mapping=gt_map, pred_mapping=pred_map)
    console.print(format_summary(summarize(rows)), highlight=False)
    if csv_path is not None:
        console.print(f"wrote {write_csv(rows, csv_path, overwrite=overwrite)}", highlight=False)


@cli_errors
def agreement(
    automatic_csv: Annotated[
        Path,
        typer.Argument(
            metavar="AUTO.csv",
            help="Indices of the automatic analysis: one row per case, a case id column (named case, patient or id, "
            "else the first column) and one numeric column per index (lv_edv_ml, lv_ef_percent, ...).",
            show_default=False,
        ),
    ],
    manual_csv: Annotated[
        Path,
        typer.Argument(metavar="MANUAL.csv", help="Reference (manual) indices, same layout.", show_default=False),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for agreement.csv and, per index, bland_altman_<index>.png and scatter_<index>.png. "
            "Default: print only.",
        ),
    ] = None,
    index: Annotated[
        list[str] | None,
        typer.Option("--index", help="Index (column) to compare; repeatable. Default: every index in both files."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
) -> None:
    """Agreement of clinical indices between automatic and manual analysis, over the cases in both files.

    Per index: Bland-Altman bias (automatic - manual) and 95 % limits of agreement with their confidence
    intervals, Pearson and Spearman correlation, ICC(A,1) and ICC(C,1) (two-way, single measure) and the
    mean absolute error. Cases are matched by id; a case with a missing value is left out of that index.
    """
    from opencmr.cli import _fmt, _fmt_list, console
    from opencmr.errors import InputError, OutputError
    from opencmr.evaluate.agreement import (
        agreement_table,
        drop_missing_pairs,
        index_file_stem,
        pair_tables,
        plot_bland_altman,
        plot_scatter,
        read_index_table,
        unit_of,
        write_agreement_csv,
    )
    from opencmr.io._atomic import check_writable

    paired = pair_tables(
        read_index_table(automatic_csv, indices=index),
        read_index_table(manual_csv, indices=index),
        sources=(str(automatic_csv), str(manual_csv)),
    )
    try:
        rows = agreement_table(paired.automatic, paired.manual, indices=index)
    except ValueError as exc:
        raise InputError(f"{automatic_csv} vs {manual_csv}", str(exc)) from None
    plots: dict[str, tuple[Path, Path]] = {}
    if out is not None:  # every output is checked before any is written
        if out.exists() and not out.is_dir():
            raise OutputError(out, "is a file, not a folder")
        for row in rows:
            stem = index_file_stem(row.index)
            plots[row.index] = (out / f"bland_altman_{stem}.png", out / f"scatter_{stem}.png")
        targets = [out / "agreement.csv", *(path for pair in plots.values() for path in pair)]
        if len(set(targets)) < len(targets):
            raise OutputError(out, "two index names give the same plot file name; choose indices with --index")
        for target in targets:
            check_writable(target, overwrite)

    def num(value: float, unit: str = "") -> str:
        return f"{_fmt(float(value))} {unit}".strip()

    def coefficient(value: float, ci: tuple[float, float] | None, p: float | None = None) -> str:
        if value != value:  # noqa: PLR0124 - NaN (no numpy import in the CLI module)
            return "undefined"
        text = f"{value:.3f}"
        if ci is not None:
            text += f" (95% CI {ci[0]:.3f} to {ci[1]:.3f}"
            text += ")" if p is None else f", p = {p:.2g})"
        return text

    for row in rows:
        unit, ba = unit_of(row.index), row.bland_altman
        table = Table(title=row.index, show_header=False, title_justify="left")
        table.add_column("statistic", style="bold")
        table.add_column("value")
        skipped = f" ({row.n_skipped} with a missing value left out)" if row.n_skipped else ""
        table.add_row("n (pairs)", f"{row.n}{skipped}")
        table.add_row("mean automatic, manual", f"{num(row.mean_automatic)}, {num(row.mean_manual, unit)}")
        table.add_row(
            "bias (automatic - manual)",
            f"{num(ba.bias, unit)} (95% CI {num(ba.bias_ci[0])} to {num(ba.bias_ci[1])})",
        )
        table.add_row("limits of agreement", f"{num(ba.lower)} to {num(ba.upper, unit)} (bias ± 1.96 SD, SD {num(ba.sd)})")
        table.add_row("Pearson r", coefficient(row.pearson.r, row.pearson.ci, row.pearson.p_value))
        table.add_row("Spearman rho", coefficient(row.spearman.r, None))
        table.add_row("ICC(A,1) absolute agreement", coefficient(row.icc_agreement.value, row.icc_agreement.ci))
        table.add_row("ICC(C,1) consistency", coefficient(row.icc_consistency.value, row.icc_consistency.ci))
        table.add_row("mean absolute error", num(row.mae, unit))
        console.print(table)
        for note in row.notes:
            console.print(f"[yellow]note:[/] {row.index}: {note}", highlight=False)
    for ids, source in ((paired.only_automatic, automatic_csv), (paired.only_manual, manual_csv)):
        if ids:
            console.print(f"[yellow]note:[/] {len(ids)} case(s) only in {source}: {_fmt_list(list(ids))}", highlight=False)
    if index is None:
        for names, source in ((paired.indices_only_automatic, automatic_csv), (paired.indices_only_manual, manual_csv)):
            if names:
                console.print(f"[yellow]note:[/] not compared, only in {source}: {', '.join(names)}", highlight=False)
    if out is not None:
        console.print(f"wrote {write_agreement_csv(rows, out / 'agreement.csv', overwrite=overwrite)}", highlight=False)
        for row in rows:
            x, y, _ = drop_missing_pairs(paired.automatic[row.index], paired.manual[row.index])
            bland_altman_png, scatter_png = plots[row.index]
            plot_bland_altman(x, y, bland_altman_png, row.index, unit_of(row.index), overwrite=overwrite)
            plot_scatter(x, y, scatter_png, row.index, unit_of(row.index), overwrite=overwrite)
        console.print(f"wrote {2 * len(rows)} plots (bland_altman_*.png, scatter_*.png) to {out}", highlight=False)
