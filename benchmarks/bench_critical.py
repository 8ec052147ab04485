"""Critical points on 2-D global-optimization benchmark functions: the complete interval search
against the quick Newton search (400 random starts) measured in the same run.

For each function (its usual box, its known global minimizer): points found, how many proven,
the status, whether the known global minimizer is among the points (within 1e-3 relative),
and the wall time of each method.

    python3 benchmarks/bench_critical.py [--time-limit 20]
"""
import argparse
import time

import numpy as np

import flowsim as fs

#: name: (formula, box, a global minimizer inside the box (None: on its boundary))
FUNCTIONS = {
    "himmelblau": ("(x**2 + y - 11)**2 + (x + y**2 - 7)**2", [(-5, 5)] * 2, [3, 2]),
    "branin": ("(y - 5.1/(4*pi**2)*x**2 + 5/pi*x - 6)**2 + 10*(1 - 1/(8*pi))*cos(x) + 10",
               [(-5, 10), (0, 15)], [np.pi, 2.275]),
    "goldstein_price": ("(1 + (x + y + 1)**2*(19 - 14*x + 3*x**2 - 14*y + 6*x*y + 3*y**2))"
                        "*(30 + (2*x - 3*y)**2*(18 - 32*x + 12*x**2 + 48*y - 36*x*y + 27*y**2))",
                        [(-2, 2)] * 2, [0, -1]),
    "beale": ("(1.5 - x + x*y)**2 + (2.25 - x + x*y**2)**2 + (2.625 - x + x*y**3)**2",
              [(-4.5, 4.5)] * 2, [3, 0.5]),
    "mccormick": ("sin(x + y) + (x - y)**2 - 1.5*x + 2.5*y + 1", [(-1.5, 4), (-3, 4)],
                  [-0.54719, -1.54719]),
    "styblinski_tang": ("(x**4 - 16*x**2 + 5*x + y**4 - 16*y**2 + 5*y)/2", [(-5, 5)] * 2,
                        [-2.903534, -2.903534]),
    "levi13": ("sin(3*pi*x)**2 + (x - 1)**2*(1 + sin(3*pi*y)**2) + (y - 1)**2*(1 + "
               "sin(2*pi*y)**2)", [(-10, 10)] * 2, [1, 1]),
    "three_hump_camel": ("2*x**2 - 1.05*x**4 + x**6/6 + x*y + y**2", [(-5, 5)] * 2, [0, 0]),
    "rastrigin": ("20 + x**2 - 10*cos(2*pi*x) + y**2 - 10*cos(2*pi*y)", [(-5.12, 5.12)] * 2,
                  [0, 0]),
    "easom": ("-cos(x)*cos(y)*exp(-((x - pi)**2 + (y - pi)**2))", [(-100, 100)] * 2,
              [np.pi, np.pi]),
    "ackley (kink)": ("-20*exp(-0.2*sqrt(0.5*(x**2 + y**2))) - exp(0.5*(cos(2*pi*x) + "
                      "cos(2*pi*y))) + E + 20", [(-5, 5)] * 2, [0, 0]),
    "holder_table": ("-abs(sin(x)*cos(y)*exp(abs(1 - sqrt(x**2 + y**2)/pi)))", [(-10, 10)] * 2,
                     [8.05502, 9.66459]),
    "griewank": ("(x**2 + y**2)/4000 - cos(x)*cos(y/sqrt(2)) + 1", [(-600, 600)] * 2, [0, 0]),
}


def _hit(points, x_star):
    return any(np.linalg.norm(p.point - x_star) < 1e-3 * (1 + np.linalg.norm(x_star))
               for p in points)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=20.0)
    args = parser.parse_args()
    print("| function | interval: points (proven) | status | undecided regions | global min "
          "| time | newton: points | global min | time |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    hits = [0, 0]
    for name, (formula, box, x_star) in FUNCTIONS.items():
        loss = fs.Loss(formula)
        t0 = time.perf_counter()
        full = fs.critical_points(loss, box, time_limit=args.time_limit)
        t1 = time.perf_counter()
        quick = fs.critical_points(loss, box, method="newton")
        t2 = time.perf_counter()
        a, b = _hit(full, np.array(x_star)), _hit(quick, np.array(x_star))
        hits[0] += a
        hits[1] += b
        proven = sum(p.proven for p in full)
        print(f"| {name} | {len(full)} ({proven}) | {full.status} | {len(full.undecided)} | "
              f"{'yes' if a else 'no'} | {t1 - t0:.2f} s | {len(quick)} | "
              f"{'yes' if b else 'no'} | {t2 - t1:.2f} s |")
    print(f"\nglobal minimizer found: interval {hits[0]}/{len(FUNCTIONS)}, "
          f"newton {hits[1]}/{len(FUNCTIONS)}")


if __name__ == "__main__":
    main()
