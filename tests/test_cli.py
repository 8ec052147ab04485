"""The flowsim command: the README's main job, errors as one line."""
import subprocess
import sys

import pytest

from flowsim.cli import main


def test_compare_prints_the_table(capsys):
    assert main(["compare", "rosenbrock", "--eta", "1e-3", "--steps", "200"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "gd |x-x(t)|" in out and "pp |x-x(t)|" in out and "GD stable for eta <" in out
    assert "... gradient_descent: reached_end after 200 steps" in captured.err  # on stderr


def _ending(out, label):
    """``(status, L)`` from the line of ``label`` in the summary's endings."""
    line = next(text for text in out.splitlines() if text.strip().startswith(label + ":"))
    status = line.split(":", 1)[1].split()[0]
    return status, float(line.split("L = ")[1].split(",")[0].split()[0])


def test_compare_formula_and_schemes(capsys):
    # L = x^2 + 10 y^2, eta = 0.15: per step GD multiplies (x, y) by (0.7, -2), Heun by
    # (0.745, 2.5) (both unstable along y), proximal point by (1/1.3, 1/4)
    assert main(["compare", "x**2 + 10*y**2", "--x0", "1,1", "--eta", "0.15", "--steps", "20",
                 "--schemes", "gd,pp,heun"]) == 0
    out = capsys.readouterr().out
    assert _ending(out, "gradient descent")[0] == "diverged"
    assert _ending(out, "Heun")[0] == "diverged"
    status, value = _ending(out, "proximal point")
    assert status == "reached_end"
    assert value == pytest.approx(1.3 ** -40 + 10 * 4.0 ** -40, rel=1e-5)


@pytest.mark.parametrize("argv, match", [
    (["compare", "x**2 + y**2"], "give a start for this loss with --x0"),
    (["compare", "x**2", "--x0", "a,b"], "--x0 must be comma-separated numbers"),
    (["compare", "x**2", "--x0", "1,2"], "--x0 needs 1 numbers"),
    (["compare", "rosenbrock", "--schemes", "gd,adamw"], "unknown scheme 'adamw'"),
    (["compare", "rosenbrock", "--schemes", "gd,prox"], "did you mean"),
    (["compare", "rosenbrock", "--schemes", "pg"], "no flow to compare with"),
    (["compare", "rosenbrock", "--eta", "-1"], "eta must be a finite number > 0"),
    (["compare", "__import__('os')", "--x0", "1"], "loss formula"),
    (["info", "sinn(x)"], "unknown function 'sinn'"),
])
def test_errors_are_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_info_and_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "flowsim", "info", "himmelblau"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "complete list" in done.stdout and done.stdout.count("saddle") == 4


def test_critical_and_plot(capsys, tmp_path):
    assert main(["critical", "himmelblau"]) == 0
    out = capsys.readouterr().out
    assert "9 critical points" in out and out.count("saddle") == 4
    assert main(["critical", "x**2 - y**2", "--bounds=-1,1"]) == 0
    assert "saddle" in capsys.readouterr().out
    assert main(["critical", "x**2 - y**2"]) == 2
    picture = tmp_path / "cmp.png"
    assert main(["compare", "rosenbrock", "--steps", "100", "--plot", str(picture)]) == 0
    assert picture.stat().st_size > 10_000


def test_bad_numbers_are_refused_before_anything_is_printed(capsys):
    from flowsim.cli import main
    for argv in (["compare", "rosenbrock", "--eta", "-0.1"],
                 ["compare", "rosenbrock", "--steps", "0"],
                 # (these three were refused by compare itself, after "comparing ..." was
                 # printed, naming its own arguments instead of the options)
                 ["compare", "rosenbrock", "--methods", ","],
                 ["compare", "rosenbrock", "--methods", "gd,gradient_descent"],
                 ["compare", "rosenbrock", "--flow-method", "rk45"]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "error:" in err


def test_sweep_writes_the_table_and_the_picture(tmp_path, capsys):
    table, picture = tmp_path / "runs.csv", tmp_path / "steps.png"
    assert main(["sweep", "step-size", "x**2/2 + 2*y**2", "--x0", "1,1", "--etas",
                 "0.2,0.45,0.55", "--methods", "gd", "--steps", "300", "--out", str(table),
                 "--plot", str(picture)]) == 0
    import pandas
    runs = pandas.read_csv(table)
    # GD on eigenvalues 1 and 4 is stable exactly for eta < 2/4
    assert runs["status"].tolist() == ["reached_end", "reached_end", "diverged"]
    assert picture.stat().st_size > 5_000
    assert main(["sweep", "basins", "himmelblau", "--resolution", "12", "--methods",
                 "gradient_flow,gd", "--eta", "0.01"]) == 0
    assert "starts ending elsewhere than the flow: gradient_descent" in capsys.readouterr().out
    assert main(["sweep", "step-size", "rosenbrock", "--etas", "1:0.1:3"]) == 2
