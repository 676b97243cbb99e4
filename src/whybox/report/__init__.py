"""Self-contained HTML reports: ``wb.report(exp, model=model, X=X).save("report.html")``.

``wb.report(exp, *, model=None, X=None, y=None, X_train=None, rows=None, reasons=None,
truth=None, recourse=None, quality=True, background=None, metrics=None, compare=None, ...)``
builds a ``Report`` of an Explanation (tabular rows, several classes, or images): a summary,
global importance, feature effects (effect curves need ``model`` and ``X``), local explanations of
``rows``, reason codes, recourse, quality metrics (``quality=True``, with ``model``) and the
limitations a check finds. ``report.save(path)`` writes one HTML file with every figure
inlined (no network loads); ``report.to_html()`` returns it as a string.

``whybox.report`` is both this subpackage and the public function: importing a subpackage
binds its name on the parent package, which would shadow a function of the same name. The
module is therefore made callable, so ``wb.report(...)`` always calls the builder's
``report()`` whatever was imported first, and carries its signature
(``inspect.signature(wb.report)``, ``help`` and IDEs show the real parameters).

Examples
--------
>>> from sklearn.linear_model import LinearRegression
>>> X, y = wb.zoo.diabetes()
>>> model = LinearRegression().fit(X, y)
>>> exp = wb.explain(model, X.iloc[:5], background=X.iloc[:50])
>>> rep = wb.report(exp, rows=[0], top_features=1, quality=False)
>>> [section["title"] for section in rep.sections]
['Summary', 'Global importance', 'Feature effects', 'Local explanations', 'Limitations']
>>> rep.to_html().startswith("<!DOCTYPE html>")
True
"""

import inspect
import sys
import types

from .builder import Report, figure_data_uri, figures_section, report

__all__ = ["Report", "figure_data_uri", "figures_section", "report"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return report(*args, **kwargs)


#: read by inspect.signature(whybox.report): the module's call is report(...)'s call
__signature__ = inspect.signature(report)
sys.modules[__name__].__class__ = _CallableModule
