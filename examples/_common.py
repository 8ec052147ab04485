"""What every example shares: the output folder argument, the Agg backend, saving."""
import argparse
import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")


def setup(doc, name):
    """Parse ``[OUT] [--quick]``; return (args, output folder)."""
    # (the gallery runs the code without its docstring: the name stands in for it there)
    parser = argparse.ArgumentParser(description=(doc or name).strip().splitlines()[0])
    # the documentation's gallery runs each example with FLOWSIM_GALLERY set to a scratch
    # folder: the figures go there and stay open for the gallery to show them
    root = os.environ.get("FLOWSIM_GALLERY") or "flowsim-output"
    parser.add_argument("out", nargs="?", default=str(Path(root) / name),
                        help="folder for the figures (default: flowsim-output/%s)" % name)
    parser.add_argument("--quick", action="store_true", help="small sizes, for the tests")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return args, out


def save(fig, out, filename):
    """Write ``fig`` to ``out/filename`` and say so."""
    import matplotlib.pyplot as plt
    path = out / filename
    fig.savefig(path, dpi=90, bbox_inches="tight")
    if not os.environ.get("FLOWSIM_GALLERY"):
        plt.close(fig)
    print(f"wrote {path}")
    return path
