"""The public surface of companion: one place to import from, documented, tested, acyclic.

Each rule is checked statically or by import, and each test says what it would catch.
"""

import ast
import inspect
import pathlib
import re

import pytest

import companion

ROOT = pathlib.Path(companion.__file__).parent
MODULE_FILES = sorted(p for p in ROOT.glob("*.py") if p.name != "__init__.py")
TEST_TEXT = "\n".join(p.read_text() for p in (ROOT.parent / "tests").glob("test_*.py"))


def _imports(path: pathlib.Path):
    """(module, name) for every ``from .module import name`` / ``from companion.module ...``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 or module.startswith("companion"):
                yield module.removeprefix("companion.").removeprefix("companion"), node


def test_star_import_gives_exactly_the_public_api():
    namespace = {}
    exec("from companion import *", namespace)
    exported = {name for name in namespace if not name.startswith("__")}
    assert exported == set(companion.__all__)
    assert companion.__all__ == sorted(set(companion.__all__))


def test_no_name_is_exported_by_two_modules():
    """A name in two modules' __all__ would make ``companion.name`` depend on import order."""
    owners = {}
    for module in companion.MODULES:
        for name in module.__all__:
            assert name not in owners, f"{name} in {owners.get(name)} and {module.__name__}"
            owners[name] = module.__name__


def test_every_module_declares_all_and_every_public_definition_is_in_it():
    for module in companion.MODULES:
        defined = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", None) == module.__name__
            and (inspect.isfunction(value) or inspect.isclass(value))
        }
        missing = defined - set(module.__all__)
        assert not missing, f"{module.__name__} defines public {sorted(missing)} outside __all__"


@pytest.mark.parametrize("name", [n for n in companion.__all__ if callable(getattr(companion, n))])
def test_every_public_callable_has_a_docstring_and_a_test(name):
    obj = getattr(companion, name)
    doc = inspect.getdoc(obj) or ""
    assert len(doc) > 40, f"{name} needs a docstring (summary, shapes, equation)"
    # Called, or checked with isinstance: a mention in a comment or a string is not a test.
    used = re.search(rf"\b{name}\(|isinstance\([^)]*\b{name}\b", TEST_TEXT)
    assert used, f"{name} is neither called nor checked with isinstance in any test"


# Private modules: internals of the package whose names are public to it (the shared input
# checks; the closed-form per-sample gradients of the Gaussian families, used by estimators).
PACKAGE_INTERNAL = {"_validation", "_gaussian_rows"}


def private_imports(path: pathlib.Path) -> list[str]:
    """The rule: every ``from .module import _name``, except from or of a package-internal
    module."""
    return [
        f"{path.name}: from {module} import {alias.name}"
        for module, node in _imports(path)
        for alias in node.names
        if alias.name.startswith("_")
        and module not in PACKAGE_INTERNAL
        and not (module == "" and alias.name in PACKAGE_INTERNAL)
    ]


def test_no_module_imports_another_modules_private_names():
    """``from .estimators import _evaluate`` couples modules through internals; what modules
    share lives in the package-internal modules, whose names are public to the package."""
    bad = [line for path in MODULE_FILES for line in private_imports(path)]
    assert not bad, bad


def test_module_dependencies_have_no_cycle():
    """vae must not import training (training depends on the model, never the reverse)."""
    graph = {p.stem: {m.split(".")[0] for m, _ in _imports(p) if m} for p in MODULE_FILES}
    assert "training" not in graph["vae"]
    state = {}

    def visit(node, path):
        if state.get(node) == "open":
            raise AssertionError(f"import cycle: {' -> '.join(path + [node])}")
        if state.get(node) == "done":
            return
        state[node] = "open"
        for child in graph.get(node, ()):
            visit(child, path + [node])
        state[node] = "done"

    for node in graph:
        visit(node, [])


def test_the_private_import_rule_catches_a_violation(tmp_path):
    """Test the test: the rule itself reports a private import, and only that one."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from .estimators import _rows\n"
        "from companion.baselines import centre\n"
        "from ._validation import check_bool\n"
        "from . import _gaussian_rows as gaussian_rows\n"
        "from . import _estimators_internals\n"
    )
    assert private_imports(bad) == [
        "bad.py: from estimators import _rows",
        "bad.py: from  import _estimators_internals",
    ]
