"""The self-contained HTML report of an analysed study (``report.html``): :func:`write_report`."""

from opencmr.report.html import DISCLAIMER, REPORT_HTML, render_report, write_report

__all__ = ["DISCLAIMER", "REPORT_HTML", "render_report", "write_report"]
