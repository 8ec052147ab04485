"""Untrusted input: nothing executes, nothing hangs, every refusal is one clear sentence.

Formulas arrive as text or as sympy objects; both pass one gate. These tests feed each
category of hostile or pathological input through the whole path (parse, gate, budget,
compile), with ``eval``/``exec``/``compile``/``__import__`` spied and a canary file watched.
"""
import builtins
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy as sp

import flowsim as fs
from flowsim import Loss, losses

CANARY = "/tmp/flowsim_canary_{pid}"
PAYLOAD = "__import__('os').system('touch {canary}')"

# -- text ------------------------------------------------------------------------------------
ATTRIBUTE = ["x.real", "x.__class__", "x.__class__.__mro__", "().__class__.__bases__[0]",
             "exp.__globals__", "(1).__add__(x)", "x.conjugate()", "sin.__call__(x)",
             "__builtins__", "__import__", "x.__dict__", "E.evalf()"]
CALLS = ["__import__('os')", "eval('1')", "exec('x')", "open('/etc/passwd')",
         "getattr(x, 'real')", "globals()", "locals()", "vars()", "compile('1','','eval')",
         "breakpoint()", "input()", "print(x)", "exp(x)(y)", "(exp)(x)(y)", "sympify('x')",
         "Function('f')(x)", "Symbol('x')", "Integral(x, x)", "Sum(x, (x, 1, 3))",
         "Derivative(x, x)", "Piecewise((x, x > 0))", "f(x)", "lambdify(x, x)"]
SYNTAX = ["lambda: 1", "lambda x: x", "[i for i in range(3)]", "{i for i in x}",
          "{i: 1 for i in x}", "(i for i in x)", "f'{x}'", "f'{x!r}'", "(y := 2)",
          "exp(*x)", "max(*[x, y])", "exp(x=1)", "exp(**x)", "x[0]", "x[0:1]", "x[...]",
          "x; y", "import os", "from os import system", "x = 1", "x += 1", "del x",
          "x if y else 1", "x < y", "x == y", "x and y", "not x", "x @ y", "x // y",
          "x % y", "x << 2", "x >> 2", "x | y", "x & y", "x ^^ y", "~x", "x, y", "[x, y]",
          "{x}", "{x: y}", "await x", "yield x", "'abc'", '"abc"', "b'x'", "...", "None",
          "True + x", "False", "1j * x", "x # comment", "x  # rm -rf /", "x\\\ny",
          "x\x00", "x\x00y", "\x1b[2Jx", "x @y", "$x", "x!", "`x`", "x?", "@x"]
ARITY = ["exp(x, y)", "exp()", "sin(x, y, 1)", "atan2(x)", "atan2(x, y, 1)", "log()",
         "log(x, y, 2)", "max(x)", "min()", "abs(x, y)", "relu()", "sigmoid(x, y)"]
UNICODE = ["\uff58 + 1", "\u0455in(x)", "\u0435xp(x)", "x + \u03b1", "\u2139 + x",
           "x\u2212y", "x \u00d7 y", "\u212f**x", "x\u00b2", "\u00b5 * x", "x\u200b + 1",
           "\ufeffx"]
NAMES = ["exp + 1", "sin * x", "x + log", "I * x", "x + oo", "zoo + x", "nan * x",
         "inf + x", "lambda + x", "if * x", "_x + 1", "__x__ + 1", "x + None"]
SIZE = ["1" * 200, "x * 10**200", "x**100000", "x**-100000", "9**9**9**9", "2**1000**2 * x",
        "x * " + " * ".join(["2**1000"] * 20), "x + 1e309", "x * 1e308 * 10",
        "(" * 200 + "x" + ")" * 200, "-" * 5000 + "x", "+" * 5000 + "x",
        "x" + "+x" * 100_000, "x" + "*x" * 10_000, "exp(" * 150 + "x" + ")" * 150,
        "x**" * 150 + "x", "0**-1 * x", "x + 0.0/0.0", "x / 0", "x + log(0)",
        "x + tan(pi/2)", "log(x, 1)", "log(x, 0)", "x + atan2(0, 0)", "x" * 300_000]
NOT_REAL = ["x + sqrt(-1)", "(-1)**0.5 + x", "x + log(-E)", "(-2)**x", "x*log(-1)",
            "x + asin(2)", "x + acos(-3)", "(-8)**(1/3) + x", "x + exp(1000)",
            "x + sqrt(-2)*sqrt(-2)*0 + asin(5)", "x + log(-1)**3", "(-E)**y + x",
            "0**x + x", "x + cosh(1000)"]
EMPTY = ["", "   ", "\n\t", "()", "sin", "pi", "E + 2", "3.5"]

TEXTS = ATTRIBUTE + CALLS + SYNTAX + ARITY + UNICODE + NAMES + SIZE + NOT_REAL + EMPTY


#: Modules a payload would reach for; flowsim's own lazy imports never touch them.
REACHING_OUT = ("os", "posix", "subprocess", "shutil", "socket", "ctypes", "pty", "builtins")


@pytest.fixture
def spied(monkeypatch):
    """Record every call that could run text as code: eval, exec, compile to a code object
    (``ast.parse`` compiles to a tree only, flag PyCF_ONLY_AST), imports of modules that
    reach the system, and sympy's string parsers."""
    import ast
    called = []
    originals = {name: getattr(builtins, name) for name in ("eval", "exec", "compile",
                                                             "__import__")}

    # importlib execs code objects of modules loaded lazily; text is what must never run
    def spy_eval(source, *args, **kwargs):
        if isinstance(source, (str, bytes)):
            called.append("eval")
        return originals["eval"](source, *args, **kwargs)

    def spy_exec(source, *args, **kwargs):
        if isinstance(source, (str, bytes)):
            called.append("exec")
        return originals["exec"](source, *args, **kwargs)

    def spy_compile(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            called.append("compile")
        return originals["compile"](source, filename, mode, flags, *args, **kwargs)

    def spy_import(name, *args, **kwargs):
        if name.split(".")[0] in REACHING_OUT:
            called.append("__import__")
        return originals["__import__"](name, *args, **kwargs)

    for name, spy in (("eval", spy_eval), ("exec", spy_exec), ("compile", spy_compile),
                      ("__import__", spy_import)):
        monkeypatch.setattr(builtins, name, spy)
    for name in ("sympify", "parse_expr"):
        monkeypatch.setattr(sp, name, lambda *a, _n=name, **k: called.append(_n))
    return called


@pytest.mark.parametrize("text", TEXTS, ids=lambda t: ascii(t)[:40])
def test_hostile_text_is_refused_without_running_anything(text, spied):
    with pytest.raises((ValueError, TypeError)) as info:
        Loss(text)
    message = str(info.value)
    assert message.startswith(("loss", "the loss", "formula")) and message.endswith((".", ")"))
    assert "\n" not in message and len(message) < 600
    assert not {"eval", "exec", "compile", "__import__", "sympify", "parse_expr"} & set(spied)


def test_a_payload_never_fires_through_text_or_sympy(tmp_path):
    canary = tmp_path / "canary"
    payload = PAYLOAD.format(canary=canary)
    with pytest.raises(ValueError):
        Loss(payload)
    f = sp.Function(f"({payload} and 0 or (lambda *a: 0))")
    x = sp.Symbol("x")
    for expr in (x ** 2 + f(1), x ** 2 + f(x), sp.Symbol(payload) + x,
                 x + sp.Function(payload)(x, 1)):
        with pytest.raises(ValueError):
            Loss(expr).value([1.0])
    assert not canary.exists()


# -- sympy objects ---------------------------------------------------------------------------
x, y = sp.symbols("x y", real=True)
SYMPY = [
    ("undefined function of a constant", lambda: x ** 2 + sp.Function("f")(1)),
    ("undefined function", lambda: sp.Function("g")(x)),
    ("function named like code", lambda: sp.Function("os.system")(x)),
    ("symbol named like code", lambda: sp.Symbol("__import__('os')") + x),
    ("symbol with a space", lambda: sp.Symbol("a b") + x),
    ("symbol named exp", lambda: sp.Symbol("exp") * x),
    ("symbol named numpy-ish", lambda: sp.Symbol("lambda") + x),
    ("dummy", lambda: sp.Dummy("x") + 1),
    ("wild", lambda: sp.Wild("w") + x),
    ("imaginary unit", lambda: x + sp.I),
    ("infinity", lambda: sp.oo * x),
    ("minus infinity", lambda: x - sp.oo),
    ("complex infinity", lambda: x + sp.zoo),
    ("nan", lambda: x + sp.nan),
    ("integral", lambda: sp.Integral(x, x)),
    ("sum", lambda: sp.Sum(x, (x, 1, 3))),
    ("product", lambda: sp.Product(x, (x, 1, 3))),
    ("derivative", lambda: sp.Derivative(x ** 2, x)),
    ("piecewise", lambda: sp.Piecewise((x, x > 0), (0, True))),
    ("gamma function", lambda: sp.gamma(x)),
    ("floor", lambda: sp.floor(x)),
    ("zeta function", lambda: sp.zeta(x) + y),
    ("lambertw", lambda: sp.LambertW(x)),
    ("relation", lambda: sp.Eq(x, 1)),
    ("boolean", lambda: sp.And(x > 0, y > 0)),
    ("matrix", lambda: sp.Matrix([x, y])),
    ("tuple", lambda: sp.Tuple(x, y)),
    ("huge integer", lambda: x * sp.Integer(10) ** 500),
    ("huge rational", lambda: x * sp.Rational(1, 10 ** 300)),
    ("float overflow", lambda: x * sp.Float("1e400")),
    ("float inf", lambda: x + sp.Float("inf")),
    ("asin(2)", lambda: x + sp.asin(2, evaluate=False)),
    ("negative base, variable power", lambda: sp.Pow(-2, x)),
    ("golden ratio", lambda: x + sp.GoldenRatio),
    ("euler gamma", lambda: x * sp.EulerGamma),
    ("deep nesting", lambda: _nested(sp.exp, 300)),
    ("exponential tree", lambda: _doubling(80)),
    ("unevaluated division by zero", lambda: x + sp.Pow(0, -1, evaluate=False)),
    ("constant that overflows", lambda: x + sp.exp(sp.exp(sp.exp(100)), evaluate=False)),
]


def _nested(f, depth):
    e = x
    for _ in range(depth):
        e = f(e, evaluate=False)
    return e


def _doubling(k):
    e = x
    for _ in range(k):
        e = sp.Add(e, e * y, evaluate=False)
    return e


SYMPY_EXPRS = [(name, make()) for name, make in SYMPY]  # built before any spy is set


@pytest.mark.parametrize("expr", [e for _, e in SYMPY_EXPRS], ids=[n for n, _ in SYMPY])
def test_hostile_sympy_is_refused(expr, spied):
    with pytest.raises((ValueError, TypeError)) as info:
        Loss(expr)
    assert "\n" not in str(info.value)
    assert "exec" not in spied and "eval" not in spied


@pytest.mark.parametrize("value", [3.0, 1, None, b"x**2", ["x"], {"x": 1}, object(),
                                   np.float64(2.0), sp.Integer(3), True])
def test_non_formula_inputs_are_type_errors(value):
    with pytest.raises((TypeError, ValueError), match="formula|loss|variables"):
        Loss(value)


# -- names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["exp", "x y", "1x", "_x", "lambda", "pi", "I", "ｘ", ""])
def test_variable_param_and_data_names_are_checked(bad):
    with pytest.raises((ValueError, TypeError), match="name|variables|params|data"):
        Loss("a*x**2", variables=("x", bad) if bad else ("x", ""), params={"a": 1.0})
    with pytest.raises((ValueError, TypeError)):
        Loss("x**2", params={bad: 1.0})
    with pytest.raises((ValueError, TypeError)):
        Loss.from_samples("(w*t - u)**2", {"t": [1.0, 2.0], bad: [1.0, 2.0]}, ("w",))


def test_printer_helper_names_are_plain_variables():
    # numpy's printer writes bare maximum, select, less, ...: with dummified arguments a
    # variable may carry any of those names and still mean itself
    names = ["maximum", "select", "less", "reduce", "where", "arctan", "greater", "equal"]
    text = " + ".join(f"relu({n}) * {n}" for n in names) + " + abs(maximum - select)"
    loss = Loss(text)
    point = np.linspace(-1.0, 2.0, len(names))
    values = dict(zip([v.name for v in loss.variables], point))
    expected = sum(max(values[n], 0.0) * values[n] for n in names) + \
        abs(values["maximum"] - values["select"])
    assert loss.value(point) == pytest.approx(expected, rel=1e-14)
    assert loss.value(np.stack([point, point])).tolist() == pytest.approx([expected] * 2)


def test_generated_code_holds_only_whitelisted_names():
    from flowsim.loss._audit import PRINTER_NAMES, audit_source
    import ast
    import inspect
    exprs = ["exp(x)*log(y) + sqrt(x) + sin(x)*cos(y) + tan(x) + asin(x/9) + acos(y/9)",
             "atan(x) + atan2(x, y) + sinh(x) + cosh(y) + tanh(x) + erf(y)",
             "abs(x) + sign(y)*x + max(x, y, 1) + min(x, y) + relu(x - y)",
             "sigmoid(x) + softplus(y) + ln(x) + log(x, 2) + E**x + pi*y + x^2"]
    for text in exprs:
        loss = Loss(text, backend="sympy")
        k = loss._c.kernels
        funcs = [getattr(kn, "raw", None) or next(
            c.cell_contents for c in kn.__closure__ if hasattr(c.cell_contents, "__code__"))
            for kn in (k.value, k.grad, k.hess_values, k.point_value, k.point_grad)
            if kn is not None and (getattr(kn, "raw", None) or kn.__closure__)]
        assert len(funcs) >= 4
        for func in funcs:
            source = audit_source(func)
            tree = ast.parse(source)
            params = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
            assert all(p.startswith("_Dummy") for p in params)  # no user name in the code
            loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            stored = {n.id for n in ast.walk(tree)
                      if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            assert loads <= PRINTER_NAMES | params | stored, text
            assert "import" not in inspect.getsource(func)


def test_audit_refuses_code_outside_the_whitelist():
    from flowsim.loss._audit import audit_source
    namespace = {}
    exec("def sneaky(a):\n    return os.system(a)\n", namespace)  # noqa: S102 - test input
    import linecache
    linecache.cache["<sneaky>"] = (0, None, ["def sneaky(a):\n", "    return os.system(a)\n"],
                                   "<sneaky>")
    namespace["sneaky"].__code__ = namespace["sneaky"].__code__.replace(co_filename="<sneaky>")
    with pytest.raises(ValueError, match="generated code"):
        audit_source(namespace["sneaky"])


# -- numbers that used to slip through -------------------------------------------------------
def test_erf_on_the_sympy_backend_takes_batches():
    loss = Loss("erf(x) + abs(y)")
    assert loss.backend == "sympy"
    import math
    out = loss.value(np.ones((3, 2)))
    assert out == pytest.approx([math.erf(1.0) + 1.0] * 3, rel=1e-15)


def test_legitimate_large_formulas_are_accepted():
    text = " + ".join(f"x{i}**2" for i in range(2000))
    loss = Loss(text)
    assert loss.n == 2000 and loss.value(np.ones(2000)) == 2000.0
    chained = " + ".join(f"100*(x{i + 1} - x{i}**2)**2 + (1 - x{i})**2" for i in range(49))
    import scipy.optimize
    loss = Loss(chained)
    point = np.linspace(-1, 1, 50)
    np.testing.assert_allclose(loss.grad(point), scipy.optimize.rosen_der(point), rtol=1e-12)
    rng = np.random.default_rng(0)
    data = {f"a{i}": rng.random(20) for i in range(100)}
    data["t"] = rng.random(20)
    fit = Loss.from_samples("(" + " + ".join(f"w{i}*a{i}" for i in range(100)) + " - t)**2",
                            data, [f"w{i}" for i in range(100)])
    A = np.stack([data[f"a{i}"] for i in range(100)], axis=1)
    w = rng.random(100)
    np.testing.assert_allclose(fit.grad(w), 2 * A.T @ (A @ w - data["t"]) / 20, rtol=1e-10)


def test_budget_is_configurable_and_named_in_the_message():
    with pytest.raises(ValueError, match=r"budget's hessian_entries = 10.*budget=\{'hessian"):
        Loss("(x + y + z + w + v)**2", budget={"hessian_entries": 10})
    assert Loss("(x + y + z + w + v)**2", budget=fs.Budget(hessian_entries=15)).n == 5
    with pytest.raises(ValueError, match="unknown limit 'ops'"):
        Loss("x**2", budget={"ops": 1})
    with pytest.raises(ValueError, match="budget: nodes must be an integer >= 1"):
        Loss("x**2", budget={"nodes": 0})
    with pytest.raises(TypeError, match="budget must be"):
        Loss("x**2", budget=5)


BUDGET_CASES = {
    "product of 160 variables": "(" + "*".join(f"(x{i})" for i in range(160)) + ")",
    "product of 79 variables": "*".join(f"x{i}" for i in range(79)),
    "exp of a 1200-term sum": "exp(" + "+".join(f"x{i}" for i in range(1200)) + ")",
    "polynomial of 1000 factors": "*".join(f"(x+{i})" for i in range(1, 1000)),
    "square of a 300-term sum": "(" + "+".join(f"x{i}" for i in range(300)) + ")**2",
    "nested tan": "tan(" * 90 + "x" + ")" * 90,
    "power tower": "x**" * 60 + "x",
    "non-smooth product": "abs(x0) + " + "*".join(f"x{i}" for i in range(79)),
    "max of 300 products": "max(" + ",".join(f"x{i}*x{i + 1}" for i in range(300)) + ")",
}


def test_budget_cases_are_refused_quickly_in_a_subprocess():
    """Each input under 10,000 characters is refused naming a limit; the subprocess timeout
    (not a wall-time assertion) is what catches a hang."""
    assert all(len(t) < 10_000 for t in BUDGET_CASES.values())
    script = textwrap.dedent("""
        import json, sys
        from flowsim import Loss
        out = {}
        for name, text in json.load(sys.stdin).items():
            try:
                Loss(text)
                out[name] = "accepted"
            except ValueError as err:
                out[name] = str(err)
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(BUDGET_CASES),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = json.loads(proc.stdout)
    assert set(answers) == set(BUDGET_CASES)
    for name, message in answers.items():
        assert "too large to compile" in message and "budget=" in message, (name, message)


# -- bad arguments ---------------------------------------------------------------------------
HIM = losses.himmelblau()
GD = fs.gradient_descent(HIM, [0.0, 0.0], 1e-3, 20)
FLOW = fs.gradient_flow(HIM, [0.0, 0.0], 0.2)
MSE = Loss.from_samples("(a*t + b - u)**2", {"t": [1.0, 2.0, 3.0], "u": [1.0, 2.0, 2.0]},
                        ("a", "b"))
BAD_CALLS = [
    ("complex x0", lambda: fs.gradient_descent(HIM, [1 + 1j, 0], 0.1, 5), "complex"),
    ("text x0", lambda: fs.gradient_flow(HIM, "1,1", 1.0), "x0"),
    ("list of text x0", lambda: fs.gradient_flow(HIM, ["1", "a"], 1.0), "x0"),
    ("ragged x0", lambda: fs.gradient_descent(HIM, [[1, 2], [3]], 0.1, 5), "x0"),
    ("scalar x0", lambda: fs.gradient_descent(HIM, 5, 0.1, 5), "x0"),
    ("nan x0", lambda: fs.gradient_descent(HIM, [np.nan, 0], 0.1, 5), "x0"),
    ("wrong length x0", lambda: fs.gradient_descent(HIM, [0, 0, 0], 0.1, 5), "x0"),
    ("empty batch", lambda: fs.gradient_descent(HIM, np.empty((0, 2)), 0.1, 5), "x0"),
    ("nan t_eval", lambda: fs.gradient_flow(HIM, [0, 0], 1.0, t_eval=[np.nan]), "t_eval"),
    ("t_eval past t_end", lambda: fs.gradient_flow(HIM, [0, 0], 1.0, t_eval=[0, 2]),
     "t_eval"),
    ("text t_eval", lambda: fs.gradient_flow(HIM, [0, 0], 1.0, t_eval="a"), "t_eval"),
    ("negative t_end", lambda: fs.gradient_flow(HIM, [0, 0], -1.0), "t_end"),
    ("inf t_end", lambda: fs.gradient_flow(HIM, [0, 0], np.inf), "t_end"),
    ("unknown method", lambda: fs.gradient_flow(HIM, [0, 0], 1.0, method="Euler"), "method"),
    ("zero rtol", lambda: fs.gradient_flow(HIM, [0, 0], 1.0, rtol=0), "rtol"),
    ("float max_steps", lambda: fs.gradient_flow(HIM, [0, 0], 1.0, max_steps=2.5),
     "max_steps"),
    ("huge steps", lambda: fs.gradient_descent(HIM, [0, 0], 0.1, 10 ** 9), "steps"),
    ("float steps", lambda: fs.gradient_descent(HIM, [0, 0], 0.1, 10.0), "steps"),
    ("zero steps", lambda: fs.heun(HIM, [0, 0], 0.1, 0), "steps"),
    ("bool steps", lambda: fs.heun(HIM, [0, 0], 0.1, True), "steps"),
    ("negative eta", lambda: fs.gradient_descent(HIM, [0, 0], -0.1, 5), "eta"),
    ("text eta", lambda: fs.gradient_descent(HIM, [0, 0], "0.1", 5), "eta"),
    ("nan eta", lambda: fs.proximal_point(HIM, [0, 0], np.nan, 5), "eta"),
    ("schedule that fails", lambda: fs.gradient_descent(HIM, [0, 0], lambda k: 1 / (k - k), 5),
     "eta"),
    ("schedule that goes negative", lambda: fs.gradient_descent(HIM, [0, 0],
                                                                lambda k: 0.1 - k, 5), "eta"),
    ("momentum 1", lambda: fs.heavy_ball(HIM, [0, 0], 0.1, 5, momentum=1.0), "momentum"),
    ("damping 2", lambda: fs.newton(HIM, [0, 0], 2.0, 5), "damping"),
    ("text seed", lambda: fs.sgd(MSE, [0, 0], 0.1, 5, seed="a"), "seed"),
    ("negative seed", lambda: fs.sgd(MSE, [0, 0], 0.1, 5, seed=-1), "seed"),
    ("batch too big", lambda: fs.sgd(MSE, [0, 0], 0.1, 5, batch_size=10), "batch_size"),
    ("sgd without samples", lambda: fs.sgd(HIM, [0, 0], 0.1, 5), "from_samples"),
    ("compare options int", lambda: fs.compare(HIM, [0, 0], 0.1, 5, options=5), "options"),
    ("compare options for absent scheme",
     lambda: fs.compare(HIM, [0, 0], 0.1, 5, options={"heun": {}}), "options"),
    ("compare options not dict", lambda: fs.compare(HIM, [0, 0], 0.1, 5,
                                                    options={"gd": 3}), "options"),
    ("compare twice", lambda: fs.compare(HIM, [0, 0], 0.1, 5, schemes=("gd", "gd")),
     "twice"),
    ("compare empty", lambda: fs.compare(HIM, [0, 0], 0.1, 5, schemes=()), "schemes"),
    ("compare non-str scheme", lambda: fs.compare(HIM, [0, 0], 0.1, 5, schemes=(3,)),
     "scheme"),
    ("compare flow_method", lambda: fs.compare(HIM, [0, 0], 0.1, 5, flow_method="X"),
     "flow_method"),
    ("compare progress", lambda: fs.compare(HIM, [0, 0], 0.1, 5, progress=3), "progress"),
    ("order levels 1", lambda: fs.convergence_order(HIM, [0, 0], levels=1), "levels"),
    ("order levels 40", lambda: fs.convergence_order(HIM, [0, 0], levels=40), "levels"),
    ("order etas nan", lambda: fs.convergence_order(HIM, [0, 0], etas=[np.nan, 1, 2]),
     "etas"),
    ("order long ladder", lambda: fs.convergence_order(HIM, [0, 0], t_end=1e6, levels=16),
     "steps"),
    ("lyapunov nan min_value", lambda: fs.lyapunov(HIM, GD, np.nan), "min_value"),
    ("lyapunov text min_value", lambda: fs.lyapunov(HIM, GD, "0"), "min_value"),
    ("lyapunov negative lipschitz", lambda: fs.lyapunov(HIM, GD, lipschitz=-1),
     "lipschitz"),
    ("lyapunov negative friction", lambda: fs.lyapunov(HIM, FLOW, friction=-1), "friction"),
    ("lyapunov distance not callable", lambda: fs.lyapunov(HIM, GD, distance=3), "distance"),
    ("lyapunov wrong loss", lambda: fs.lyapunov("x**2", GD), "variables"),
    ("lyapunov not a trajectory", lambda: fs.lyapunov(HIM, [1, 2]), "Trajectory"),
    ("sharpness wrong loss", lambda: fs.sharpness("x**2 + y**2 + z**2", GD), "variables"),
    ("subset empty", lambda: MSE.subset([]), "indices"),
    ("subset out of range", lambda: MSE.subset([5]), "indices"),
    ("subset floats", lambda: MSE.subset([0.5]), "indices"),
    ("subset short mask", lambda: MSE.subset([True, False]), "mask"),
    ("subset empty mask", lambda: MSE.subset([False] * 3), "mask"),
    ("subset of a plain loss", lambda: HIM.subset([0]), "from_samples"),
    ("data text", lambda: Loss.from_samples("(w*t)**2", {"t": ["a", "b"]}, ("w",)), "data"),
    ("data complex", lambda: Loss.from_samples("(w*t)**2", {"t": [1j]}, ("w",)), "data"),
    ("data nan", lambda: Loss.from_samples("(w*t)**2", {"t": [np.nan]}, ("w",)), "data"),
    ("data not dict", lambda: Loss.from_samples("(w*t)**2", [1, 2], ("w",)), "data"),
    ("params complex", lambda: Loss("a*x", params={"a": 1j}), "params"),
    ("params text", lambda: Loss("a*x", params={"a": "1"}), "params"),
    ("params not dict", lambda: Loss("a*x", params=[("a", 1)]), "params"),
    ("params unknown", lambda: Loss("a*x", params={"b": 1.0}), "params"),
    ("with_params nan", lambda: Loss("a*x", params={"a": 1.0}).with_params(a=np.nan), "a"),
    ("variables int", lambda: Loss("x", variables=5), "variables"),
    ("variables missing", lambda: Loss("x + y", variables=("x",)), "variables"),
    ("variables as a set", lambda: Loss("x + y", variables={"x", "y"}), "ordered"),
    ("params too large", lambda: Loss("a*x", params={"a": 10 ** 400}), "too large"),
    ("empty batch of points", lambda: HIM.hess(np.empty((0, 2))), "no points"),
    ("backend unknown", lambda: Loss("x", backend="numba"), "backend"),
    ("facts wrong type", lambda: Loss("x", facts=3), "facts"),
    ("Box wrong length", lambda: fs.proximal_gradient("x**2 + y**2", [1, 1], 0.1, 5,
                                                      prox=fs.prox.Box([0, 0, 0], 1)), "Box"),
    ("Box 2-D bounds", lambda: fs.prox.Box(np.zeros((2, 2)), 1), "Box"),
    ("GroupL1 float index", lambda: fs.prox.GroupL1([[0.5, 1]], 0.1), "groups"),
    ("GroupL1 overlap", lambda: fs.prox.GroupL1([[0, 1], [1]], 0.1), "groups"),
    ("GroupL1 beyond n", lambda: fs.proximal_gradient("x**2 + y**2", [1, 1], 0.1, 5,
                                                      prox=fs.prox.GroupL1([[0, 4]], 0.1)),
     "index"),
    ("L1 text weight", lambda: fs.prox.L1("a"), "lam"),
    ("prox missing", lambda: fs.proximal_gradient("x**2", [1], 0.1, 5), "prox"),
    ("milestones float", lambda: fs.schedules.step_decay(1.0, (10.5, 20)), "milestones"),
    ("milestones decreasing", lambda: fs.schedules.step_decay(1.0, (20, 10)), "milestones"),
    ("rosenbrock nan b", lambda: losses.rosenbrock(2, b=np.nan), "b"),
    ("rosenbrock float n", lambda: losses.rosenbrock(2.5), "n"),
    ("quadratic huge n", lambda: losses.ill_conditioned_quadratic(10.0, 10 ** 7), "n"),
    ("quadratic complex", lambda: losses.quadratic([[1, 0], [0, 1j]]), "A"),
    ("least squares text", lambda: losses.least_squares([[1, "a"]], [1]), "X"),
    ("logistic negative lam", lambda: losses.logistic_regression([[1.0]], [1], lam=-1), "lam"),
    ("critical text seed", lambda: fs.critical_points(HIM, (-5, 5), seed="a"), "seed"),
    ("critical zero starts", lambda: fs.critical_points(HIM, (-5, 5), n_starts=0),
     "n_starts"),
    ("critical complex bounds", lambda: fs.critical_points(HIM, (-5j, 5)), "bounds"),
    ("critical empty box", lambda: fs.critical_points(HIM, (5, -5)), "bounds"),
    ("classify nan", lambda: fs.classify(HIM, [np.nan, 0]), "x"),
    ("stability negative eta", lambda: fs.stability(HIM, [3, 2], eta=-1), "eta"),
    ("lipschitz text seed", lambda: fs.lipschitz_estimate(HIM, (-1, 1), seed="x"), "seed"),
    ("saddle delta > radius", lambda: fs.saddle_escape(HIM, [0, 0], delta=1, radius=0.1),
     "delta"),
    ("heavy ball flow mass", lambda: fs.heavy_ball_flow(HIM, [0, 0], 1.0, mass=0), "mass"),
    ("trajectory at outside", lambda: FLOW.at(5.0), "t must lie"),
    ("trajectory at nan", lambda: FLOW.at(np.nan), "t must be finite"),
    ("trajectory at text", lambda: FLOW.at("a"), "t must be"),
    ("hess sparse text", lambda: HIM.hess([0.0, 0.0], sparse="yes"), "sparse"),
    ("saddle max_steps 0", lambda: fs.saddle_escape(HIM, [0, 0], max_steps=0), "max_steps"),
    ("armijo c text", lambda: fs.gradient_descent(HIM, [0, 0], 0.1, 5, line_search="armijo",
                                                  c="a"), "c must"),
    ("point as text", lambda: HIM.value("1,1"), "x must"),
    ("point complex", lambda: HIM.grad([1j, 0]), "real"),
]


@pytest.mark.parametrize("call,match", [(c, m) for _, c, m in BAD_CALLS],
                         ids=[n for n, _, _ in BAD_CALLS])
def test_bad_arguments_raise_one_sentence_naming_the_argument(call, match):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    assert match.lower() in message.lower(), message
    assert "\n" not in message and message[-1] in ".)'", message


PLOT_CALLS = [
    ("stability x nan", lambda p: p.stability_picture(HIM, [np.nan, 0]), "x"),
    ("stability n=0", lambda p: p.stability_picture(HIM, [3, 2], n=0), "n"),
    ("stability eta_max<0", lambda p: p.stability_picture(HIM, [3, 2], eta_max=-1),
     "eta_max"),
    ("contour levels", lambda p: p.contour(HIM, levels=-5), "levels"),
    ("contour 3-D path", lambda p: p.contour(HIM, fs.gradient_descent(
        "x**2 + y**2 + z**2", [1, 1, 1], 0.1, 3)), "variables"),
    ("contour not a path", lambda p: p.contour(HIM, [1, 2]), "Trajectory"),
    ("contour bad ax", lambda p: p.contour(HIM, ax=3), "ax"),
    ("basins resolution", lambda p: p.basins(HIM, resolution=0), "resolution"),
    ("basins 3-D loss", lambda p: p.basins("x**2 + y**2 + z**2"), "two variables"),
    ("surface resolution", lambda p: p.surface(HIM, resolution=1), "resolution"),
    ("values nan min_value", lambda p: p.values(GD, min_value=np.nan), "min_value"),
    ("animate frames", lambda p: p.animate(HIM, GD, "/tmp/x.gif", frames=0), "frames"),
    ("animate fps", lambda p: p.animate(HIM, GD, "/tmp/x.gif", fps=0), "fps"),
    ("animate folder", lambda p: p.animate(HIM, GD, "/nonexistent/x.gif"), "folder"),
    ("table rows", lambda p: fs.compare(HIM, [0, 0], 0.01, 5).summary(rows=-1), "rows"),
    ("deviation of a number", lambda p: p.deviation(3), "Comparison"),
    ("spectrum nan", lambda p: p.spectrum(HIM, [np.nan, 1.0]), "x"),
]


def test_batch_start_index_is_checked():
    batch = fs.gradient_flow(HIM, [[0.0, 0.0], [1.0, 1.0]], 0.1)
    for bad in (5, -9, 0.5, True):
        with pytest.raises(IndexError, match=r"start index in \[-2, 2\)"):
            batch.trajectory(bad)


@pytest.mark.parametrize("call,match", [(c, m) for _, c, m in PLOT_CALLS],
                         ids=[n for n, _, _ in PLOT_CALLS])
def test_bad_plot_arguments(call, match):
    from flowsim import plot
    import matplotlib.pyplot as plt
    with pytest.raises((ValueError, TypeError), match=match):
        call(plot)
    plt.close("all")


def test_there_are_at_least_150_hostile_inputs():
    assert len(TEXTS) + len(SYMPY) + len(BAD_CALLS) + len(PLOT_CALLS) >= 150


# -- the property: well-formed formulas compile and agree with sympy -------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

_LEAVES = st.sampled_from(["x", "y", "z", "2", "0.5", "3", "pi", "E", "1.25"])
_UNARY = ["exp", "sin", "cos", "atan", "tanh", "sigmoid", "softplus", "erf", "abs", "sinh"]
_POSITIVE = ["log", "sqrt"]  # applied to 1 + u**2 so they stay real


def _extend(inner):
    return st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) / (2 + ({t[1]})**2)"),
        st.tuples(st.sampled_from(_UNARY), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(_POSITIVE), inner).map(lambda t: f"{t[0]}(1 + ({t[1]})**2)"),
        st.tuples(inner, st.sampled_from(["2", "3"])).map(lambda t: f"({t[0]})^{t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"max({t[0]}, {t[1]})"),
    )


FORMULAS = st.recursive(_LEAVES, _extend, max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(FORMULAS, st.lists(st.floats(-2, 2), min_size=3, max_size=3))
def test_random_formulas_round_trip_and_agree_with_sympy(text, point):
    from flowsim.loss._parse import parse_formula
    expr, _ = parse_formula(text)
    if not expr.free_symbols:
        with pytest.raises(ValueError):
            Loss(text)
        return
    loss = Loss(text)
    values = dict(zip(loss.variables, point))
    exact = complex(expr.evalf(30, subs=values))
    got = loss.value(np.array(point[:loss.n]))
    assert abs(exact.imag) < 1e-12
    assert got == pytest.approx(exact.real, rel=1e-9, abs=1e-12)
    assert loss.value(np.array([point[:loss.n]] * 2)) == pytest.approx([got, got], rel=1e-12)
