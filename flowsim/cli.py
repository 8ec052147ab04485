"""The ``flowsim`` command: compare a flow with its discretizations, inspect a loss.

Examples
--------
``flowsim compare rosenbrock --eta 1e-3 --steps 2000``
``flowsim compare "x**2 + 10*y**2" --x0 1,1 --eta 0.15 --steps 30 --schemes gd,pp,heun``
``flowsim methods``
``flowsim sweep basins himmelblau --eta 0.01 --resolution 200 --plot basins.png``
``flowsim critical himmelblau``
``flowsim info himmelblau``
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import sys

from ._catalog import NAMED_LOSSES
from .cli_sweep import add_sweep_parser

__all__ = ["main", "resolve_loss"]


def _load():
    """Import the numerics, once the arguments are parsed (``flowsim --help`` needs none of
    them: it answers in the time of Python and argparse)."""
    global np, losses, methods, compare, Loss
    global check_bounds, int_between, positive, step_count, writable_path
    import numpy as np
    from . import losses, methods
    from ._validate import check_bounds, int_between, positive, step_count, writable_path
    from .compare import compare
    from .loss import Loss

#: A start for each named loss that shows something worth seeing.
DEFAULT_STARTS = {"rosenbrock": (-1.2, 1.0), "himmelblau": (0.5, -1.0),
                  "six_hump_camel": (1.5, 1.0), "beale": (1.0, 1.5), "monkey_saddle": (0.5, 0.3),
                  "saddle": (1.0, 1e-3), "double_well": (0.2, 1.0),
                  "ill_conditioned_quadratic": (1.0, 1.0)}


class UsageError(Exception):
    """A bad command-line argument: printed as one line, exit status 2."""


def resolve_loss(text):
    """A named loss (see ``flowsim.losses.NAMED``) or a formula.

    A bare name that is no named loss is refused with the names it resembles: ``"rosenbrok"``
    is a typo far more often than the one-variable loss L(rosenbrok) = rosenbrok.
    """
    _load()
    if text in losses.NAMED:
        return losses.NAMED[text]()
    if re.fullmatch(r"\s*[A-Za-z_][A-Za-z0-9_]*\s*", text):
        near = difflib.get_close_matches(text.strip(), losses.NAMED, n=3)
        hint = f"did you mean {' or '.join(map(repr, near))}? " if near else ""
        raise UsageError(f"unknown loss {text.strip()!r}; {hint}named losses are "
                         f"{', '.join(losses.NAMED)}; a formula needs an operator, e.g. "
                         f"'{text.strip()}**2'.")
    return Loss(text)


def _vector(text, name, n=None):
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise UsageError(f"--{name} must be comma-separated numbers, e.g. --{name} -1.2,1") \
            from None
    if not np.all(np.isfinite(values)):
        raise UsageError(f"--{name} must hold finite numbers, got {text!r}.")
    if n is not None and values.size != n:
        raise UsageError(f"--{name} needs {n} numbers for this loss, got {values.size}.")
    return values


def _start(args, loss):
    if args.x0 is not None:
        return _vector(args.x0, "x0", loss.n)
    if args.loss in DEFAULT_STARTS:
        return np.array(DEFAULT_STARTS[args.loss])
    raise UsageError(f"give a start for this loss with --x0 (n = {loss.n} numbers, in the "
                     f"order {', '.join(v.name for v in loss.variables)}).")


def _figure_path(path):
    """The file the figure will be written to: checked, with .png added when no type is given."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    path = writable_path(path, "--plot")
    kinds = Figure().canvas.get_supported_filetypes()
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if not suffix:
        return path + ".png"
    if suffix not in kinds:
        raise UsageError(f"--plot: matplotlib cannot write .{suffix} files; use one of "
                         f"{', '.join('.' + k for k in sorted(kinds))}.")
    return path


def _cmd_compare(args):
    int_between(args.rows, "--rows", 1, 100_000)
    plot = _figure_path(args.plot) if args.plot else None
    loss = resolve_loss(args.loss)
    if args.loss == DEFAULT_LOSS and DEFAULT_LOSS not in args.argv:
        print(f"loss: {DEFAULT_LOSS} (the default; give a named loss or a formula first)")
    x0 = _start(args, loss)
    positive(args.eta, "--eta")
    step_count(args.steps, "--steps", loss.n)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    if not schemes:
        raise UsageError("--methods: name at least one scheme, e.g. --methods gd,pp.")
    names = []
    for name in schemes:
        try:
            record = methods.get(name, "scheme")
            record.reference_flow({}, 1.0)
        except ValueError as err:
            raise UsageError(f"--methods: {err}") from None
        if record.name in names:
            raise UsageError(f"--methods names {record.name} twice; give each scheme once.")
        names.append(record.name)
    from .flows._solver import METHODS as SOLVERS
    if args.flow_method not in tuple(SOLVERS) + ("auto",):
        raise UsageError(f"--flow-method must be one of {', '.join(SOLVERS)} or auto, got "
                         f"{args.flow_method!r}.")
    print(f"comparing the flow of L = {loss.expr} from x0 = {x0.tolist()} with "
          f"{', '.join(schemes)} (eta = {args.eta:g}, {args.steps} steps)", flush=True)
    result = compare(loss, x0, args.eta, args.steps, schemes=schemes,
                     flow_method=args.flow_method,
                     progress=lambda text: print(f"  ... {text}", file=sys.stderr, flush=True))
    print(result.summary(rows=args.rows))
    if plot:
        from .plot import comparison_figure
        comparison_figure(result, loss).savefig(plot, dpi=110)
        print(f"wrote {plot}")
    return 0


def _cmd_methods(args):
    print(f"{'name':<19s} {'short':<7s} {'kind':<7s} {'order':>5s}  {'discretizes':<16s} "
          f"{'time/step':<10s} accepts")
    for m in methods.REGISTRY.values():
        order = "" if m.order is None else f"{m.order:g}"
        print(f"{m.name:<19s} {m.short or '':<7s} {m.kind:<7s} {order:>5s}  "
              f"{(m.flow or '') if m.kind == 'scheme' else '':<16s} "
              f"{m.step_time if m.kind == 'scheme' else '':<10s} "
              f"{', '.join(sorted(m.accepts))}")
    return 0


def _cmd_info(args):
    loss = resolve_loss(args.loss)
    print(f"L({', '.join(v.name for v in loss.variables)}) = {loss.expr}")
    print(f"backend: {loss.backend}")
    if loss.n <= 6:
        print("gradient:")
        for v, g in zip(loss.variables, loss.gradient_expr):
            print(f"  dL/d{v.name} = {g}")
        print(f"Hessian: {loss.hessian_expr.tolist()}")
    else:
        print(f"gradient: {loss.n} components; Hessian with {len(loss.hessian_pattern[0])} "
              "nonzero entries")
    facts = loss.facts
    if facts is not None and facts.critical_points:
        print(f"known critical points{' (complete list)' if facts.complete else ''}:")
        for cp in facts.critical_points:
            tag = " (global)" if cp.is_global else ""
            print(f"  {cp.kind.value:<10s} {np.round(cp.point, 6).tolist()}  "
                  f"L = {loss.value(cp.point):.6g}{tag}")
    return 0


def _cmd_critical(args):
    from .diagnostics import critical_points
    loss = resolve_loss(args.loss)
    if args.bounds is not None:
        values = _vector(args.bounds, "bounds")
        if values.size not in (2, 2 * loss.n):
            raise UsageError(f"--bounds needs 2 numbers (one box side for all variables) or "
                             f"{2 * loss.n} (low,high per variable), got {values.size}.")
        bounds = values.reshape(-1, 2)
        bounds = bounds[0] if len(bounds) == 1 else bounds
    elif loss.facts is not None and loss.facts.bounds is not None:
        bounds = loss.facts.bounds
    else:
        raise UsageError("give the search box with --bounds low,high (or low,high per "
                         "variable).")
    bounds = check_bounds(bounds, loss.n)              # refused here, before any search
    int_between(args.starts, "--starts", 1, 1_000_000)
    positive(args.time_limit, "--time-limit")
    print(f"searching {bounds.tolist()} ({args.method}) ...", flush=True)
    points = critical_points(loss, bounds, method=args.method, n_starts=args.starts,
                             time_limit=args.time_limit)
    print(f"{len(points)} critical points of L = {loss.expr} by {points.method} "
          f"({points.status}: {points.message})")
    if len(points):
        print(f"  points are ({', '.join(loss.variable_names)})")
    for cp in points:
        print(f"  {cp.kind.value:<10s} {np.round(cp.point, 8).tolist()}  L = {cp.value:.10g}  "
              f"eigenvalues {np.round(cp.eigenvalues, 6).tolist()}"
              f"{'  proven' if cp.proven else ''}")
    for region in points.undecided:
        print(f"  undecided  {region.summary()}")
    return 0


#: The loss ``flowsim compare`` runs when none is named (said when it does).
DEFAULT_LOSS = "rosenbrock"


def build_parser():
    """The argument parser of the ``flowsim`` command."""
    parser = argparse.ArgumentParser(prog="flowsim", description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import this module first (repeatable): its flowsim.register "
                             "calls add your own schemes and flows to every command")
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = argparse.ArgumentDefaultsHelpFormatter
    comp = sub.add_parser("compare", help="compare the flow with discrete schemes, step by step",
                          formatter_class=defaults)
    comp.add_argument("loss", nargs="?", default=DEFAULT_LOSS,
                      help="a named loss (%s) or a formula" % ", ".join(NAMED_LOSSES))
    comp.add_argument("--x0", help="start, comma separated (named losses have a default)")
    comp.add_argument("--eta", type=float, default=1e-3, help="step size")
    comp.add_argument("--steps", type=int, default=2000, help="number of steps")
    comp.add_argument("--methods", "--schemes", dest="schemes", default="gd,pp", metavar="NAMES",
                      help="schemes, comma separated names or short names (gd: gradient "
                           "descent, pp: proximal point; 'flowsim methods' lists them)")
    comp.add_argument("--flow-method", default="auto",
                      help="solver of the reference flow (auto: DOP853, Radau once stiff)")
    comp.add_argument("--rows", type=int, default=11, help="rows of the printed table")
    comp.add_argument("--plot", help="write the comparison figure to this file")
    comp.set_defaults(run=_cmd_compare)
    crit = sub.add_parser("critical", help="find and classify the critical points in a box",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    crit.add_argument("loss", help="a named loss (%s) or a formula" % ", ".join(NAMED_LOSSES))
    crit.add_argument("--bounds", help="low,high for every variable, or low,high per variable "
                                       "(named losses have a usual box)")
    crit.add_argument("--method", default="auto",
                      choices=("auto", "interval", "symbolic", "newton", "convex"),
                      help="interval: complete and proven (up to about 3 variables); convex: "
                           "one proven minimizer where the interval Hessian proves convexity; "
                           "newton: a quick sample; auto chooses")
    crit.add_argument("--starts", type=int, default=400, help="random starts of newton")
    crit.add_argument("--time-limit", type=float, default=60.0, dest="time_limit",
                      help="seconds the search may take")
    crit.set_defaults(run=_cmd_critical)
    add_sweep_parser(sub, NAMED_LOSSES)
    meth = sub.add_parser("methods", help="the registered flows and schemes")
    meth.set_defaults(run=_cmd_methods)
    info = sub.add_parser("info", help="variables, gradient, Hessian, known critical points")
    info.add_argument("loss", help="a named loss (%s) or a formula" % ", ".join(NAMED_LOSSES))
    info.set_defaults(run=_cmd_info)
    return parser


#: Options whose value may start with a minus sign (a negative number first).
_NUMERIC_OPTIONS = ("--x0", "--bounds", "--eta")


def _join_negative_values(argv):
    """``--x0 -1.2,1`` -> ``--x0=-1.2,1``: argparse takes a value that starts with '-' and
    is not a plain number for an option, though our own messages suggest this spelling."""
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        if token in _NUMERIC_OPTIONS and i + 1 < len(argv) and \
                re.fullmatch(r"-[0-9.][0-9eE.,+\-\s]*", argv[i + 1]):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _load_plugins(names):
    """Import each ``--plugin`` module (a dotted Python name, checked as one first), from
    the installed packages, PYTHONPATH or the current folder (searched last, as the place a
    researcher keeps ``my_methods.py``; the installed command, unlike ``python -m``, does
    not search it by itself)."""
    import importlib
    if names and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for name in names:
        if not _MODULE_NAME.fullmatch(name):
            raise UsageError(f"--plugin must name a Python module (dotted identifiers such "
                             f"as my_methods), got {name!r}.")
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise UsageError(f"--plugin {name}: the module cannot be imported ({err}); run "
                             "flowsim from its folder, put that folder on PYTHONPATH, or "
                             "install it.") from None


def main(argv=None):
    """Run the command; returns the exit status (errors: one line on stderr, status 2)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(_join_negative_values(argv))
    args.argv = argv
    try:
        _load()
        _load_plugins(args.plugin)
        return args.run(args)
    except (UsageError, ValueError) as err:   # bad input; a TypeError is a bug: it shows
        print(f"flowsim {args.command}: error: {err}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"flowsim {args.command}: error: out of memory; ask for fewer steps or a "
              "smaller loss.", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
