"""Sphinx configuration of flowsim's documentation site.

Build: ``pip install -e ".[docs]"`` then ``sphinx-build -W -b html docs docs/_build/html``
(warnings are errors). The gallery runs ``examples/``; the methods table is written from
the registry at every build; the API reference is generated from the docstrings.
"""
import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("MPLBACKEND", "Agg")
# the examples write their figures to a scratch folder and leave them open for the gallery
os.environ["FLOWSIM_GALLERY"] = tempfile.mkdtemp(prefix="flowsim-gallery-")

import flowsim  # noqa: E402

project = "flowsim"
author = "the flowsim developers"
copyright = "2026, the flowsim developers"
release = version = flowsim.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "images/*.gif", "_generated/methods_table.md"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
templates_path = ["_templates"]   # a class page shows the class's own docstring, not str's
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

# (the gallery's reset_argv is a function, so Sphinx cannot cache the configuration; it
# rebuilds instead, which is what CI does anyway)
suppress_warnings = ["config.cache"]

html_theme = "pydata_sphinx_theme"
html_title = "flowsim"
html_theme_options = {"navigation_depth": 2, "show_toc_level": 2}
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "gallery",
    "filename_pattern": r"/0\d_",
    "ignore_pattern": r"_common\.py",
    "reset_argv": lambda gallery_conf, script_vars: ["--quick"],
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 10_000,
    "show_memory": False,
}


# ---- generated pages: the methods table (from the registry), the API reference ----------

sys.path.insert(0, str(HERE / "_ext"))
from flowsim_pages import write_pages  # noqa: E402

write_pages(HERE / "_generated")


# ---- docstrings written for terminals: |x| is a norm here, not a substitution -------------

_LITERAL = re.compile(r"(``.*?``|:math:`[^`]*`|`[^`]*`)")


def _escape_bars(line):
    parts = _LITERAL.split(line)
    return "".join(p if i % 2 else re.sub(r"(?<!\\)\|", r"\\|", p) for i, p in enumerate(parts))


def escape_norm_bars(app, what, name, obj, options, lines):
    """Escape ``|`` outside literals and math, so |grad L| reads as text, not as an RST
    substitution; math blocks (``.. math::`` and their indented body) are left alone."""
    in_math, indent = False, 0
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith(".. math::"):
            in_math, indent = True, len(line) - len(stripped)
            continue
        if in_math and (not stripped or len(line) - len(stripped) > indent):
            continue   # the math block's body
        in_math = False
        if stripped.startswith(("+-", "|")) and stripped.rstrip().endswith(("+", "|")):
            continue   # a grid table
        lines[i] = _escape_bars(line)


def setup(app):
    app.connect("autodoc-process-docstring", escape_norm_bars, priority=100)
