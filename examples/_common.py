"""What every example shares: the output folder argument, the Agg backend, saving."""
import argparse
import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")


def setup(doc, name):
    """Parse ``[OUT] [--quick]``; return (args, output folder)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(Path("flowsim-output") / name),
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
    plt.close(fig)
    print(f"wrote {path}")
    return path
