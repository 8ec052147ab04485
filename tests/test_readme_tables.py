"""The README's methods table against the registry: every row names a registered scheme with
its short name, its order and the flow it discretizes."""
import pathlib
import re

from flowsim import methods

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _rows():
    text = README.read_text()
    start = text.index("| name | short | order | discretizes | iterate k at |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_every_row_is_a_registered_scheme_with_its_short_name_and_order():
    rows = _rows()
    assert len(rows) >= 8
    for name, short, order, discretizes, time in rows:
        record = methods.get(name.strip("`"), kind="scheme")
        assert (record.short or "") == short.strip("`") or record.short == record.name
        expected = "(noise)" if record.order is None else f"{record.order:g}"
        assert order == expected, (name, order, expected)
        if record.flow == "gradient_flow":
            assert "gradient flow" in discretizes, name
        assert ("sqrt(eta)" in time) == (record.step_time == "sqrt(eta)"), name


def test_the_readme_names_every_registered_scheme():
    text = README.read_text()
    for record in methods.schemes():
        assert re.search(rf"\b{record.name}\b|\b{record.label}\b", text, re.IGNORECASE), \
            f"{record.name} is registered but the README never names it"
