"""Powertools' umbrella packages without their ``__init__``: imported first by the Lambda handler.

``aws_lambda_powertools.event_handler/__init__.py`` imports every resolver (AppSync, Bedrock, VPC
Lattice, ...) and ``utilities/data_classes/__init__.py`` every event class (S3, Kinesis, Cognito,
...) whatever the caller uses: a tenth of ``import boto3`` for an API instance, which needs one
resolver and a handful of event classes (docs/architecture.md#cold-starts).

:func:`defer_init` registers such a package as an empty module with the package's own spec, so its
submodules import as usual; a name its ``__init__`` imports from a submodule (read from the
``__init__``'s text: ``from .x import A, B`` or ``from <package>.x.y import (A, B)``) is read from that
submodule at its first use, ``from <package> import <submodule>`` imports the submodule, and any
other attribute runs the real ``__init__`` at once (the package is then exactly what a plain import
gives). Nothing changes for a process that imported the package
before (the local stack, the tests): it is left as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import threading

PACKAGES = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")
# ``from .x import (A, B)`` / ``from pkg.x import A`` at the start of a line of an ``__init__``.
_FROM_IMPORT = re.compile(r"^from (\.?[\w.]+) import (?:\(([^()]*)\)|([^()\n]+)$)", re.MULTILINE)
_lock = threading.RLock()


def exports(package: str, source: str) -> dict[str, str]:
    """The names ``source`` (a package's ``__init__``) imports from its own submodules, each with the
    submodule's dotted name under the package."""
    found: dict[str, str] = {}
    for origin, grouped, single in _FROM_IMPORT.findall(source):
        if origin.startswith(f"{package}."):
            submodule = origin[len(package) + 1 :]
        elif origin.startswith(".") and not origin.startswith(".."):
            submodule = origin[1:]
        else:
            continue
        for name in re.split(r"[\s,]+", grouped or single):
            if name.isidentifier():
                found[name] = submodule
    return found


def defer_init(package: str) -> None:
    """``package`` without running its ``__init__`` until a name it does not map is read."""
    with _lock:
        if package in sys.modules:
            return
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None or spec.loader is None or not spec.submodule_search_locations:
            return
        with open(spec.origin, encoding="utf-8") as init:
            mapped = exports(package, init.read())
        module = importlib.util.module_from_spec(spec)
        loader = spec.loader
        locations = list(spec.submodule_search_locations)
        loading = False

        def is_submodule(name: str) -> bool:
            return any(
                os.path.isfile(os.path.join(where, f"{name}.py")) or os.path.isdir(os.path.join(where, name))
                for where in locations
            )

        def __getattr__(name: str) -> object:  # noqa: N807 - a module's attribute hook (PEP 562)
            nonlocal loading
            with _lock:
                if name in mapped:
                    value = getattr(importlib.import_module(f"{package}.{mapped[name]}"), name)
                    setattr(module, name, value)
                    return value
                if loading or is_submodule(name):  # ``from package import submodule`` imports it
                    raise AttributeError(name)
                loading = True
                del module.__dict__["__getattr__"]
                loader.exec_module(module)  # the real ``__init__``: every name it defines
            return getattr(module, name)

        module.__dict__["__getattr__"] = __getattr__
        sys.modules[package] = module
        parent, _, child = package.rpartition(".")
        setattr(importlib.import_module(parent), child, module)


def install() -> None:
    for package in PACKAGES:
        defer_init(package)


install()
