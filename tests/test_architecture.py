"""The architecture as documented: docs/architecture.md's table of rooms against the imports
the code makes (module level), and its "Adding a method" recipe run as a doctest."""
import ast
import doctest
import pathlib
import re

import flowsim

ROOT = pathlib.Path(flowsim.__file__).parent
DOC = ROOT.parent / "docs" / "architecture.md"


def _modules():
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ["flowsim"] + list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(modules):
    """Module -> the flowsim modules it imports at module level (not inside functions)."""
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(path.read_text()).body:
            for n in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
                if isinstance(n, ast.ImportFrom):
                    base = package.split(".")
                    if n.level:
                        base = base[:len(base) - n.level + 1]
                    target = ".".join(base + ([n.module] if n.module else [])) \
                        if n.level else n.module
                    for alias in n.names:
                        sub = f"{target}.{alias.name}"
                        deps.add(sub if sub in modules else target)
                elif isinstance(n, ast.Import):
                    deps.update(alias.name for alias in n.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _rooms():
    """The rooms in the table's order: each row's first cell, backticked names."""
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `")]
    return [re.findall(r"`([^`]+)`", row.split("|")[1]) for row in rows]


def _room_of(module, rooms):
    rel = module[len("flowsim."):] if module != "flowsim" else ""
    for rank, names in enumerate(rooms):
        for room in names:
            stem = room.rstrip("/").removesuffix(".py")
            if rel == stem or rel.startswith(stem + "."):
                return rank
    return None


def test_every_module_belongs_to_a_room_of_the_table():
    rooms = _rooms()
    homeless = [m for m in _modules() if m != "flowsim" and _room_of(m, rooms) is None]
    assert not homeless, f"modules in no room of docs/architecture.md: {homeless}"


def test_no_module_imports_a_room_below_it_in_the_table():
    rooms = _rooms()
    graph = _imports(_modules())
    upward = [(m, d) for m, deps in graph.items() if m != "flowsim" for d in deps
              if d != "flowsim" and _room_of(d, rooms) > _room_of(m, rooms)]
    assert not upward, f"imports that point down the table (to a later room): {upward}"


def test_module_level_imports_have_no_circles():
    graph = _imports(_modules())
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in graph[m]:
            if state.get(d) == "open":
                raise AssertionError(f"import circle: {' -> '.join(path + [m, d])}")
            if d not in state:
                visit(d, path + [m])
        state[m] = "done"
    for m in graph:
        if m not in state:
            visit(m, [])


def test_adding_a_method_recipe_runs_as_written():
    result = doctest.testfile(str(DOC), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_no_room_reaches_into_the_loss_private_attributes():
    # the loss's evaluation protocol is public (evaluator, observe, watched, memo, charge,
    # uncounted, float_grad, minibatch_grad); other rooms do not touch its private parts
    import re
    reach = re.compile(r"\b(?:loss|f|task\.loss)\._[a-z]\w*")
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if "loss" in path.relative_to(ROOT).parts[:1]:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if reach.search(code) and "import" not in code and "_audit" not in code:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
