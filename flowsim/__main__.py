"""``python -m flowsim``: the same as the ``flowsim`` command."""
import sys

from .cli import main

sys.exit(main())
