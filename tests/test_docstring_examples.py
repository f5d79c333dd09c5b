"""Every public function, class, method and property has a runnable ``>>>`` example.

``--doctest-modules`` runs the examples, and this test makes sure they exist.
It discovers the public API at run time, so modules added later are checked
too. The API is every module under ``boltzkit`` whose dotted name has no
component starting with ``_``, with the names each exports (its ``__all__``,
or else the public names it defines). Modules exported by name, such as
``boltzkit.targets.gaussian_mixture.functional``, are walked the same way,
and so are the public members defined on each exported class.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import boltzkit

# Public names allowed to lack an example, as "module.name" or
# "module.Class.member". An entry is temporary: the test below fails once the
# name gains an example, so the entry must then be removed.
ALLOWLIST: set[str] = set()


def public_modules() -> list[types.ModuleType]:
    modules = [boltzkit]
    for info in pkgutil.walk_packages(boltzkit.__path__, prefix="boltzkit."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def exported_names(module: types.ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    ]


def class_members(cls: type) -> dict[str, object]:
    """Return the public functions, class methods, static methods and properties defined on ``cls``."""
    members = {}
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, classmethod | staticmethod):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fget
        if inspect.isfunction(value):
            members[name] = value
    return members


def has_example(obj: object) -> bool:
    return ">>>" in (inspect.getdoc(obj) or "")


def public_api() -> dict[str, object]:
    """Return every public callable of boltzkit by its qualified name."""
    api: dict[str, object] = {}
    pending = public_modules()
    seen_modules: set[str] = set()
    while pending:
        module = pending.pop()
        if module.__name__ in seen_modules:
            continue
        seen_modules.add(module.__name__)
        for name in exported_names(module):
            value = getattr(module, name)
            if isinstance(value, types.ModuleType):
                if value.__name__.startswith("boltzkit"):
                    pending.append(value)
                continue
            if not callable(value) or not getattr(value, "__module__", "").startswith("boltzkit"):
                continue  # constants such as BUILTIN_TARGETS, and re-exported third-party names
            api[f"{module.__name__}.{name}"] = value
            if inspect.isclass(value):
                for member, function in class_members(value).items():
                    api[f"{module.__name__}.{name}.{member}"] = function
    return api


def test_public_api_is_discovered():
    api = public_api()
    # The core of the API must be found, or the walk itself is broken.
    for name in (
        "boltzkit.Dataset.save",
        "boltzkit.datasets.split_key",
        "boltzkit.targets.load_target",
        "boltzkit.targets.DiagonalGaussianMixture.log_prob",
        "boltzkit.targets.DiagonalGaussianMixture.create_gmm40",
        "boltzkit.targets.DiagonalGaussianMixture.dim",
        "boltzkit.targets.gaussian_mixture._functional.score",
    ):
        assert name in api, name


def test_public_callables_have_examples():
    missing = sorted(
        name for name, value in public_api().items() if not has_example(value) and name not in ALLOWLIST
    )
    assert not missing, "public callables without a >>> example in their docstring:\n" + "\n".join(missing)


def test_allowlist_entries_exist_and_lack_examples():
    api = public_api()
    for name in ALLOWLIST:
        assert name in api, f"{name} is not a public name; remove it from ALLOWLIST"
        assert not has_example(api[name]), f"{name} has an example now; remove it from ALLOWLIST"
