"""Facts on demand: the minimum value, the minimizers and a box for any loss, given or derived.

Named losses carry their facts from the literature (:class:`flowsim.LossFacts`). A
researcher's own formula carries none; :func:`with_facts` is the one public way to give them
(``min_value=``, ``minimizers=``, ``bounds=``) or to derive what is missing from
:func:`~flowsim.critical_points` in a box, proven where the interval search proves. Every
recipe, diagnostic and picture that needs a fact calls :func:`needed`, which takes what the
loss carries, derives the rest where it has a box, and says where each fact came from.
"""
from __future__ import annotations

import numpy as np

from .._validate import as_loss, check_bounds, finite, positive, real_array
from ..facts import KnownPoint, LossFacts, PointKind

__all__ = ["with_facts", "derive_facts", "needed", "box_around", "min_value_along"]

#: Seconds a derivation may take by default (an interval search of a 2-D loss: well under 1).
TIME_LIMIT = 20.0


def derive_facts(loss, bounds, *, time_limit=TIME_LIMIT, name=None):
    """Facts of ``loss`` from its critical points in ``bounds``.

    Parameters
    ----------
    loss : Loss or str
    bounds : (low, high) or one pair per variable
    time_limit : float
        Seconds for :func:`~flowsim.critical_points`.

    Returns
    -------
    LossFacts
        Every critical point found (``complete`` when the search examined the whole box),
        ``min_value`` the lowest value among the minima found (L* of the box when no minimum
        lies on its boundary), ``bounds`` the box, and ``source`` saying how they were found
        (``proven`` by interval arithmetic, or ``sampled`` by Newton from many starts).

    Raises
    ------
    ValueError
        When no minimum is found in the box.
    """
    from .critical import critical_points
    loss = as_loss(loss)
    box = check_bounds(bounds, loss.n)
    found = critical_points(loss, box, time_limit=positive(time_limit, "time_limit"))
    minima = [p for p in found.points if p.kind is PointKind.MINIMUM]
    if not minima:
        raise ValueError(f"bounds: critical_points found no minimum of the loss in "
                         f"{box.tolist()} ({found.status}); give min_value= and minimizers=, "
                         "or a box that holds a minimum.")
    low = min(p.value for p in minima)
    scale = 1e-9 * max(1.0, abs(low))
    points = tuple(KnownPoint(p.point, p.kind, bool(p.kind is PointKind.MINIMUM and
                                                     p.value <= low + scale))
                   for p in found.points)
    proven = "proven" if found.status == "proven" else found.status
    return LossFacts(name or str(loss.expr)[:60], points, found.complete, float(low),
                     tuple(map(tuple, box.tolist())),
                     source=f"critical_points on {np.round(box, 6).tolist()}: {proven}")


def with_facts(loss, *, bounds=None, min_value=None, minimizers=None, derive=True,
               time_limit=TIME_LIMIT):
    """``loss`` carrying facts: those given here, then the loss's own, then (``derive``) what
    :func:`derive_facts` finds in ``bounds``.

    Parameters
    ----------
    loss : Loss or str
    bounds : (low, high) or one pair per variable, optional
        The box the facts hold in, and where the missing ones are derived.
    min_value : float, optional
        L*.
    minimizers : array_like, shape (k, n), optional
        Known minimizers (the first k global when ``min_value`` is their value).
    derive : bool
        Derive the missing minimum value and minimizers from the critical points in
        ``bounds`` (needs ``bounds``).

    Returns
    -------
    Loss
        The same compiled loss with :attr:`~flowsim.Loss.facts`; ``facts.source`` says where
        they came from.

    Examples
    --------
    >>> L = with_facts("(x**2 - 1)**2 + y**2", bounds=(-2, 2))
    >>> L.facts.min_value, L.facts.minimizers.tolist()
    (0.0, [[-1.0, 0.0], [1.0, 0.0]])
    >>> L.facts.source
    'critical_points on [[-2.0, 2.0], [-2.0, 2.0]]: proven'
    """
    loss = as_loss(loss)
    given = loss.facts
    box = check_bounds(bounds, loss.n) if bounds is not None else (
        np.asarray(given.bounds, dtype=float) if given is not None and given.bounds is not None
        else None)
    min_value = finite(min_value, "min_value") if min_value is not None else None
    points = ()
    if minimizers is not None:
        M = np.atleast_2d(real_array(minimizers, "minimizers"))
        if M.ndim != 2 or M.shape[1] != loss.n or not np.all(np.isfinite(M)):
            raise ValueError(f"minimizers must be finite points of shape (k, {loss.n}).")
        points = tuple(KnownPoint(m, PointKind.MINIMUM, True) for m in M)
    if given is not None and min_value is None and not points and \
            given.min_value is not None and given.minimizers.size:
        return loss   # it already knows
    derived = None
    has_min = min_value is not None or (given is not None and given.min_value is not None)
    has_points = bool(points) or (given is not None and bool(given.critical_points))
    if derive and not (has_min and has_points) and box is not None:
        derived = derive_facts(loss, box, time_limit=time_limit)
    sources = []

    def take(mine, own, found, what):
        """The fact from this call, the loss's own facts, or the derivation, noting which."""
        for value, origin in ((mine, f"{what} given"),
                              (own, given.source if given is not None else ""),
                              (found, derived.source if derived is not None else "")):
            if value is not None and (not isinstance(value, tuple) or value):
                if origin not in sources:
                    sources.append(origin)
                return value
        return None
    min_value = take(min_value, given.min_value if given is not None else None,
                     derived.min_value if derived is not None else None, "min_value")
    points = take(points or None, given.critical_points if given is not None else None,
                  derived.critical_points if derived is not None else None, "minimizers") \
        or ()
    complete = derived.complete if derived is not None and points is derived.critical_points \
        else bool(given is not None and given.complete)
    facts = LossFacts(given.name if given is not None else str(loss.expr)[:60], points,
                      complete, min_value,
                      tuple(map(tuple, box.tolist())) if box is not None else None,
                      given.flow_solution if given is not None else None,
                      source="; ".join(sources) or "given")
    return loss.with_facts(facts)


def box_around(X, margin=0.5):
    """A box around the points ``X`` (m, n), widened by ``margin`` of its span (at least 1)
    on every side: where a recipe looks for the minimum its starts run to."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    low, high = X.min(axis=0), X.max(axis=0)
    pad = np.maximum(margin * (high - low), 1.0)
    return np.stack([low - pad, high + pad], axis=1)


def needed(loss, what, *, bounds=None, min_value=None, where="this"):
    """``(loss, source)``: ``loss`` carrying the facts ``what`` needs (``"min_value"`` or
    ``"minimizers"``), taken from ``min_value=``, the loss's facts, or derived in ``bounds``;
    ``source`` says which.

    Raises
    ------
    ValueError
        Naming the keywords that give the fact, when it is neither given nor derivable.
    """
    loss = as_loss(loss)
    facts = loss.facts
    if what == "min_value" and min_value is not None:
        return loss, "given (min_value=)"
    has = facts is not None and (facts.min_value is not None if what == "min_value" else
                                 bool(facts.minimizers.size))
    if has:
        return loss, facts.source
    box = bounds if bounds is not None else (facts.bounds if facts is not None else None)
    if box is None:
        raise ValueError(f"{where} needs the loss's {what.replace('_', ' ')}, which this loss "
                         f"does not carry: give {'min_value=' if what == 'min_value' else ''}"
                         f"{' or ' if what == 'min_value' else ''}bounds= (a box to derive "
                         "it from its critical points), or use flowsim.with_facts.")
    derived = with_facts(loss, bounds=box)
    return derived, derived.facts.source


def min_value_along(loss, xs, values, time_limit=3.0):
    """``(L*, source)`` for results that ran through the states ``xs`` (..., n) with values
    ``values``: the loss's own facts, else the lowest minimum :func:`with_facts` finds in a
    box around the states (when it is not above the lowest value seen), else that lowest
    value, said as such."""
    facts = loss.facts
    if facts is not None and facts.min_value is not None:
        return float(facts.min_value), facts.source
    points = np.reshape(xs, (-1, loss.n))
    points = points[np.all(np.isfinite(points), axis=1)]
    lowest = float(np.nanmin(values))
    try:
        derived = with_facts(loss, bounds=box_around(points), time_limit=time_limit).facts
    except ValueError:
        derived = None
    if derived is not None and derived.min_value is not None and \
            derived.min_value <= lowest + 1e-12 * max(1.0, abs(lowest)):
        return float(derived.min_value), derived.source
    return lowest, "the lowest value seen"
