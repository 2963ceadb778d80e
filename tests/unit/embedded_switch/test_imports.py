"""The embedded switch's modules import each other without a cycle (imports inside functions
and under TYPE_CHECKING count too), so each can be read, and loaded, on its own."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "embedded_switch"


def _imports(path: Path) -> set[str]:
    """The embedded_switch modules one file imports, by dotted name."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("embedded_switch"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("embedded_switch"))
    return out


def _graph() -> dict[str, set[str]]:
    modules = {".".join(("embedded_switch", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_is_found():
    graph = _graph()
    assert "embedded_switch.compiler" in graph["embedded_switch.switch"]


def test_no_import_cycle_among_embedded_switch_modules():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))
