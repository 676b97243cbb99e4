"""Self-contained HTML reports: ``wb.report(exp, model=model, X=X).save("report.html")``."""

from .builder import Report, report

__all__ = ["Report", "report"]
