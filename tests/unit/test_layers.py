"""The import graph follows the layers: every arrow between packages points down."""

from __future__ import annotations

import ast
from pathlib import Path

import dikkat

PACKAGE = Path(dikkat.__file__).parent

# What each part may import (besides itself). Bottom: hashing, config, logs, i18n, aio, stopping.
ALLOWED: dict[str, set[str]] = {
    "hashing": set(),
    "aio": set(),
    "stopping": set(),
    "config": set(),
    "logs": set(),
    "i18n": set(),
    "assets": set(),
    "models": {"hashing"},
    "storage": {"hashing"},
    "viz": {"models", "i18n"},
    "inference": {"models", "hashing", "config"},
    "training": {"models", "storage", "viz", "hashing", "config"},
    "bot": {"inference", "storage", "viz", "hashing", "config", "i18n", "aio"},
    "http": {"config", "aio"},
    "scale": {"aio", "config", "inference", "logs", "models", "storage", "training"},
    "app": {
        *("aio", "bot", "config", "http", "inference", "models", "scale", "stopping", "storage"),
        "training",
    },
    "ray_replicas": {"app", "config", "inference", "logs", "scale", "stopping"},
    "serve": {"aio", "app", "bot", "config", "http", "scale", "stopping", "storage"},
    "bench": {
        *("app", "bot", "config", "hashing", "inference", "models", "ray_replicas", "scale"),
        *("storage", "training"),
    },
}
ENTRY = {"cli", "__main__", "__init__"}  # the command line: may import anything
ADAPTERS = {"dikkat.bot.telegram", "dikkat.bot.discord"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "dikkat" or name.startswith("dikkat.")}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        found[".".join(relative.parts)] = _imports(path)
    return found


def test_every_part_is_placed_in_a_layer() -> None:
    parts = {_part(module) for module in _modules()}
    assert parts <= set(ALLOWED) | ENTRY, parts - set(ALLOWED) - ENTRY


def test_imports_point_down_only() -> None:
    wrong = []
    for module, imported in _modules().items():
        source = _part(module)
        if source in ENTRY:
            continue
        for target in imported:
            part = _part(target)
            if part != source and part not in ALLOWED[source]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def _adapter(module: str) -> str | None:
    return next((a for a in ADAPTERS if module == a or module.startswith(f"{a}.")), None)


def test_only_the_composition_root_imports_an_adapter() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, imported in _modules().items()
        for target in imported
        if _adapter(target) not in (None, _adapter(module)) and _part(module) != "serve"
    ]
    assert not wrong, wrong


def test_the_layers_have_no_cycle() -> None:
    placed: list[str] = []
    remaining = {part: set(allowed) for part, allowed in ALLOWED.items()}
    while remaining:
        ready = sorted(part for part, needs in remaining.items() if needs <= set(placed))
        assert ready, f"a cycle among {sorted(remaining)}"
        placed += ready
        for part in ready:
            del remaining[part]
