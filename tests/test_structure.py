"""The package's shape: no import cycles inside hindi_ocr/, and no module much longer than a few screens.

Both are read from the source with ``ast`` (nothing is imported), so a cycle hidden in a function-level import, which
only fails when that function first runs in a fresh process, is caught too.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hindi_ocr"
MAX_LINES = 350
LONGER_MARKER = "longer than"  # a module over MAX_LINES says why in its docstring, with these words


def modules() -> dict[str, Path]:
    return {path.stem: path for path in sorted(PACKAGE.glob("*.py")) if path.stem != "__init__"}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Sibling modules ``path`` imports anywhere in the file: ``from .x import``, ``from . import x``,
    ``from hindi_ocr.x import``, ``from hindi_ocr import x``, ``import hindi_ocr.x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level > 1:
                continue  # above the package
            base = node.module or ""
            if node.level == 0:
                if base != "hindi_ocr" and not base.startswith("hindi_ocr."):
                    continue
                base = base.removeprefix("hindi_ocr").removeprefix(".")
            if base:
                found.add(base.split(".")[0])
            else:  # from . import x / from hindi_ocr import x
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hindi_ocr."):
                    found.add(alias.name.split(".")[1])
    return found & known


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported_modules(path, set(found)) - {name} for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None; depth-first, in sorted order so the answer is stable."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_graph_reader_sees_every_import_form(tmp_path):
    source = tmp_path / "a.py"
    source.write_text("from .b import x\nimport hindi_ocr.c\ndef f():\n    from hindi_ocr import d, os\n"
                      "    from hindi_ocr.e.f import g\n    from . import h\n    from .. import i\nimport json\n")
    assert imported_modules(source, set("abcdefghi")) == {"b", "c", "d", "e", "h"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles_in_the_package():
    graph = import_graph()
    assert {"checks", "modeling", "rows", "training"} <= set(graph)  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in hindi_ocr/: {' -> '.join(cycle)}; move what both need into a module " \
                          "that imports neither"


def test_modules_are_a_few_screens_long():
    too_long = []
    for name, path in modules().items():
        source = path.read_text(encoding="utf-8")
        lines = len(source.splitlines())
        docstring = ast.get_docstring(ast.parse(source)) or ""
        if lines > MAX_LINES and LONGER_MARKER not in docstring:
            too_long.append(f"{name}.py ({lines} lines)")
    assert not too_long, f"over {MAX_LINES} lines: {', '.join(too_long)}; split by concern, or say in the module " \
                         f"docstring why it is {LONGER_MARKER} {MAX_LINES} lines"
