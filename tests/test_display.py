"""Notebook display and plain reprs: every result type shows a short, valid HTML block and a
repr of a line or two, never a dump of its arrays."""
import html.parser

import numpy as np
import pytest

import flowsim as fs
from flowsim import losses

from .test_pickle import _results

VOID = {"br", "hr", "img", "meta", "link", "input"}


class _Checker(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def _valid(text):
    checker = _Checker()
    checker.feed(text)
    checker.close()
    return not checker.errors and not checker.stack


@pytest.fixture(scope="module")
def shown():
    out = dict(_results())
    out["loss"] = losses.himmelblau()
    out["formula loss"] = fs.Loss("x**2 + y**2")
    out["critical points"] = fs.critical_points("x**2 - y**2", [(-1, 1), (-1, 1)])
    out["modified equation"] = fs.modified_equation("x**4/4", "gd", 0.1)
    out["study"] = fs.sweep("x**2 + y**2", ["gd"], starts=[[1.0, 1.0]], etas=[0.1], steps=5)
    return out


def test_every_result_has_short_valid_html(shown):
    for name, obj in shown.items():
        block = obj._repr_html_()
        assert _valid(block), (name, block[:300])
        assert len(block) < 4000, (name, len(block))
        assert "<script" not in block


def test_plain_reprs_are_a_line_or_two(shown):
    for name, obj in shown.items():
        text = repr(obj)
        assert len(text) <= 400 and text.count("\n") <= 1, (name, text[:500])
        assert "array(" not in text and "np.float64" not in text, (name, text)


def test_html_is_escaped():
    loss = fs.Loss("x**2 + y**2")   # '<' from a summary must not become a tag
    block = fs.lyapunov(loss, fs.gradient_flow(loss, [1.0, 1.0], 1.0))._repr_html_()
    assert _valid(block)
    batch = fs.gradient_descent("x**2", np.array([[1.0], [3.0]]), 1.5, 20)
    assert "diverged" in batch._repr_html_()   # the status counts
