"""Modified equations (backward error analysis): ``series`` holds the truncated power series a
one-step map is evaluated on, ``equation`` the derivation and :class:`ModifiedEquation`."""
from .equation import FIELDS, MAX_TERMS, TIME_LIMIT, ModifiedEquation, modified_equation
from .equation import _terms  # noqa: F401 - for the tests of the derivation

__all__ = ["ModifiedEquation", "modified_equation", "FIELDS", "MAX_TERMS", "TIME_LIMIT"]
