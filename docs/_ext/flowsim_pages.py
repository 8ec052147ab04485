"""The documentation's generated pages: the methods table, written from the registry, and
the API reference, written from the public modules' ``__all__`` (so neither can drift from
the code; ``tests/test_docs_site.py`` checks what they cover)."""
import importlib
from pathlib import Path

#: The public modules, in the order the reference lists them.
API_MODULES = ["flowsim", "flowsim.diagnostics", "flowsim.study", "flowsim.study.recipes",
               "flowsim.plot", "flowsim.losses", "flowsim.prox", "flowsim.schedules",
               "flowsim.methods", "flowsim.rules", "flowsim.backends"]


def api_entries():
    """``{module: [name, ...]}``: every public callable, each object under the first module
    that exports it."""
    seen, out = set(), {}
    for name in API_MODULES:
        module = importlib.import_module(name)
        names = []
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if not callable(obj) or isinstance(obj, type) and issubclass(obj, BaseException):
                continue
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            names.append(attr)
        out[name] = names
    return out


def api_page():
    """The API reference (reStructuredText, autosummary tables per module)."""
    lines = ["API reference", "=============", "",
             "Every public function and class, generated from the docstrings (shapes, the "
             "update rule in math, examples).", ""]
    for module, names in api_entries().items():
        if not names:
            continue
        lines += [f"``{module}``", "-" * (len(module) + 4), "",
                  f".. currentmodule:: {module}", "", ".. autosummary::",
                  "   :toctree: generated", "   :nosignatures:", ""]
        lines += [f"   {n}" for n in names] + [""]
    return "\n".join(lines)


def methods_table():
    """The registry as a Markdown table."""
    from flowsim import methods
    rows = ["| name | short | kind | order | discretizes | time per step | runs on |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in methods.REGISTRY.values():
        order = "" if m.order is None else f"{m.order:g}"
        where = ", ".join(sorted({"batch", "jax"} & m.accepts)) or "one start"
        rows.append(f"| `{m.name}` | {'`' + m.short + '`' if m.short else ''} | {m.kind} | "
                    f"{order} | {m.flow or ''} | "
                    f"{m.step_time if m.kind == 'scheme' else ''} | {where} |")
    return "\n".join(rows) + "\n"


def write_pages(folder):
    """Write ``methods_table.md`` and ``api.rst`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    (folder / "methods_table.md").write_text(methods_table())
    (folder / "api.rst").write_text(api_page())
