"""Names that the command line needs before any numerics are imported.

``NAMED_LOSSES`` lists :data:`flowsim.losses.NAMED` in its order (``flowsim --help`` shows
them without importing sympy); :mod:`flowsim.losses` checks that the two agree.
"""

NAMED_LOSSES = ("rosenbrock", "himmelblau", "six_hump_camel", "beale", "monkey_saddle",
                "saddle", "double_well", "ill_conditioned_quadratic", "scalar_factorization",
                "tanh_network")
