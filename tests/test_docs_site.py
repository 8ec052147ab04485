"""The documentation site covers the code: every public callable is in the API reference,
every example in the gallery, every registered method in the methods table; the pages the
index names exist. (CI builds the site itself with warnings as errors.)"""
import importlib
import re
import sys
from pathlib import Path

import pytest

from flowsim import methods

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
pages = importlib.import_module("flowsim_pages")


def test_every_public_callable_is_in_the_api_reference():
    from .test_parser_spy import PUBLIC
    listed = {name for names in pages.api_entries().values() for name in names}
    documented = {id(getattr(importlib.import_module(m), n))
                  for m, names in pages.api_entries().items() for n in names}
    for module in PUBLIC:
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not (isinstance(obj, type) and
                                      issubclass(obj, BaseException)):
                assert id(obj) in documented, f"{module.__name__}.{name} is not in the API"
    assert {"register", "UpdateRule", "VectorField", "compare", "sweep"} <= listed
    text = pages.api_page()
    assert "flowsim.study.recipes" in text and "   time_to_tolerance" in text


def test_every_example_is_in_the_gallery():
    conf = (DOCS / "conf.py").read_text()
    pattern = re.search(r'"filename_pattern": r"([^"]+)"', conf).group(1)
    ignore = re.search(r'"ignore_pattern": r"([^"]+)"', conf).group(1)
    examples = sorted((DOCS.parent / "examples").glob("*.py"))
    shown = [p for p in examples if re.search(pattern, "/" + p.name) and
             not re.search(ignore, p.name)]
    assert [p.name for p in shown] == [p.name for p in examples if p.name[0].isdigit()]
    for path in shown:   # the gallery needs a title: a first line with an underline
        first, second = path.read_text().splitlines()[:2]
        assert set(second) == {"="} and len(second) >= len(first.strip('"')), path.name


def test_the_methods_table_lists_every_registered_method():
    table = pages.methods_table()
    for record in methods.REGISTRY.values():
        assert f"| `{record.name}` |" in table


@pytest.mark.parametrize("page", re.findall(r"^(\w[\w/]*)$",
                                            (DOCS / "index.md").read_text(), re.M))
def test_every_page_in_the_index_exists(page):
    if page.startswith(("gallery/", "_generated/")):
        return   # written at build time
    assert (DOCS / f"{page}.md").exists() or (DOCS / f"{page}.rst").exists(), page
