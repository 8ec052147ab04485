"""Work-precision: which method follows the flow best per unit of work.

For each standard problem, every ODE method over a ladder of tolerances and every discrete
scheme with a flow (from the registry) over a ladder of step sizes: the error at a fixed time
T against a reference, the gradient and Hessian evaluations, and the wall time. Schemes of
the gradient flow are measured against its reference; Newton against the Newton flow, heavy
ball (at friction 1, momentum 1 - h) and Nesterov (r = 3) against their own ODEs, each
integrated by DOP853 at rtol 1e-13.
The reference is the closed form where one exists (quadratics: the matrix exponential), else
the tightest DOP853 solve, cross-checked against Radau (the difference is reported).

Run: ``python3 benchmarks/work_precision.py [--quick] [--out DIR]``; ``run.py`` calls it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import flowsim as fs  # noqa: E402
from flowsim import losses, methods  # noqa: E402
from flowsim.compare import reference_flow  # noqa: E402

ODE_METHODS = ("RK23", "RK45", "DOP853", "Radau", "BDF", "LSODA")


def problems(quick):
    """(name, loss, x0, T) of the standard problems."""
    out = [("quadratic kappa=4", losses.ill_conditioned_quadratic(4.0), [1.0, 1.0], 2.0),
           ("quadratic kappa=1e2", losses.ill_conditioned_quadratic(1e2), [1.0, 1.0], 2.0),
           ("quadratic kappa=1e4", losses.ill_conditioned_quadratic(1e4), [1.0, 1.0], 2.0),
           ("rosenbrock(2)", losses.rosenbrock(2), [-1.2, 1.0], 2.0),
           ("himmelblau near a saddle", losses.himmelblau(), [-0.128, -1.9537 + 1e-3], 3.0),
           ("stiff quadratic kappa=1e6", losses.ill_conditioned_quadratic(1e6), [1.0, 1.0],
            1.0)]
    if not quick:
        out.append(("rosenbrock(100)", losses.rosenbrock(100), np.full(100, 0.5), 1.0))
    return out


def reference(loss, x0, T):
    """The state at T and a note on how it was obtained."""
    if loss.facts is not None and loss.facts.flow_solution is not None:
        return np.asarray(loss.facts.flow_solution(T, np.asarray(x0, float))), "closed form"
    a = fs.gradient_flow(loss, x0, T, method="DOP853", rtol=1e-13, atol=1e-15).x_final
    b = fs.gradient_flow(loss, x0, T, method="Radau", rtol=1e-12, atol=1e-14).x_final
    return a, f"DOP853 at rtol 1e-13 (Radau differs by {np.linalg.norm(a - b):.1e})"


def _measure(run, x_ref):
    start = time.perf_counter()
    traj = run()
    seconds = time.perf_counter() - start
    reached = traj.ts[-1]
    error = np.linalg.norm(traj.x_final - x_ref) if traj.status.value != "failed" else np.nan
    return dict(error=error, evaluations=traj.ngev + traj.nhev + traj.nfev, seconds=seconds,
                status=traj.status.value, t_reached=reached)


def measure(quick):
    """Rows (problem, method, setting, error, evaluations, seconds, status)."""
    tols = (1e-4, 1e-8) if quick else (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9,
                                              1e-10, 1e-11)
    levels = 2 if quick else 6
    # the mirror-geometry schemes are gradient descent and proximal point in the Euclidean
    # default geometry: the same points again, at Python-loop cost; left out here
    schemes = [m for m in methods.schemes() if m.flow and m.order and m.flow != "mirror_flow"
               and not (quick and m.name == "adam")]   # Adam: in the full run only
    rows, notes = [], {}
    for name, loss, x0, T in problems(quick):
        x_ref, note = reference(loss, x0, T)
        notes[name] = note
        for method in ODE_METHODS:
            if quick and (method == "RK23" or ("stiff" in name and method in ("RK45", "DOP853"))):
                continue   # quick: RK23 in the full run only; no explicit method when stiff
            for tol in tols:
                r = _measure(lambda: fs.gradient_flow(loss, x0, T, method=method, rtol=tol,
                                                      atol=tol * 1e-2, max_steps=200_000), x_ref)
                rows.append(dict(problem=name, method=method, setting=f"rtol={tol:g}", **r))
        lam = np.abs(np.linalg.eigvalsh(loss.hess(np.asarray(x0, float)))).max()
        for record in ([] if quick and "stiff" in name else schemes):   # quick: the stiff
            # problem's momentum and Newton ODE references take longer than the rest
            options_at = (lambda h, r=record: r.fixed_ode(h, 1.0)) if record.fixed_ode \
                else (lambda h: {})
            own = x_ref
            if record.flow != "gradient_flow":  # its own ODE, held fixed as h shrinks
                ode = reference_flow(record, loss, x0, T, 0.01, options_at(0.01), "DOP853",
                                     1e-13, 1e-15)[2]
                if ode.ts[-1] < T * (1 - 1e-12):
                    continue  # the ODE itself stops early here (Newton: H not definite)
                own = ode.x_final
            root = record.step_time == "sqrt(eta)"
            h_max = min(T / 8, (1 / np.sqrt(lam)) if root else 0.5 / lam,
                        record.max_eta or np.inf, 0.5 if record.fixed_ode else np.inf)
            for k in range(levels):
                steps = int(np.ceil(T / h_max)) * 2 ** k
                cap = 20_000 if quick else 400_000   # quick: no 80,000-step Python loops
                if steps > cap or (record.name in ("proximal_point", "adam")
                                   and steps > 40_000):
                    continue
                eta = record.eta_of(T / steps)
                r = _measure(lambda: record.function(loss, x0, eta, steps,
                                                     **options_at(T / steps)), own)
                rows.append(dict(problem=name, method=record.short or record.name,
                                 setting=f"eta={eta:.3g}", **r))
    return rows, notes


#: One marker per method, cycled with the colours of tab20 (20 distinct colours).
MARKERS = "osD^v<>phX*P8dH"


def method_styles(names):
    """One distinct (colour, marker) per method name: ODE solvers solid, schemes dashed."""
    import matplotlib
    colors = matplotlib.colormaps["tab20"].colors
    order = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    return {name: dict(color=colors[order[i % 20]], marker=MARKERS[i % len(MARKERS)],
                       ls="-" if name in ODE_METHODS else "--")
            for i, name in enumerate(names)}


def picture(rows, path):
    """Error against evaluations and against time, one panel pair per problem (log-log); each
    method in its own colour and marker, one legend under all panels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(r["problem"] for r in rows))
    styles = method_styles(list(dict.fromkeys(r["method"] for r in rows)))
    fig, axes = plt.subplots(2, len(names), figsize=(3.4 * len(names), 7.0), squeeze=False)
    for j, name in enumerate(names):
        mine = [r for r in rows if r["problem"] == name]
        for method in dict.fromkeys(r["method"] for r in mine):
            pts = [r for r in mine if r["method"] == method and np.isfinite(r["error"])
                   and r["error"] > 0]
            if not pts:
                continue
            for i, key in enumerate(("evaluations", "seconds")):
                axes[i, j].loglog([p[key] for p in pts], [p["error"] for p in pts], ms=3,
                                  label=method, **styles[method])
        axes[0, j].set_title(name, fontsize=9)
        axes[1, j].set_xlabel("wall time (s)")
        axes[0, j].set_xlabel("evaluations (value + gradient + Hessian)", fontsize=8)
    axes[0, 0].set_ylabel("error at T")
    axes[1, 0].set_ylabel("error at T")
    handles = [plt.Line2D([], [], ms=5, label=m, **st) for m, st in styles.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 11), fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(rows, notes):
    """Markdown: per problem, the cheapest run of each method reaching error <= 1e-6."""
    lines = []
    for name in dict.fromkeys(r["problem"] for r in rows):
        lines += [f"**{name}** (reference: {notes[name]})", "",
                  "| method | cheapest setting with error <= 1e-6 | evaluations | seconds | "
                  "smallest error |", "| --- | --- | --- | --- | --- |"]
        mine = [r for r in rows if r["problem"] == name]
        for method in dict.fromkeys(r["method"] for r in mine):
            runs = [r for r in mine if r["method"] == method]
            good = [r for r in runs if np.isfinite(r["error"]) and r["error"] <= 1e-6]
            best = min((r["error"] for r in runs if np.isfinite(r["error"])), default=np.nan)
            if good:
                r = min(good, key=lambda r: r["evaluations"])
                lines.append(f"| {method} | {r['setting']} | {r['evaluations']:,} | "
                             f"{r['seconds']:.3g} | {best:.2e} |")
            else:
                lines.append(f"| {method} | none | - | - | {best:.2e} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows, notes = measure(args.quick)
    picture(rows, os.path.join(args.out, "work_precision.png"))
    text = table(rows, notes)
    with open(os.path.join(args.out, "work_precision.md"), "w") as handle:
        handle.write(text)
    import pandas
    pandas.DataFrame(rows).to_csv(os.path.join(args.out, "work_precision.csv"), index=False)
    print(text)
    return rows


if __name__ == "__main__":
    main()
