"""Sphinx configuration of the whybox documentation site.

Build (offline, every warning an error, the gallery executed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference is generated at configuration time from ``whybox.__all__`` and the
``__all__`` of the public subpackages (see ``_api.py``), so a new public name appears in the
reference without editing these files, and a public name without a docstring, or whose
docstring's parameters do not match its signature, fails the build (numpydoc validation).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

os.environ.setdefault("MPLBACKEND", "Agg")
# the gallery runs on a shared CPU; one thread per library keeps it predictable
os.environ.setdefault("OMP_NUM_THREADS", "1")

import _strict  # noqa: E402
from _api import write_api_pages  # noqa: E402

import whybox  # noqa: E402

_strict.install()  # docstring problems of src/ listed in known_docstring_problems.txt

project = "whybox"
author = "whybox developers"
copyright = "whybox developers, Apache-2.0"
release = whybox.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    # MathJax 3 shipped in the package and copied into _static: no CDN (the site reads offline)
    "sphinx-mathjax-offline",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "**/README.rst",
    "examples/*.py",
    # sphinx-gallery writes it whatever write_computation_times says; it loads jQuery from CDNs
    "sg_execution_times.rst",
    "Thumbs.db",
    ".DS_Store",
]
templates_path = ["_templates"]

# ---- strictness: a broken cross-reference is an error under -W --------------------------
nitpicky = True
# Types named in docstrings that are not whybox objects and that we do not resolve
# (no intersphinx: the build never fetches inventories from the network).
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(numpy|np|pandas|pd|torch|sklearn|scipy|matplotlib|transformers|dask|"
        r"distributed|safetensors|httpx|fastapi|xgboost|lightgbm|catboost)(\..*)?",
    ),
    (
        r"py:.*",
        r"(optional|default|array-like|array_like|callable|iterable|sequence|mapping|"
        r"path-like|file-like|dict-like|int|float|str|bool|list|tuple|dict|set|None|object|"
        r"bytes|type|Any|Callable|Sequence|Mapping|Iterable|Iterator|Literal|Path|"
        r"ndarray|DataFrame|Series|Tensor|Module|Figure|Axes|array|tensor|module|"
        r"function|generator|ArrayLike|NDArray)",
    ),
    (
        r"py:class",
        r"(of|or|and|shape|length|the|a|an|with|each|one|per|if|by|to|"
        r"\d+|\(.*|.*\)|.*,|\.\.\.|.* .*)",
    ),
]

# ---- autodoc / autosummary / numpydoc ----------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": False, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc renders the documented types
autodoc_mock_imports: list[str] = []
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Types in docstrings stay text ("int, default 10", "(n, p) array"): linking each word would
# need intersphinx inventories, i.e. the network. References in the prose are checked.
numpydoc_xref_param_type = False
# `name` in single backticks (the numpydoc convention for a parameter) renders as code.
default_role = "literal"
numpydoc_xref_aliases = {
    "Explanation": "whybox.Explanation",
    "WhyboxError": "whybox.WhyboxError",
}
numpydoc_xref_ignore = {
    "of",
    "or",
    "and",
    "shape",
    "optional",
    "default",
    "the",
    "a",
    "an",
    "with",
    "each",
    "per",
    "one",
    "if",
    "by",
    "to",
    "for",
    "in",
    "is",
    "from",
    "any",
    "like",
    "n",
    "p",
    "k",
    "same",
    "as",
    "None",
    "True",
    "False",
    "int",
    "float",
    "str",
    "bool",
    "list",
    "tuple",
    "dict",
    "set",
    "callable",
    "object",
    "array-like",
    "array_like",
    "sequence",
    "mapping",
    "iterable",
    "ndarray",
    "DataFrame",
    "Series",
    "Tensor",
    "Module",
    "Figure",
    "Axes",
}
# GL08: a public object without a docstring; PR01 / PR02: parameters missing from, or
# unknown to, the docstring (it no longer matches the signature); SS01: no summary line.
numpydoc_validation_checks = {"GL08", "PR01", "PR02", "SS01"}

write_api_pages(HERE / "api")

# ---- MyST (Markdown pages: the user guide and benchmarks/RESULTS.md) ---------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 4

# ---- sphinx-gallery: every example is executed on every build; a failure fails it -------
sphinx_gallery_conf = {
    "examples_dirs": ["examples"],
    "gallery_dirs": ["auto_examples"],
    # WHYBOX_DOCS_EXAMPLES (a regular expression on the path) executes only the matching
    # examples, e.g. while writing one; the full build executes every plot_*.py
    "filename_pattern": os.environ.get("WHYBOX_DOCS_EXAMPLES", r"/plot_"),
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    # no execution-time pages: sphinx-gallery builds them with jQuery / DataTables from CDNs
    "write_computation_times": False,
    "doc_module": ("whybox",),
    "backreferences_dir": "api/generated/backreferences",
    "plot_gallery": os.environ.get("WHYBOX_DOCS_GALLERY", "True"),
}
suppress_warnings = ["config.cache"]  # sphinx_gallery_conf holds callables; rebuilds are full

# ---- HTML: alabaster ships with Sphinx and loads nothing from the network ----------------
html_theme = "alabaster"
html_title = f"whybox {release}"
html_static_path = ["_static"]
html_css_files = ["whybox.css"]
html_theme_options = {
    "description": "Why did the model do that?",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "240px",
    "font_family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "head_font_family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "code_font_family": "ui-monospace, 'DejaVu Sans Mono', monospace",
    "show_powered_by": False,
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_show_sourcelink = False
html_copy_source = False


def setup(app):
    app.connect("build-finished", _strict.report_stale)
