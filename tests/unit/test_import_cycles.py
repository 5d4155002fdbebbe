"""No import cycle anywhere in `lib`, counting every import of a `lib` module: at module level and inside
functions (a lazy import hides a cycle, it does not remove it)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def import_graph(package_dir):
    """{module: {modules of the package it imports}} of every .py file under ``package_dir``."""
    base = package_dir.parent
    files = {".".join(p.relative_to(base).with_suffix("").parts).removesuffix(".__init__"): p
             for p in package_dir.rglob("*.py")}  # fmt: skip

    def owner(name):  # lib.a.b.func -> lib.a.b, the nearest module that exists
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for mod, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {owner(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets |= {owner(f"{node.module}.{a.name}") for a in node.names}
        graph[mod] = targets - {"", mod}
    return graph


def a_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state, path = {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                return path[path.index(t) :] + [t]
            if t not in state and (found := visit(t)):
                return found
        state[m] = "done"
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_lib_has_no_import_cycle():
    graph = import_graph(ROOT / "lib")
    assert len(graph) > 40 and graph["lib.pipeline"] >= {"lib.objects.learned", "lib.segmentation.label"}
    cycle = a_cycle(graph)
    assert cycle is None, "import cycle in lib: " + " -> ".join(cycle)


def test_a_lazy_import_cycle_is_found(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from pkg.a import g\n")
    assert a_cycle(import_graph(pkg)) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text("import pkg.sub\n")
    assert a_cycle(import_graph(pkg)) is None
