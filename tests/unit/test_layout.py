"""The package's layout holds: dependencies point one way, and functions stay short."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gemini_tasks"
BOTTOM = {
    "settings", "errors", "keyspace", "records", "result", "limits", "keys", "jsonvalue",
    "connections", "broker", "app", "runtime", "logs", "celery", "media", "messages",
    "scripts", "prices", "tokens",
}  # fmt: skip
# What each part may import, besides itself and the bottom layer.
ALLOWED = {
    "bottom": set(),
    "pool": set(),
    "scheduler": set(),
    "producer": {"scheduler"},
    "worker": {"pool", "scheduler"},
    "emulator": set(),
    "ops": {"pool", "scheduler", "producer", "worker", "seed", "emulator"},
    "seed": {"pool", "scheduler", "producer", "ops"},
    "__main__": {"ops"},
}
LONGEST_FUNCTION = 60


def part(module: str) -> str:
    top = module.split(".")[1] if module.count(".") else ""
    return "bottom" if top in BOTTOM else top


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("gemini_tasks", *path.relative_to(PACKAGE).with_suffix("").parts))
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text())
    return found


def imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("gemini_tasks.")}


def test_dependencies_point_one_way():
    wrong = []
    for name, tree in modules().items():
        if name == "gemini_tasks":
            continue  # the package's front door re-exports lazily
        mine = part(name)
        for target in imports(tree):
            theirs = part(target)
            if theirs not in {"bottom", mine} | ALLOWED[mine]:
                wrong.append(f"{name} imports {target}")
    assert not wrong


def test_only_the_cli_imports_the_emulator():
    users = {
        name
        for name, tree in modules().items()
        if part(name) != "emulator" and any(part(t) == "emulator" for t in imports(tree))
    }
    assert users <= {"gemini_tasks.ops.cli_fleet"}


def test_the_producer_never_loads_the_worker():
    for name, tree in modules().items():
        if part(name) == "producer":
            assert not any(part(t) in ("worker", "pool") for t in imports(tree)), name


def test_no_function_is_long():
    long = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > LONGEST_FUNCTION:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long
