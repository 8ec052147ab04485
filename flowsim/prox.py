r"""Proximal operators of non-smooth penalties g, for proximal gradient methods.

Each penalty is a frozen dataclass with ``value(x)``, ``prox(v, eta)`` (its arguments
checked) and ``prox_xp(v, eta, xp)``, the same map written once over an array namespace
(numpy, or ``jax.numpy`` inside the JAX backend's compiled steps; no checks), and, where the
convex conjugate g* has a closed-form prox of its own, ``conjugate_prox(v, s)``:

.. math:: \operatorname{prox}_{\eta g}(v) = \arg\min_y \; g(y) + \frac{1}{2\eta}|y - v|^2 .

All act on the last axis, so batches ``(..., n)`` work, and ``eta`` may be an array that
broadcasts against ``v`` (a step per point). :class:`MoreauEnvelope` gives the smooth
envelope of any of them. The Moreau identity
prox_{eta g}(v) + eta prox_{g*/eta}(v / eta) = v links ``prox`` and ``conjugate_prox``.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._validate import nonnegative, real_array

__all__ = ["L1", "L2Squared", "ElasticNet", "Box", "NonNegative", "GroupL1",
           "MoreauEnvelope", "Composite"]


def _check_weight(value, name):
    return nonnegative(value, name)


def check_dimension(penalty, n):
    """Check, before a run, that ``penalty`` applies to vectors of ``n`` variables."""
    check = getattr(penalty, "check_dimension", None)
    if check is not None:
        check(n)


def _check_eta(eta):
    eta = real_array(eta, "eta")
    if not np.all(np.isfinite(eta)) or np.any(eta <= 0):
        raise ValueError("eta must be finite and > 0.")
    return eta if eta.ndim else float(eta)


def _array(v):
    return np.asarray(v, dtype=float)


@dataclass(frozen=True)
class L1:
    r"""g(x) = lam * sum_i |x_i|; its prox is soft thresholding.

    Notes
    -----
    .. math:: \operatorname{prox}_{\eta g}(v)_i = \operatorname{sign}(v_i)
              \max(|v_i| - \eta\,\lambda, 0)

    g* is the indicator of the box [-lam, lam]^n, whose prox is clipping.

    Examples
    --------
    >>> L1(1.0).prox(np.array([3.0, -0.5]), eta=1.0)
    array([ 2., -0.])
    """

    lam: float

    def __post_init__(self):
        object.__setattr__(self, "lam", _check_weight(self.lam, "lam"))

    def value(self, x):
        """g(x), shape ``(...)`` for ``x`` of shape ``(..., n)``."""
        return self.lam * np.abs(_array(x)).sum(axis=-1)

    def prox(self, v, eta):
        """prox_{eta g}(v), same shape as ``v``."""
        return self.prox_xp(_array(v), _check_eta(eta), np)

    def prox_xp(self, v, eta, xp):
        """Soft thresholding over ``xp``, unchecked."""
        return xp.sign(v) * xp.maximum(xp.abs(v) - self.lam * eta, 0.0)

    def conjugate_prox(self, v, s):
        """prox_{s g*}(v): the projection onto [-lam, lam]^n (independent of s)."""
        _check_eta(s)
        return np.clip(_array(v), -self.lam, self.lam)


@dataclass(frozen=True)
class L2Squared:
    """g(x) = lam/2 |x|^2; prox_{eta g}(v) = v / (1 + eta lam) (shrinkage, ridge)."""

    lam: float

    def __post_init__(self):
        object.__setattr__(self, "lam", _check_weight(self.lam, "lam"))

    def value(self, x):
        """g(x), shape ``(...)``."""
        return self.lam / 2 * np.square(_array(x)).sum(axis=-1)

    def prox(self, v, eta):
        """prox_{eta g}(v)."""
        return self.prox_xp(_array(v), _check_eta(eta), np)

    def prox_xp(self, v, eta, xp):
        """v / (1 + eta lam), unchecked."""
        return v / (1.0 + eta * self.lam)

    def conjugate_prox(self, v, s):
        """prox_{s g*}(v) with g*(y) = |y|^2 / (2 lam): v lam / (lam + s)."""
        if self.lam == 0:
            return np.zeros_like(_array(v))
        return _array(v) * self.lam / (self.lam + _check_eta(s))


@dataclass(frozen=True)
class ElasticNet:
    """g(x) = l1 |x|_1 + l2/2 |x|^2; prox: soft threshold by eta l1, then shrink by 1 + eta l2."""

    l1: float
    l2: float

    def __post_init__(self):
        object.__setattr__(self, "l1", _check_weight(self.l1, "l1"))
        object.__setattr__(self, "l2", _check_weight(self.l2, "l2"))

    def value(self, x):
        """g(x), shape ``(...)``."""
        x = _array(x)
        return self.l1 * np.abs(x).sum(axis=-1) + self.l2 / 2 * np.square(x).sum(axis=-1)

    def prox(self, v, eta):
        """prox_{eta g}(v)."""
        return self.prox_xp(_array(v), _check_eta(eta), np)

    def prox_xp(self, v, eta, xp):
        """Soft threshold by eta l1, then shrink by 1 + eta l2; unchecked."""
        return L1(self.l1).prox_xp(v, eta, xp) / (1.0 + eta * self.l2)


@dataclass(frozen=True)
class Box:
    """Indicator of the box lower <= x <= upper; its prox is the projection (clipping).

    ``value`` is 0 inside the box and inf outside.
    """

    lower: object = -np.inf
    upper: object = np.inf

    def __post_init__(self):
        lo, up = real_array(self.lower, "lower"), real_array(self.upper, "upper")
        if lo.ndim > 1 or up.ndim > 1 or (lo.size > 1 and up.size > 1 and lo.size != up.size):
            raise ValueError(f"Box: lower and upper must be numbers or vectors of one length, "
                             f"got shapes {lo.shape} and {up.shape}.")
        if np.any(np.isnan(lo)) or np.any(np.isnan(up)) or np.any(lo > up):
            raise ValueError("Box needs lower <= upper in every component (no nan).")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", up)

    def check_dimension(self, n):
        """Raise ValueError unless the bounds are scalars or vectors of length ``n``."""
        for name, bound in (("lower", self.lower), ("upper", self.upper)):
            if bound.size > 1 and bound.size != n:
                raise ValueError(f"Box: {name} has {bound.size} entries but x has {n}; give "
                                 f"a number or {n} bounds.")

    def value(self, x):
        """0 inside the box, inf outside; shape ``(...)``."""
        x = _array(x)
        inside = np.all((x >= self.lower) & (x <= self.upper), axis=-1)
        return np.where(inside, 0.0, np.inf)

    def prox(self, v, eta):
        """The projection onto the box (independent of eta)."""
        return self.prox_xp(_array(v), _check_eta(eta), np)

    def prox_xp(self, v, eta, xp):
        """Clipping to [lower, upper] over ``xp``, unchecked."""
        return xp.minimum(xp.maximum(v, self.lower), self.upper)


@dataclass(frozen=True)
class NonNegative:
    """Indicator of x >= 0; prox is max(v, 0). g* is the indicator of y <= 0."""

    def value(self, x):
        """0 where every entry is >= 0, inf otherwise."""
        return np.where(np.all(_array(x) >= 0, axis=-1), 0.0, np.inf)

    def prox(self, v, eta):
        """max(v, 0)."""
        return self.prox_xp(_array(v), _check_eta(eta), np)

    def prox_xp(self, v, eta, xp):
        """max(v, 0) over ``xp``, unchecked."""
        return xp.maximum(v, 0.0)

    def conjugate_prox(self, v, s):
        """The projection onto y <= 0: min(v, 0)."""
        _check_eta(s)
        return np.minimum(_array(v), 0.0)


@dataclass(frozen=True)
class GroupL1:
    """Group lasso g(x) = lam * sum_G |x_G|_2 over disjoint groups of indices.

    Parameters
    ----------
    groups : sequence of sequences of int
        Disjoint index groups; indices in no group are not penalized.
    lam : float

    Notes
    -----
    Block soft thresholding: prox(v)_G = max(1 - eta lam / |v_G|, 0) v_G. g* is the
    indicator of {|y_G| <= lam for every G}, whose prox projects each group onto that ball.
    """

    groups: tuple
    lam: float

    def __post_init__(self):
        try:
            groups = tuple(tuple(g) for g in self.groups)
        except TypeError:
            raise TypeError("groups must be a sequence of sequences of indices, e.g. "
                            "[[0, 1], [2]].") from None
        flat = [i for g in groups for i in g]
        if any(isinstance(i, bool) or not isinstance(i, numbers.Integral) for i in flat):
            raise ValueError(f"groups must hold whole indices (ints), got {groups}.")
        groups = tuple(tuple(int(i) for i in g) for g in groups)
        flat = [int(i) for i in flat]
        if not groups or any(not g for g in groups) or len(flat) != len(set(flat)) \
                or min(flat) < 0:
            raise ValueError("groups must be non-empty, disjoint lists of indices >= 0.")
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "lam", _check_weight(self.lam, "lam"))

    def check_dimension(self, n):
        """Raise ValueError if a group names an index outside 0 .. n-1."""
        top = max(i for g in self.groups for i in g)
        if top >= n:
            raise ValueError(f"GroupL1: a group holds index {top}, but x has only {n} "
                             f"entries (0 .. {n - 1}).")

    def _norms(self, v, g):
        return np.sqrt(np.square(v[..., list(g)]).sum(axis=-1, keepdims=True))

    def value(self, x):
        """g(x), shape ``(...)``."""
        x = _array(x)
        return self.lam * sum(self._norms(x, g)[..., 0] for g in self.groups)

    def prox(self, v, eta):
        """Block soft thresholding."""
        eta = _check_eta(eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.prox_xp(_array(v), eta, np)

    def prox_xp(self, v, eta, xp):
        """Block soft thresholding over ``xp`` (each group scaled by its own factor, no
        in-place writes), unchecked."""
        t = self.lam * eta
        scale = xp.ones_like(v)
        for g in self.groups:
            norm = xp.sqrt(xp.sum(xp.square(v[..., list(g)]), axis=-1, keepdims=True))
            safe = xp.where(norm > 0, norm, 1.0)
            factor = xp.where(norm > 0, xp.maximum(1 - t / safe, 0.0), 0.0)
            member = np.zeros(v.shape[-1], dtype=bool)
            member[list(g)] = True
            scale = xp.where(member, factor, scale)
        return v * scale

    def conjugate_prox(self, v, s):
        """Projection of each group onto the l2 ball of radius lam."""
        _check_eta(s)
        v = _array(v).copy()
        for g in self.groups:
            norm = self._norms(v, g)
            with np.errstate(divide="ignore", invalid="ignore"):
                v[..., list(g)] *= np.where(norm > self.lam, self.lam / norm, 1.0)
        return v


@dataclass(frozen=True)
class MoreauEnvelope:
    r"""The Moreau envelope of a penalty: a smooth lower approximation of g.

    .. math:: M_{\eta g}(x) = \min_y \; g(y) + \frac{1}{2\eta}|x - y|^2, \qquad
              \nabla M_{\eta g}(x) = \frac{x - \operatorname{prox}_{\eta g}(x)}{\eta}

    Its gradient is (1/eta)-Lipschitz; for g = lam |x| it is the Huber function.

    Examples
    --------
    >>> env = MoreauEnvelope(L1(1.0), eta=1.0)
    >>> float(env.value(np.array([3.0]))), float(env.value(np.array([0.5])))
    (2.5, 0.125)
    """

    penalty: object
    eta: float

    def __post_init__(self):
        if not hasattr(self.penalty, "prox"):
            raise TypeError("penalty must have a prox method (see flowsim.prox).")
        eta = _check_eta(self.eta)
        if np.ndim(eta):
            raise ValueError("eta must be a single number for a Moreau envelope.")
        object.__setattr__(self, "eta", eta)

    def value(self, x):
        """M(x), shape ``(...)``."""
        x = _array(x)
        p = self.penalty.prox(x, self.eta)
        return self.penalty.value(p) + np.square(x - p).sum(axis=-1) / (2 * self.eta)

    def grad(self, x):
        """grad M(x), same shape as ``x``."""
        x = _array(x)
        return (x - self.penalty.prox(x, self.eta)) / self.eta


@dataclass(frozen=True)
class Composite:
    """A loss L = f + g with f smooth and g given by its proximal operator.

    Attributes
    ----------
    smooth : Loss
        f, with value, gradient and Hessian.
    penalty : object
        g, with ``value(x)`` and ``prox(v, eta)`` (see :mod:`flowsim.prox`).
    full : Loss
        f + g compiled as one (non-smooth) loss, for values and subgradients.
    """

    smooth: object
    penalty: object
    full: object

    def value(self, x):
        """L(x) = f(x) + g(x), shape ``(...)`` for ``x`` of shape ``(..., n)``."""
        return self.smooth.value(x) + self.penalty.value(x)
