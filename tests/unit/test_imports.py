"""The toolkit's modules import each other without a cycle (imports inside functions and
under TYPE_CHECKING count too), and the layers import downwards only: ``dcia/`` (the
contract) imports no other part of the toolkit, and nothing the hosts run imports the
controller."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("dcia", "controller", "embedded_switch", "hosts", "mininet_topos", "tools", "bench",
            "evaluation", "demos")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """The dotted names one file imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    return {name: _imports(path) & set(files) - {name} for name, path in files.items()}


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
    assert "controller.deployment" in graph["controller.session"]
    assert "dcia.wire" in graph["hosts.messages"]


def test_no_import_cycle_anywhere():
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("package, forbidden", [
    ("dcia", ("controller", "embedded_switch", "hosts", "mininet_topos", "tools", "bench")),
    ("hosts", ("controller", "mininet_topos", "embedded_switch")),
    ("tools", ("controller", "mininet_topos", "embedded_switch")),
    ("embedded_switch", ("controller", "hosts", "mininet_topos", "tools")),
    ("mininet_topos", ("evaluation", "demos")),
    ("evaluation", ("demos",)),
])
def test_layers_import_downwards_only(package, forbidden):
    wrong = {f"{module} imports {target}"
             for module, targets in _graph().items() if module.split(".")[0] == package
             for target in targets if target.split(".")[0] in forbidden}
    assert not wrong, sorted(wrong)
