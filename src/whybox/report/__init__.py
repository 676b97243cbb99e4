"""Self-contained HTML reports: ``wb.report(exp, model=model, X=X).save("report.html")``.

``whybox.report`` is both this subpackage and the public function: importing a subpackage
binds its name on the parent package, which would shadow a function of the same name. The
module is therefore made callable, so ``wb.report(...)`` always calls :func:`report` whatever
was imported first, and carries :func:`report`'s signature (``inspect.signature(wb.report)``,
``help`` and IDEs show the real parameters).
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
