"""Every example script runs (small sizes, Agg backend), exits 0 and writes its figure."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("0*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(script), str(tmp_path), "--quick"],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=script.parent)
    assert done.returncode == 0, done.stderr
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.stat().st_size > 5_000 for p in pngs)
    assert "wrote" in done.stdout


def test_every_example_is_listed_in_the_readme_with_a_picture_that_exists():
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text()
    for script in EXAMPLES:
        assert f"examples/{script.name}" in readme, f"{script.name} is not in the README"
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    images += re.findall(r"<img[^>]*src=\"([^\"]+)\"", readme)
    assert images, "the README shows no picture"
    missing = [path for path in images if not path.startswith("http")
               and not (root / path).is_file()]
    assert not missing, f"README pictures missing from the repository: {missing}"
