"""Safe parsing of loss formulas: Python's ``ast`` with a whitelist, then sympy.

Loss strings are untrusted text. They are parsed by :func:`ast.parse` in ``eval`` mode and
every node is checked against a short whitelist before any sympy object is built; raw text
never reaches ``eval``, ``exec``, ``sympify`` or ``parse_expr``.
"""
from __future__ import annotations

import ast
import difflib
import keyword
import math
import re

import sympy as sp

from ._budget import as_budget, digits_of
from ._gate import RESERVED_NAMES

__all__ = ["parse_formula", "FUNCTIONS", "CONSTANTS", "natural_key", "real_symbol"]

MAX_LENGTH = 200_000


# exp(-z) unevaluated: sympy's automatic simplification of exp of a long sum costs 17 ms
# per call and changes nothing a compiler needs
def _sigmoid(z):
    return 1 / (1 + sp.exp(-z, evaluate=False))


def _softplus(z):
    return sp.log(1 + sp.exp(z, evaluate=False))


def _relu(z):
    return sp.Max(z, 0)


def _extremum(kind):
    # sympy simplifies Min/Max by comparing every pair of arguments under assumptions, which
    # takes seconds from a few dozen arguments on; past two, keep the arguments as written
    def build(*args):
        return kind(*args) if len(args) <= 2 else kind(*args, evaluate=False)
    build.__name__ = kind.__name__
    return build


#: name -> (sympy constructor, allowed argument counts); ``None`` means two or more.
FUNCTIONS = {
    "exp": (sp.exp, (1,)),
    "log": (sp.log, (1, 2)),
    "ln": (sp.log, (1,)),
    "sqrt": (sp.sqrt, (1,)),
    "sin": (sp.sin, (1,)),
    "cos": (sp.cos, (1,)),
    "tan": (sp.tan, (1,)),
    "asin": (sp.asin, (1,)),
    "acos": (sp.acos, (1,)),
    "atan": (sp.atan, (1,)),
    "atan2": (sp.atan2, (2,)),
    "sinh": (sp.sinh, (1,)),
    "cosh": (sp.cosh, (1,)),
    "tanh": (sp.tanh, (1,)),
    "erf": (sp.erf, (1,)),
    "abs": (sp.Abs, (1,)),
    "Abs": (sp.Abs, (1,)),
    "sign": (sp.sign, (1,)),
    "min": (_extremum(sp.Min), None),
    "Min": (_extremum(sp.Min), None),
    "max": (_extremum(sp.Max), None),
    "Max": (_extremum(sp.Max), None),
    "relu": (_relu, (1,)),
    "sigmoid": (_sigmoid, (1,)),
    "softplus": (_softplus, (1,)),
}

CONSTANTS = {"pi": sp.pi, "E": sp.E}


_SUMS = (ast.Add, ast.Sub)
_PRODUCTS = (ast.Mult, ast.Div)
_UNARY = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a}

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def natural_key(name):
    """Sort key that orders ``x2`` before ``x10`` (digit runs compare as numbers)."""
    return [(0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", str(name)) if part]


def real_symbol(name):
    """The real-valued sympy symbol flowsim uses for a variable or parameter ``name``."""
    return sp.Symbol(str(name), real=True)


def _describe(node):
    kinds = {
        ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
        ast.ListComp: "comprehension", ast.SetComp: "comprehension",
        ast.DictComp: "comprehension", ast.GeneratorExp: "comprehension",
        ast.NamedExpr: "assignment expression (walrus)", ast.Starred: "starred argument",
        ast.Compare: "comparison", ast.BoolOp: "boolean operator", ast.IfExp: "conditional",
        ast.JoinedStr: "f-string", ast.Tuple: "tuple", ast.List: "list", ast.Dict: "dict",
        ast.Set: "set", ast.Await: "await", ast.Yield: "yield", ast.Slice: "slice",
    }
    for cls, text in kinds.items():
        if isinstance(node, cls):
            return text
    return type(node).__name__


class _Builder:
    """Walks a checked AST and builds the sympy expression.

    Associative chains (``a + b - c + ...``, ``a * b / c * ...``), which Python's parser
    nests one level per operator, are flattened into one ``Add``/``Mul`` each, so depth counts
    real nesting (brackets, calls, powers) and a 2000-term sum is as shallow as ``a + b``.
    """

    def __init__(self, carets, lead, budget):
        self.carets = carets
        self.lead = lead
        self.budget = budget
        self.names = set()

    def column(self, node):
        # map a column in the '^'->'**' rewritten text back to the user's text (1-based)
        col = getattr(node, "col_offset", 0)
        shift = 0
        for pos in self.carets:
            if pos + shift < col:
                shift += 1
        return col - shift + self.lead + 1

    def fail(self, node, what, fix=None):
        if fix is None:
            fix = ("use numbers, variable names, + - * / ** and the math functions "
                   f"{', '.join(sorted(set(FUNCTIONS) - {'Abs', 'Min', 'Max'}))}.")
        raise ValueError(f"loss formula: {what} at column {self.column(node)} is not allowed; "
                         f"{fix}")

    def bad_number(self, node, what):
        self.fail(node, what, "write finite real numbers of moderate size.")

    def build(self, node, depth=0):
        if depth > self.budget.depth:
            raise ValueError(f"loss formula: nesting deeper than {self.budget.depth} levels at "
                             f"column {self.column(node)}; simplify the formula or raise the "
                             "limit with budget={'depth': ...}.")
        if isinstance(node, ast.Expression):
            return self.build(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, _SUMS):
                return self.chain(node, _SUMS, depth)
            if isinstance(node.op, _PRODUCTS):
                return self.chain(node, _PRODUCTS, depth)
            if isinstance(node.op, ast.Pow):
                return self.power(node, self.build(node.left, depth + 1),
                                  self.build(node.right, depth + 1))
            self.fail(node, f"operator {type(node.op).__name__}")
        if isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                self.fail(node, f"unary operator {type(node.op).__name__}")
            return self.number_check(node, _UNARY[type(node.op)](
                self.build(node.operand, depth + 1)))
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        self.fail(node, _describe(node))

    def chain(self, node, ops, depth):
        """One Add (or Mul) for a whole left-nested chain of + - (or * /)."""
        operands = []
        while isinstance(node, ast.BinOp) and isinstance(node.op, ops):
            operands.append((node.op, node.right))
            node = node.left
        operands.append((None, node))
        built = []
        for op, operand in reversed(operands):
            term = self.build(operand, depth + 1)
            if isinstance(op, ast.Sub):
                term = -term
            elif isinstance(op, ast.Div):
                if term == 0:
                    self.bad_number(operand, "division by zero")
                term = sp.Pow(term, -1)
            built.append(term)
        result = sp.Add(*built) if ops is _SUMS else sp.Mul(*built)
        return self.number_check(node, result)

    def number_check(self, node, value):
        """Bound the size of numbers that folding produced (2**1000 * 2**1000 * ...)."""
        if value.is_Rational:
            digits = max(digits_of(value.p), digits_of(value.q))
            if digits > self.budget.digits:
                self.fail(node, f"a number with {digits} digits",
                          f"the budget allows {self.budget.digits} (budget={{'digits': ...}}).")
        elif value.is_Float and not math.isfinite(float(value)):
            self.bad_number(node, "a number outside the float64 range")
        elif value.is_Number and not value.is_finite:
            self.bad_number(node, f"the non-finite value {value}")
        return value

    def constant(self, node):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(node, f"constant {value!r} (only real numbers are allowed)")
        if isinstance(value, int):
            if digits_of(value) > self.budget.digits:
                self.fail(node, f"an integer with more than {self.budget.digits} digits",
                          "raise the limit with budget={'digits': ...} if it is meant.")
            return sp.Integer(value)
        if not math.isfinite(value):
            self.bad_number(node, "a non-finite number")
        return sp.Float(value)

    def name(self, node):
        ident = node.id
        if ident.startswith("_") or not _NAME_RE.match(ident):
            self.fail(node, f"the name {ident!r} (names must start with a letter)")
        if ident in CONSTANTS:
            return CONSTANTS[ident]
        if ident in FUNCTIONS:
            raise ValueError(f"loss formula: {ident!r} at column {self.column(node)} is a "
                             f"function; call it as {ident}(...).")
        if ident in RESERVED_NAMES:
            raise ValueError(f"loss formula: the name {ident!r} at column {self.column(node)} "
                             "is reserved (a sympy constant or keyword); use another name.")
        self.names.add(ident)
        return real_symbol(ident)

    def power(self, node, base, exponent):
        limit = self.budget.exponent
        if exponent.is_Number:
            if abs(exponent) > limit:
                self.fail(node, f"an exponent of magnitude above {limit}",
                          "raise the limit with budget={'exponent': ...} if it is meant.")
            if base.is_Number and base != 0 and \
                    abs(float(sp.log(abs(base), 10))) * abs(float(exponent)) > self.budget.digits:
                self.bad_number(node, f"a power whose value has more than "
                                      f"{self.budget.digits} digits")
        if base == 0 and exponent.is_Number and exponent.is_negative:
            self.bad_number(node, "division by zero (a negative power of 0)")
        return self.number_check(node, sp.Pow(base, exponent))

    def call(self, node, depth):
        func = node.func
        if not isinstance(func, ast.Name):
            self.fail(node, f"calling {_describe(func)}")
        fname = func.id
        if fname not in FUNCTIONS:
            near = difflib.get_close_matches(fname, FUNCTIONS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else \
                f"; known functions are {', '.join(sorted(FUNCTIONS))}."
            raise ValueError(f"loss formula: unknown function {fname!r} at column "
                             f"{self.column(node)}{hint}")
        if node.keywords:
            self.fail(node, f"a keyword argument in {fname}(...)")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.fail(arg, "starred argument")
        constructor, counts = FUNCTIONS[fname]
        nargs = len(node.args)
        if (counts is None and nargs < 2) or (counts is not None and nargs not in counts):
            want = "two or more" if counts is None else " or ".join(map(str, counts))
            raise ValueError(f"loss formula: {fname}(...) at column {self.column(node)} takes "
                             f"{want} argument(s), got {nargs}.")
        args = [self.build(arg, depth + 1) for arg in node.args]
        if fname == "log" and nargs == 2 and args[1].is_Number and args[1] in (0, 1):
            self.bad_number(node, "a logarithm to base 0 or 1")
        return self.number_check(node, constructor(*args))


def _syntax_hint(text, err):
    """``(column, hint)`` for a formula Python cannot parse: the 1-based column of the
    trouble (Python reports 0 for some errors) and what to write instead."""
    column = err.offset or 0
    for match in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", text):
        if keyword.iskeyword(match.group()) and match.group() not in ("and", "or", "not"):
            return match.start() + 1, (f": {match.group()!r} is a Python keyword and cannot "
                                       f"name a variable; rename it (e.g. {match.group()}_)")
    implicit = re.search(r"(?<![A-Za-z_0-9.])(\d+\.?\d*(?:[eE][-+]?\d+)?)\s*([A-Za-z_(])", text) \
        or re.search(r"(\))\s*([A-Za-z_0-9(])", text) \
        or re.search(r"([A-Za-z_][A-Za-z0-9_]*|\d)\s+([A-Za-z_(0-9])", text)
    if implicit:
        a, b = implicit.group(1), implicit.group(2)
        if not (b in "eE" and a[-1:].isdigit() and implicit.group(0).count(" ") == 0):
            return implicit.start(2) + 1, (f": write the multiplication explicitly, "
                                           f"{a}*{b}... (no implicit products)")
    stripped = text.rstrip()
    if stripped.endswith(("*", "+", "-", "/", "^", "(", ",")):
        return len(stripped), ": the formula ends with an operator; complete it"
    return max(column, 1), ""


def parse_formula(text, budget=None):
    """Parse an untrusted loss formula into a sympy expression.

    Parameters
    ----------
    text : str
        A formula such as ``"(1-x)**2 + 100*(y-x**2)**2"``. Allowed: numbers, names
        (starting with a letter), ``+ - * / **`` (``^`` is read as ``**``), unary minus,
        parentheses, calls of the functions in :data:`FUNCTIONS`, and the constants ``pi``
        and ``E``.

    budget : Budget, optional
        Limits on nesting depth, digits and exponents (see :class:`flowsim.Budget`).

    Returns
    -------
    expr : sympy.Expr
        The expression, with every name a real :class:`sympy.Symbol`. It has not yet passed
        :func:`flowsim.loss._gate.check_expression` (the Loss constructor runs that on every
        input, text or sympy).
    names : set of str
        The names of the symbols that occur (constants excluded).

    Raises
    ------
    ValueError
        For anything outside the whitelist, naming the construct and its (1-based) column;
        for non-ASCII text (look-alike letters such as a fullwidth 'x' would otherwise be
        folded silently into other names by Python's NFKC normalisation).

    Examples
    --------
    >>> expr, names = parse_formula("x^2 + exp(-y)")
    >>> sorted(names)
    ['x', 'y']
    """
    if not isinstance(text, str):
        raise TypeError(f"loss formula must be a str, got {type(text).__name__}.")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"loss formula is {len(text)} characters long; the limit is "
                         f"{MAX_LENGTH}: build large losses as sympy expressions instead.")
    if not text.strip():
        raise ValueError("loss formula is empty; give an expression such as 'x**2 + y**2'.")
    budget = as_budget(budget)
    for col, c in enumerate(text, start=1):
        if ord(c) > 126:
            raise ValueError(f"loss formula: character {c!r} (U+{ord(c):04X}) at column {col} "
                             "is not ASCII; write names in ASCII letters (alpha, not the "
                             "Greek letter).")
        if (ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 or c in "'\"\\;`#@$!?":
            raise ValueError(f"loss formula: character {c!r} at column {col} is not allowed; "
                             "formulas hold no strings, comments, statements or escapes.")
    depth = max_depth = 0
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        max_depth = max(max_depth, depth)
    if max_depth > budget.depth:
        raise ValueError(f"loss formula nests brackets {max_depth} deep; the limit is "
                         f"{budget.depth} (raise it with budget={{'depth': ...}}).")
    lead = len(text) - len(text.lstrip())
    text = text.strip()
    carets = [i for i, ch in enumerate(text) if ch == "^"]
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError as err:
        column, hint = _syntax_hint(text, err)
        raise ValueError(f"loss formula is not a valid expression ({err.msg}) near column "
                         f"{column + lead}{hint}.") from None
    except (RecursionError, MemoryError, ValueError) as err:
        raise ValueError(f"loss formula is too long or too deeply nested for Python's "
                         f"parser ({type(err).__name__}); build a loss this large as a sympy "
                         "expression, e.g. Loss(sympy.Add(*terms)).") from None
    builder = _Builder(carets, lead, budget)
    try:
        expr = builder.build(tree)
    except RecursionError:
        raise ValueError("loss formula is nested too deeply; simplify it.") from None
    if not isinstance(expr, sp.Expr) or expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ValueError(f"loss formula evaluates to {expr}, which is not a finite expression.")
    return expr, builder.names
