"""Every registered scheme through the same checks: a closed form on a quadratic, its
empirical order against the record's, schedules, batches, and the registry's own rules."""
import inspect

import numpy as np
import pytest

import flowsim as fs
from flowsim import methods
from flowsim.methods import Method

LAM = np.array([0.5, 4.0])  # L = (0.5 x^2 + 4 y^2) / 2
QUADRATIC = "(0.5*x**2 + 4*y**2)/2"
X0 = np.array([1.0, -0.5])


def _recurrence(a, b, x0, x1, k):
    """x_{j+1} = a x_j - b x_{j-1} in closed form (roots of r^2 - a r + b)."""
    r1, r2 = np.roots([1.0, -a, b]).astype(complex)
    c2 = (x1 - r1 * x0) / (r2 - r1)
    return ((x0 - c2) * r1 ** k + c2 * r2 ** k).real


def _per_direction(factor):
    """Iterates of a scheme that multiplies eigendirection i by factor(lambda_i) per step."""
    def closed_form(eta, steps):
        k = np.arange(steps + 1)[:, None]
        return X0 * np.array([factor(eta, lam) for lam in LAM]) ** k
    return closed_form


def _two_step(a_of, b_of, first_of):
    def closed_form(eta, steps):
        k = np.arange(steps + 1)
        return np.stack([_recurrence(a_of(eta, lam), b_of(eta, lam), x0,
                                     first_of(eta, lam) * x0, k)
                         for lam, x0 in zip(LAM, X0)], axis=1)
    return closed_form


BETA = 0.6  # heavy ball and Nesterov run with this constant momentum here

#: name -> (options, closed form of the iterates on QUADRATIC from X0).
ORACLES = {
    "gradient_descent": ({}, _per_direction(lambda e, lam: 1 - e * lam)),
    "proximal_point": ({}, _per_direction(lambda e, lam: 1 / (1 + e * lam))),
    "heun": ({}, _per_direction(lambda e, lam: 1 - e * lam + (e * lam) ** 2 / 2)),
    "newton": ({}, _per_direction(lambda e, lam: 1 - e)),
    "sgd": ({"batch_size": 2}, _per_direction(lambda e, lam: 1 - e * lam)),
    "heavy_ball": ({"momentum": BETA},
                   _two_step(lambda e, lam: 1 + BETA - e * lam, lambda e, lam: BETA,
                             lambda e, lam: 1 - e * lam)),
    "nesterov": ({"momentum": BETA},
                 _two_step(lambda e, lam: (1 - e * lam) * (1 + BETA),
                           lambda e, lam: (1 - e * lam) * BETA, lambda e, lam: 1 - e * lam)),
    "proximal_gradient": ({"prox": fs.prox.L2Squared(0.0)},
                          _per_direction(lambda e, lam: 1 - e * lam)),
    # in the Euclidean geometry (psi = |x|^2/2, G = I) both are gradient descent; their own
    # geometry's closed forms (exponentiated gradient) are in tests/test_mirror.py
    "mirror_descent": ({"potential": "(x**2 + y**2)/2"},
                       _per_direction(lambda e, lam: 1 - e * lam)),
    "natural_gradient": ({"metric": [[1, 0], [0, 1]]},
                         _per_direction(lambda e, lam: 1 - e * lam)),
    "bregman_proximal_point": ({"potential": "(x**2 + y**2)/2"},
                               _per_direction(lambda e, lam: 1 / (1 + e * lam))),
    # the adaptive methods act per coordinate: scalar recurrences written out here (Adam with
    # beta1 = beta2 = 0 and eps = 0 is sign descent, whose iterates are in closed form)
    "adam": ({"beta1": 0.8, "beta2": 0.9, "eps": 1e-3},
             lambda eta, steps: _scalar_reference(eta, steps, "adam")),
    "rmsprop": ({"rho": 0.9, "eps": 1e-3},
                lambda eta, steps: _scalar_reference(eta, steps, "rmsprop")),
    "adagrad": ({"eps": 1e-3}, lambda eta, steps: _scalar_reference(eta, steps, "adagrad")),
    "sign_descent": ({}, lambda eta, steps: _sign_closed_form(eta, steps)),
}


def _scalar_reference(eta, steps, kind):
    """Per-coordinate loops of the textbook updates on QUADRATIC (gradient lam_i x_i)."""
    out = np.empty((steps + 1, 2))
    for i, (lam, x) in enumerate(zip(LAM, X0)):
        m = v = 0.0
        out[0, i] = x
        for k in range(steps):
            g = lam * x
            if kind == "adam":
                m = 0.8 * m + 0.2 * g
                v = 0.9 * v + 0.1 * g * g
                x -= eta * (m / (1 - 0.8 ** (k + 1))) / (np.sqrt(v / (1 - 0.9 ** (k + 1)))
                                                         + 1e-3)
            elif kind == "rmsprop":
                v = 0.9 * v + 0.1 * g * g
                x -= eta * g / (np.sqrt(v) + 1e-3)
            else:
                v += g * g
                x -= eta * g / (np.sqrt(v) + 1e-3)
            out[k + 1, i] = x
    return out


def _sign_closed_form(eta, steps):
    """x_k = x0 - k eta sign(x0) until |x| < eta, then a 2-cycle r, r - eta sign(r) (r is
    taken as the float left after K subtractions: here |x0| / eta is a whole number, and the
    rounding residue's sign decides the cycle)."""
    k = np.arange(steps + 1)[:, None]
    K = np.floor(np.abs(X0) / eta)
    r = X0.copy()
    for i in range(2):
        for _ in range(int(K[i])):
            r[i] -= eta * np.sign(X0[i])
    cycle = np.where((k - K) % 2 == 0, r, r - eta * np.sign(r))
    return np.where(k <= K, X0 - k * eta * np.sign(X0), cycle)


def _loss_for(record):
    if "samples" in record.accepts:  # the mean over two samples is QUADRATIC plus a constant
        return fs.Loss.from_samples("(0.5*(x - s)**2 + 4*(y - s)**2)/2", {"s": [-1.0, 1.0]},
                                    variables=("x", "y"))
    return fs.Loss(QUADRATIC)


SCHEMES = [m.name for m in methods.schemes()]


def test_every_registered_scheme_has_an_oracle_here():
    assert set(SCHEMES) == set(ORACLES), "give a new scheme a closed form in ORACLES"


@pytest.mark.parametrize("name", SCHEMES)
def test_scheme_matches_its_closed_form_on_a_quadratic(name):
    record = methods.get(name)
    options, closed_form = ORACLES[name]
    eta, steps = 0.1, 25
    traj = record.function(_loss_for(record), X0, eta, steps, **options)
    np.testing.assert_allclose(traj.xs, closed_form(eta, steps), rtol=1e-9, atol=1e-12)
    assert traj.method == name and traj.label
    # iterate k sits at k times the record's ODE time per step
    np.testing.assert_allclose(traj.ts, record.step_of(eta) * np.arange(steps + 1),
                               rtol=1e-12)


@pytest.mark.parametrize("name", SCHEMES)
def test_scheme_signature_and_schedules(name):
    record = methods.get(name)
    params = list(inspect.signature(record.function).parameters.values())
    assert [p.name for p in params[:4]] == ["loss", "x0", "eta", "steps"]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[4:])
    assert record.function.__doc__ and "Returns" in record.function.__doc__
    options, _ = ORACLES[name]
    loss = _loss_for(record)
    fixed = record.function(loss, X0, 0.1, 12, **options)
    scheduled = record.function(loss, X0, fs.schedules.constant(0.1), 12, **options)
    np.testing.assert_array_equal(scheduled.xs, fixed.xs)
    varying = record.function(loss, X0, lambda k: 0.1 / (1 + k), 12, **options)
    np.testing.assert_allclose(np.diff(varying.ts), record.step_of(0.1 / (1 + np.arange(12))),
                               rtol=1e-12)


@pytest.mark.parametrize("name", SCHEMES)
def test_batches_are_taken_or_refused_in_one_sentence(name):
    record = methods.get(name)
    options, _ = ORACLES[name]
    starts = np.array([X0, -X0, 2 * X0])
    if "batch" in record.accepts:
        batch = record.function(_loss_for(record), starts, 0.1, 10, **options)
        for i in range(3):
            single = record.function(_loss_for(record), starts[i], 0.1, 10, **options)
            np.testing.assert_allclose(batch.xs[i], single.xs, rtol=1e-12)
    else:
        with pytest.raises(ValueError, match=r"x0 must have shape \(2,\)"):
            record.function(_loss_for(record), starts, 0.1, 10, **options)


ORDER_LOSS = "x**2/2 + y**4/4 + x*y/4 + cos(x)/10"
DETERMINISTIC = [m.name for m in methods.schemes() if m.order is not None and m.flow]


#: step ladders for schemes whose asymptotic regime starts below the default ladder's first
#: step (Adam's bias corrections make its first steps coarse)
ORDER_ETAS = {"adam": [0.02, 0.01, 0.005, 0.0025]}


#: schemes of a switching flow: the error is O(h) but not C h^p + o(h^p) (it depends on where
#: the switching times fall on the step grid), so the local slopes scatter
SWITCHING = {"sign_descent"}


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_empirical_order_is_the_records_order(name):
    record = methods.get(name)
    if name in SWITCHING:
        etas = 1 / (3 * 2.0 ** np.arange(1, 7))
        result = fs.convergence_order(ORDER_LOSS, [1.0, 0.8], name, t_end=3.0, etas=etas)
        assert np.all(result.errors <= 3 * etas) and np.all(result.errors >= 0.5 * etas)
        assert result.order == pytest.approx(record.order, abs=0.2), result.summary()
        return
    result = fs.convergence_order(ORDER_LOSS, [1.0, 0.8], name, t_end=1.0, levels=5,
                                  etas=ORDER_ETAS.get(name))
    assert result.warning is None, result.summary()
    assert result.order == pytest.approx(record.order, abs=0.1), result.summary()


def test_records_are_consistent():
    colors = [m.color for m in methods.REGISTRY.values()]
    assert len(set(colors)) == len(colors)  # one colour per method, in every picture
    for record in methods.schemes():
        if record.flow is not None:
            assert methods.get(record.flow).kind == "flow"
        assert record.eta_of(record.step_of(0.04)) == pytest.approx(0.04)
    assert methods.get("gd") is methods.get("gradient_descent")
    with pytest.raises(ValueError, match="unknown scheme 'gradient_flow'"):
        methods.get("gradient_flow", "scheme")
    with pytest.raises(ValueError, match="did you mean 'proximal_point'"):
        methods.get("proximal")
    with pytest.raises(ValueError, match="already registered"):
        methods.register(Method("gd", "again", "scheme", fs.gradient_descent))
    with pytest.raises(ValueError, match="step_time must be one of"):
        Method("x", "x", "scheme", fs.gradient_descent, step_time="eta**2")


def test_a_registered_method_is_compared_and_drawn(monkeypatch):
    def halved(loss, x0, eta, steps, *, gtol=None, max_norm=1e8):
        """Gradient descent at half the step (a test scheme).

        Returns
        -------
        Trajectory
        """
        traj = fs.gradient_descent(loss, x0, eta / 2, steps, gtol=gtol, max_norm=max_norm)
        return type(traj)(traj.ts * 2, traj.xs, traj.values, traj.grad_norms, traj.status,
                          traj.message, "halved", "halved GD")

    monkeypatch.setitem(methods.REGISTRY, "halved",
                        Method("halved", "halved GD", "scheme", halved, order=1,
                               flow="gradient_flow", color="tab:pink", marker="*"))
    c = fs.compare(QUADRATIC, X0, 0.1, 10, schemes=("halved", "gd"))
    # iterate k of the halved scheme is (1 - 0.05 lam)^k at t = 0.1 k on the same flow
    expected = X0 * (1 - 0.05 * LAM) ** np.arange(11)[:, None]
    np.testing.assert_allclose(c.schemes["halved"].xs, expected, rtol=1e-12)
    assert c.references["halved"] == c.references["gradient_descent"] == "gradient_flow"
    from flowsim.plot.style import path_style
    assert path_style(c.schemes["halved"])["color"] == "tab:pink"


ALL = [m.name for m in methods.REGISTRY.values()]
BATCHED = [m.name for m in methods.REGISTRY.values() if "batch" in m.accepts]


def _call(record, X, **kwargs):
    loss = _loss_for(record) if record.kind == "scheme" else QUADRATIC
    if record.kind == "scheme":
        options = ORACLES[record.name][0]
        return record.function(loss, X, 0.05, 12, **options, **kwargs)
    return record.function(loss, X, 0.5, **kwargs)


@pytest.mark.parametrize("name", BATCHED)
def test_chunks_on_workers_equal_the_unchunked_batch(name):
    record = methods.get(name)
    assert "workers" in inspect.signature(record.function).parameters
    starts = np.array([X0, -X0, 2 * X0, [0.3, 0.2], [-0.7, 0.1]])
    whole = _call(record, starts, **({"dense_output": False} if record.kind == "flow" else {}))
    chunked = _call(record, starts, workers=1, chunk_size=2)
    np.testing.assert_array_equal(chunked.xs, whole.xs)
    assert chunked.status == whole.status
    np.testing.assert_array_equal(chunked.t_final, whole.t_final)


@pytest.mark.parametrize("name", ALL)
def test_every_method_runs_in_a_one_chunk_sweep_or_is_refused_in_one_sentence(name):
    record = methods.get(name)
    loss = _loss_for(record) if record.kind == "scheme" else QUADRATIC
    options = {name: ORACLES[name][0]} if record.kind == "scheme" else {}
    kwargs = dict(starts=[X0, -X0], etas=[0.05], steps=5, t_end=0.5, options=options)
    if "batch" not in record.accepts:
        with pytest.raises(ValueError) as err:
            fs.sweep(loss, [name], **kwargs)
        assert "\n" not in str(err.value) and "one start at a time" in str(err.value)
        return
    study = fs.sweep(loss, [name], **kwargs)
    assert len(study.runs) == 2 and set(study.runs["method"]) == {name}
    assert np.all(np.isfinite(study.runs["t_final"]))
