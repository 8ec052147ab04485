"""``Loss``: a formula compiled into batched value, gradient and Hessian functions."""
from __future__ import annotations

import collections
import types

import numpy as np
import sympy as sp

from ._audit import to_sympy
from ._budget import Budget, as_budget
from ._construction import (as_symbol_names, build_compiled, check_backend, check_params,
                            real_column, rebuild_loss, sample_index, to_expr)
from ._evaluation import Counter, EvalCounts, Evaluation
from ._gate import check_name
from ._parse import natural_key
from ..facts import LossFacts

__all__ = ["Loss", "EvalCounts", "Budget"]  # EvalCounts is re-exported from ._evaluation


class Loss(Evaluation):
    """A differentiable loss L(x) compiled from a formula.

    Parameters
    ----------
    formula : str or sympy.Expr
        The loss, e.g. ``"(1-x)**2 + 100*(y-x**2)**2"``. Strings are parsed by a safe
        whitelist parser (see :func:`flowsim.loss._parse.parse_formula`), never evaluated.
    variables : sequence of str or sympy.Symbol, optional
        The variables, in the order of the components of ``x``. By default every free symbol
        that is not a parameter, in natural order (``x2`` before ``x10``).
    params : dict of str to float, optional
        Named constants, bound now and changeable with :meth:`with_params` without
        differentiating again.
    backend : {"auto", "symengine", "sympy"}
        Compiler backend (see :mod:`flowsim.loss._compile`); ``"auto"`` picks symengine for smooth
        losses and sympy for non-smooth ones.
    facts : LossFacts, optional
        Known critical points, minimum value, closed-form flow (named losses set this).
    budget : Budget or dict, optional
        Limits on the formula's size and its derivatives (:class:`flowsim.Budget`); a loss
        over a limit raises ``ValueError`` naming the limit before the expensive work.

    Notes
    -----
    Non-smooth pieces compile to a particular subgradient at their kinks: ``abs(u)`` has
    derivative ``sign(u)`` (0 at u = 0), ``max(u, v)`` and ``min(u, v)`` split the derivative
    equally between the arguments at a tie (Heaviside(0) = 1/2), and second derivatives of
    kinks are taken as 0 (the almost-everywhere derivative).

    Shapes: a point ``(n,)`` gives a float, ``(n,)`` and ``(n, n)``; a batch ``(..., n)``
    gives ``(...)``, ``(..., n)`` and ``(..., n, n)``.

    Every input, text or sympy, passes one gate (:func:`flowsim.loss._gate.check_expression`):
    whitelisted functions only, real finite constants, no undefined functions, no names
    that collide with functions, and a size budget. A Loss pickles by its expression and is
    compiled again on arrival (once per process: compiled kernels are cached by expression).

    Examples
    --------
    >>> loss = Loss("(1-x)**2 + 100*(y-x**2)**2")
    >>> loss.grad([1.0, 1.0])
    array([0., 0.])
    >>> loss.value([[0, 0], [1, 1]])
    array([1., 0.])
    """

    __slots__ = ("_c", "_params", "_param_values", "_point_extra", "_data", "_counter",
                 "_facts", "_cache")

    def __init__(self, formula, variables=None, params=None, *, backend="auto", facts=None,
                 budget=None):
        budget = as_budget(budget)
        check_backend(backend)
        if facts is not None and not isinstance(facts, LossFacts):
            raise TypeError("facts must be a flowsim.LossFacts or None.")
        expr = to_expr(formula, budget)
        params = check_params(params, "params")
        names = {s.name for s in expr.free_symbols}
        for p in params:
            if p not in names:
                raise ValueError(f"params: {p!r} does not occur in the loss; remove it or "
                                 "check its spelling.")
        if variables is None:
            var_names = sorted(names - set(params), key=natural_key)
        else:
            var_names = as_symbol_names(variables, "variables")
            clash = set(var_names) & set(params)
            if clash:
                raise ValueError(f"variables and params both name {sorted(clash)}; a symbol is "
                                 "either a variable or a parameter.")
            missing = sorted(names - set(var_names) - set(params), key=natural_key)
            if missing:
                raise ValueError(f"symbol {missing[0]!r} is not among variables "
                                 f"{tuple(var_names)} or params; add it to one of them.")
        if not var_names:
            raise ValueError("the loss has no variables; write it in terms of at least one "
                             "symbol, or name the variables with variables=(...).")
        self._init(build_compiled(expr, var_names, list(params), [], backend, budget),
                   params, None, facts)

    # -- construction helpers ----------------------------------------------------------------
    def _init(self, compiled, params, data, facts):
        set_ = object.__setattr__
        set_(self, "_c", compiled)
        set_(self, "_params", types.MappingProxyType(dict(params)))
        set_(self, "_param_values", np.array([params[s.name] for s in compiled.param_symbols],
                                             dtype=float))
        set_(self, "_point_extra", tuple(self._param_values.tolist())
             if data is None else None)
        set_(self, "_data", data)
        set_(self, "_counter", Counter())
        set_(self, "_facts", facts)
        set_(self, "_cache", {})

    @classmethod
    def _from_parts(cls, compiled, params, data, facts):
        obj = cls.__new__(cls)
        obj._init(compiled, params, data, facts)
        return obj

    def __setattr__(self, name, value):
        raise AttributeError("Loss is immutable; use with_params(...) for other constants.")

    def __reduce__(self):
        c = self._c
        state = (c.expr, tuple(v.name for v in c.variables),
                 tuple(p.name for p in c.param_symbols), tuple(d.name for d in c.data_symbols),
                 dict(self._params), self._data, self._facts, c.kernels.backend,
                 (self._counter.value, self._counter.grad, self._counter.hess), c.budget)
        return rebuild_loss, state

    def __deepcopy__(self, memo):
        return rebuild_loss(*self.__reduce__()[1])

    @classmethod
    def from_samples(cls, per_sample, data, variables, params=None, *, backend="auto",
                     budget=None):
        """The mean of a per-sample loss over a data set.

        Parameters
        ----------
        per_sample : str or sympy.Expr
            The loss of one sample, written in the variables (model parameters) and data
            symbols, e.g. ``"(a*x + b - y)**2"``.
        data : dict of str to array_like, each shape (N,)
            Values of the data symbols, one entry per sample.
        variables : sequence of str
            The variables (model parameters), in order.
        params : dict of str to float, optional
            Named constants.
        budget : Budget or dict, optional
            Size limits, as for :class:`Loss`.

        Returns
        -------
        Loss
            L(w) = (1/N) sum_i per_sample(w; data_i). Value, gradient and Hessian are
            evaluated vectorized over samples; :meth:`subset` restricts it to some samples.

        Examples
        --------
        >>> mse = Loss.from_samples("(a*x + b - y)**2", {"x": [1, 2, 3, 4], "y": [2, 4, 5, 4]},
        ...                         variables=("a", "b"))
        >>> np.round(mse.grad([0.7, 2.0]), 12) + 0.0
        array([0., 0.])
        """
        budget = as_budget(budget)
        check_backend(backend)
        expr = to_expr(per_sample, budget)
        params = check_params(params, "params")
        var_names = as_symbol_names(variables, "variables")
        if not var_names:
            raise ValueError("variables must name at least one model parameter.")
        if not isinstance(data, collections.abc.Mapping) or not data:
            raise TypeError("data must be a non-empty dict mapping data symbol names to "
                            "arrays of shape (N,).")
        columns, n_samples = [], None
        for name, values in data.items():
            check_name(name, "data")
            col = real_column(values, name)
            if col.ndim != 1 or col.size == 0:
                raise ValueError(f"data[{name!r}] must be a non-empty 1-D array (one value per "
                                 f"sample), got shape {col.shape}.")
            if n_samples is not None and col.size != n_samples:
                raise ValueError(f"data[{name!r}] has {col.size} samples, the others "
                                 f"{n_samples}; give every data array the same length.")
            if not np.all(np.isfinite(col)):
                raise ValueError(f"data[{name!r}] holds non-finite values; clean the data.")
            n_samples = col.size
            columns.append(col)
        data_names = list(data)
        clash = set(data_names) & (set(var_names) | set(params))
        if clash:
            raise ValueError(f"data names {sorted(clash)} are also variables or params; "
                             "rename one of them.")
        names = {s.name for s in expr.free_symbols}
        missing = sorted(names - set(var_names) - set(params) - set(data_names))
        if missing:
            raise ValueError(f"symbol {missing[0]!r} is not among variables, params or data; "
                             "add it to one of them.")
        compiled = build_compiled(expr, var_names, list(params), data_names, backend, budget)
        return cls._from_parts(compiled, params, np.stack(columns, axis=-1), None)

    def subset(self, indices):
        """The same finite-sum loss restricted to the samples ``indices`` (for mini-batches).

        Its evaluations are counted in this loss's :attr:`counts`.

        Parameters
        ----------
        indices : array_like of int, shape (k,), or bool mask, shape (N,)
            Which samples to keep (at least one; integer indices in [-N, N)).

        Returns
        -------
        Loss
        """
        if self._data is None:
            raise ValueError("subset() needs a loss built by Loss.from_samples.")
        rows = self._data[sample_index(indices, self._data.shape[0])]
        part = Loss._from_parts(self._c, self._params, rows, None)
        object.__setattr__(part, "_counter", self._counter)  # one place counts the work
        return part

    def with_params(self, **values):
        """A new Loss with some parameters changed; nothing is differentiated again.

        Examples
        --------
        >>> Loss("a*x**2", params={"a": 1.0}).with_params(a=3.0).value([1.0])
        3.0
        """
        unknown = sorted(set(values) - set(self._params))
        if unknown:
            raise ValueError(f"with_params: {unknown[0]!r} is not a parameter of this loss; "
                             f"its parameters are {sorted(self._params)}.")
        params = dict(self._params)
        params.update(check_params(values, "with_params"))
        return Loss._from_parts(self._c, params, self._data, self._facts)

    def copy(self):
        """The same compiled loss with its own evaluation counter, starting at zero.

        Work that runs beside other work on one loss (a chunk on a thread pool) counts its
        evaluations on a copy, so that each run's ``nfev``/``ngev``/``nhev`` are its own.
        Nothing is compiled again.
        """
        return Loss._from_parts(self._c, self._params, self._data, self._facts)

    def with_facts(self, facts):
        """The same compiled loss carrying ``facts`` (a :class:`LossFacts`)."""
        if not isinstance(facts, LossFacts):
            raise TypeError("facts must be a flowsim.facts.LossFacts.")
        return Loss._from_parts(self._c, self._params, self._data, facts)

    # -- symbolic view -----------------------------------------------------------------------
    @property
    def expr(self):
        """The loss as a sympy expression (per sample, for a finite sum)."""
        return self._c.expr

    @property
    def variables(self):
        """The variables as a tuple of real sympy symbols, in component order."""
        return self._c.variables

    @property
    def variable_names(self):
        """The variables' names, in component order (a tuple of str)."""
        return tuple(v.name for v in self._c.variables)

    @property
    def n(self):
        """Number of variables."""
        return len(self._c.variables)

    @property
    def params(self):
        """Bound parameter values (read-only mapping)."""
        return self._params

    @property
    def facts(self):
        """Known facts (:class:`LossFacts`) or None."""
        return self._facts

    @property
    def n_samples(self):
        """Number of samples of a finite-sum loss, else None."""
        return None if self._data is None else self._data.shape[0]

    @property
    def backend(self):
        """The compiler backend that was used: ``"symengine"`` or ``"sympy"``."""
        return self._c.kernels.backend

    def _to_sympy(self, items):
        names = {s.name: s for s in self._c.variables + self._c.param_symbols
                 + self._c.data_symbols}
        out = []
        for item in items:
            e = to_sympy(item)
            out.append(e.xreplace({s: names.get(s.name, s) for s in e.free_symbols}))
        return out

    def symbol_values(self):
        """The values bound to the symbols that are not variables.

        Returns
        -------
        dict
            sympy symbol -> float for each parameter, and -> ndarray of shape (N,) for each
            data column of a finite-sum loss (whose value is the mean over the N samples).
        """
        out = {s: float(v) for s, v in zip(self._c.param_symbols, self._param_values)}
        if self._data is not None:
            out.update({s: self._data[:, j].copy() for j, s in enumerate(self._c.data_symbols)})
        return out

    @property
    def gradient_expr(self):
        """The gradient as a sympy column ``Matrix`` of shape (n, 1)."""
        if "gradient" not in self._cache:
            self._cache["gradient"] = sp.ImmutableMatrix(self._to_sympy(self._c.kernels.gradient))
        return self._cache["gradient"]

    @property
    def hessian_expr(self):
        """The Hessian as a sympy ``ImmutableSparseMatrix`` of shape (n, n)."""
        if "hessian" not in self._cache:
            k = self._c.kernels
            entries = {}
            for i, j, e in zip(k.hess_rows, k.hess_cols, self._to_sympy(k.hessian)):
                entries[(int(i), int(j))] = entries[(int(j), int(i))] = e
            self._cache["hessian"] = sp.ImmutableSparseMatrix(self.n, self.n, entries)
        return self._cache["hessian"]

    @property
    def hessian_pattern(self):
        """Symmetric sparsity pattern ``(rows, cols)`` of the Hessian, each shape (nnz,)."""
        return self._c.full_rows.copy(), self._c.full_cols.copy()

    def __repr__(self):
        text = str(self._c.expr)
        if len(text) > 80:
            text = text[:77] + "..."
        names = ", ".join(v.name for v in self._c.variables)
        if self.n > 8:
            names = f"{self._c.variables[0].name}, ..., {self._c.variables[-1].name}"
        extra = f", params={dict(self._params)}" if self._params else ""
        if self._data is not None:
            extra += f", n_samples={self.n_samples}"
        return f"Loss({text!r}, variables=({names}){extra})"

    def _repr_html_(self):
        """The notebook display: the formula, the variables, the facts it carries."""
        from .._report import html_block
        names = ", ".join(v.name for v in self._c.variables[:12]) + \
            (", ..." if self.n > 12 else "")
        lines = [f"L = {self._c.expr}", f"variables ({self.n}): {names}"]
        if self._params:
            lines.append(f"parameters: {dict(self._params)}")
        if self._data is not None:
            lines.append(f"a mean over {self.n_samples} samples")
        facts = self.facts
        if facts is not None:
            lines.append(f"facts: {facts.name}; L* = {facts.min_value}; "
                         f"{len(facts.critical_points)} known critical point(s)"
                         + (f" ({facts.source})" if getattr(facts, "source", "") else ""))
        return html_block("Loss", "\n".join(lines))

    def _repr_latex_(self):
        args = ", ".join(sp.latex(v) for v in self._c.variables[:8])
        if self.n > 8:
            args += r", \ldots"
        body = sp.latex(self._c.expr)
        if self._data is not None:
            body = rf"\frac{{1}}{{{self.n_samples}}} \sum_i \left[{body}\right]"
        return rf"$\displaystyle L({args}) = {body}$"


