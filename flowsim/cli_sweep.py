"""``flowsim sweep``: the three study recipes on the command line, a table and a picture."""
from __future__ import annotations

__all__ = ["add_sweep_parser"]


def _etas(text):
    """``LOW:HIGH:COUNT`` (geometric) or comma-separated step sizes."""
    import numpy as np
    from .cli import UsageError, _vector
    if ":" in text:
        parts = text.split(":")
        try:
            low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
        except (ValueError, IndexError):
            raise UsageError("--etas must be LOW:HIGH:COUNT (geometric) or comma-separated "
                             "step sizes, e.g. --etas 1e-3:0.5:30") from None
        if not (0 < low < high and 2 <= count <= 10_000):
            raise UsageError("--etas LOW:HIGH:COUNT needs 0 < LOW < HIGH and 2 <= COUNT.")
        return np.geomspace(low, high, count)
    return _vector(text, "etas")


def _out_path(path):
    """``--out`` checked before any work: a .csv file in an existing, writable folder (not an
    existing folder), or a folder that exists or can be made in one."""
    from ._validate import writable_folder, writable_path
    if path.lower().endswith(".csv"):
        return writable_path(path, "--out")
    return writable_folder(path, "--out")


def _cmd_sweep(args):
    import numpy as np
    from .cli import UsageError, _figure_path, _start, _vector, resolve_loss
    from .study.recipes import basin_map, disagreement, step_size_sweep, time_to_tolerance
    plot = _figure_path(args.plot) if args.plot else None
    out = _out_path(args.out) if args.out else None
    loss = resolve_loss(args.loss)
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    common = dict(workers=args.workers, progress=None)
    if args.recipe == "step-size":
        study = step_size_sweep(loss, _start(args, loss), _etas(args.etas),
                                methods or ("gd", "hb", "nag"), args.steps, **common)
    elif args.recipe == "basins":
        bounds = _vector(args.bounds, "bounds") if args.bounds else None
        study = basin_map(loss, args.eta, args.resolution, bounds=bounds,
                          methods=methods or ("gradient_flow", "gd", "pp"), **common)
        print(f"minimizers {np.round(study.spec['minimizers'], 6).tolist()} "
              f"({study.spec['minimizers_source']})")
        print("starts ending elsewhere than the flow: " + ", ".join(
            f"{k} {100 * v:.2f}%" for k, v in disagreement(study).items()))
    else:
        from ._validate import check_bounds
        if args.bounds:
            box = check_bounds(_vector(args.bounds, "bounds"), loss.n)
        elif loss.facts is not None and loss.facts.bounds is not None:
            box = check_bounds(loss.facts.bounds, loss.n)
        else:
            raise UsageError("time: give --bounds low,high (the box the starts are drawn "
                             "from, and where L* is found) for a loss with no usual box.")
        starts = np.random.default_rng(0).uniform(box[:, 0], box[:, 1], (args.starts, loss.n))
        study = time_to_tolerance(loss, starts, args.tol, methods or ("gradient_flow", "gd",
                                                                        "hb", "nag"),
                                  args.eta, args.steps, min_value=args.min_value,
                                  bounds=box, **common)
        print(f"L* = {study.spec['min_value']:.6g} ({study.spec['min_value_source']})")
    print(study.summary())
    if out:
        path = study.save(out) if not out.endswith(".csv") else \
            study.runs.to_csv(out, index=False) or out
        print(f"wrote {path}")
    if plot:
        from . import plot as pictures
        if args.recipe == "step-size":
            fig = pictures.step_size_picture(study).figure
        elif args.recipe == "basins":
            fig = pictures.basin_maps(study)
        else:
            fig = pictures.time_to_tolerance_picture(study).figure
        fig.savefig(plot, dpi=110)
        print(f"wrote {plot}")
    return 0


def add_sweep_parser(sub, named):
    """The ``sweep`` subcommand of the ``flowsim`` parser."""
    import argparse
    sweep = sub.add_parser("sweep", help="many runs: step sizes, basins, time to tolerance",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sweep.add_argument("recipe", choices=("step-size", "basins", "time"),
                       help="step-size: final L against eta per method; basins: which minimum "
                            "each grid point reaches per method; time: time to L - L* <= tol")
    sweep.add_argument("loss", help="a named loss (%s) or a formula" % ", ".join(named))
    sweep.add_argument("--methods", "--schemes", dest="methods", metavar="NAMES",
                       help="comma separated registry names or short names (by default the "
                            "recipe's own)")
    sweep.add_argument("--x0", help="start (step-size), comma separated")
    sweep.add_argument("--etas", default="1e-4:0.5:30",
                       help="step sizes: LOW:HIGH:COUNT (geometric) or comma separated")
    sweep.add_argument("--eta", type=float, default=0.01, help="step (basins, time)")
    sweep.add_argument("--steps", type=int, default=2000, help="steps of the schemes")
    sweep.add_argument("--resolution", type=int, default=120, help="grid side (basins)")
    sweep.add_argument("--bounds", help="low,high or low,high per variable: the grid (basins), "
                                        "the starts (time), and where facts are derived")
    sweep.add_argument("--min-value", type=float, dest="min_value",
                       help="L* (time; by default known, or derived in --bounds)")
    sweep.add_argument("--tol", type=float, default=1e-8, help="L - L* tolerance (time)")
    sweep.add_argument("--starts", type=int, default=1000, help="random starts (time)")
    sweep.add_argument("--workers", type=int, help="processes")
    sweep.add_argument("--out", help="write the runs: a folder (Parquet) or a .csv file")
    sweep.add_argument("--plot", help="write the picture to this file")
    sweep.set_defaults(run=_cmd_sweep)
