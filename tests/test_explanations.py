"""compare's and stability's text, checked against what it must say: no double signs, inf or
nan without a word, long factor tables summarized, the mirror geometry's own rates (against
eigenvalues computed here), and where the largest deviation occurs."""
import numpy as np
import pytest

import flowsim as fs
from flowsim import losses
from flowsim.geometry import SimplexEntropy


@pytest.mark.parametrize("formula, x", [("x**2 - y**2", [0.0, 0.0]),
                                        ("-x**2 - 3*y**2", [0.0, 0.0]),
                                        ("sqrt(x)", [1.0]), ("x**4 + y**2", [0.0, 0.0])])
def test_explanations_have_no_double_signs_and_no_bare_inf_or_nan(formula, x):
    text = fs.stability(formula, x, eta=0.1).summary()
    assert "--" not in text
    for word in ("inf", "nan"):
        assert f" {word}" not in text and f"={word}" not in text, text


def test_factor_rows_say_overflow_and_a_missing_prox_step_in_words():
    # at sqrt(x) near 0 the curvature is -1e14: e^{-eta lambda} overflows and 1 + eta lambda
    # < 0 leaves the proximal objective unbounded below
    text = fs.stability("sqrt(x)", [1e-9], eta=0.1).summary()
    assert "> 1e308" in text and "no prox step" in text
    assert " inf" not in text and "nan" not in text and "-9.1" not in text


def test_a_long_factor_table_is_summarized_around_its_unstable_direction():
    A = np.diag(np.r_[np.linspace(1, 49, 49), 250.0])
    text = fs.stability(losses.quadratic(A), np.zeros(50), eta=0.01).summary()
    assert len(text.splitlines()) < 20
    assert "more directions with lambda in [5, 46]" in text
    assert "250" in text and "GD unstable" in text      # the unstable one is always shown


def test_mirror_descent_is_explained_in_its_own_geometry():
    # L = sum a_i (x_i - c_i)^2 with c on the simplex: the replicator flow's rates at c are
    # the nonzero eigenvalues of (diag c - c c^T) diag(2a), computed here by numpy's eigvals
    a, c = np.array([1.0, 2.0, 3.0]), np.array([0.2, 0.3, 0.5])
    loss = fs.Loss(" + ".join(f"{ai}*(x{i} - {ci})**2" for i, (ai, ci) in enumerate(zip(a, c))),
                   ["x0", "x1", "x2"])
    P = np.diag(c) - np.outer(c, c)
    mu = np.sort(np.linalg.eigvals(P @ np.diag(2 * a)).real)[1:]
    report = fs.stability(loss, c, eta=0.1, geometry=SimplexEntropy(loss))
    np.testing.assert_allclose(report.eigenvalues, mu, rtol=1e-12)
    comp = fs.compare(loss, [1 / 3, 1 / 3, 1 / 3], 0.1, 300, schemes=["mirror_descent"],
                      options={"mirror_descent": {"potential": "simplex"}})
    assert comp.factors.spectrum.endswith("on the simplex")
    np.testing.assert_allclose(comp.factors.eigenvalues, mu, rtol=1e-4)
    # exponentiated gradient contracts like its factors |1 - eta mu| near c
    err = np.linalg.norm(comp.schemes["mirror_descent"].xs - c, axis=1)
    rate = (err[250] / err[200]) ** (1 / 50)
    assert rate == pytest.approx(1 - 0.1 * mu[0], rel=1e-3)


def test_a_formula_potential_gives_the_generalized_eigenvalues():
    loss = fs.Loss("(x - 1)**2 + 3*(y - 2)**2")
    psi = fs.geometry.Potential(loss, "x*log(x) + y*log(y)")
    report = fs.stability(loss, [1.0, 2.0], geometry=psi)
    expected = np.sort(np.linalg.eigvals(np.linalg.inv(np.diag([1.0, 0.5])) @
                                         np.diag([2.0, 6.0])).real)
    np.testing.assert_allclose(report.eigenvalues, expected, rtol=1e-12)
    assert "Hess(psi)^-1 H" in report.summary()


def test_compare_says_where_the_largest_deviation_is_and_prints_that_step():
    comp = fs.compare(losses.rosenbrock(2), [-1.0, 1.5], 1e-3, 500)
    text = comp.summary(rows=5)
    k = int(np.nanargmax(comp.deviation["gradient_descent"]))
    assert f"at k = {k};" in text
    rows = [line.split()[0] for line in text.splitlines()[1:] if line.strip()[:1].isdigit()]
    assert str(k) in rows


def test_the_explanation_uses_a_geometry_only_when_every_scheme_steps_in_it():
    a, c = np.array([1.0, 2.0, 3.0]), np.array([0.2, 0.3, 0.5])
    loss = fs.Loss(" + ".join(f"{ai}*(x{i} - {ci})**2" for i, (ai, ci) in enumerate(zip(a, c))),
                   ["x0", "x1", "x2"])
    start = [1 / 3, 1 / 3, 1 / 3]
    simplex = {"potential": "simplex"}
    both = fs.compare(loss, start, 0.1, 50, schemes=["md", "bpp"],
                      options={"md": simplex, "bpp": simplex})
    assert both.factors.spectrum.endswith("on the simplex") and len(both.factors.eigenvalues) == 2
    mixed = fs.compare(loss, start, 0.1, 50, schemes=["gd", "md"], options={"md": simplex})
    assert mixed.factors.spectrum == "Hessian eigenvalues"
    np.testing.assert_allclose(mixed.factors.eigenvalues, np.sort(2 * a), rtol=1e-9)
