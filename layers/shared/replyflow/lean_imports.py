"""Umbrella packages without their ``__init__``: installed first by a Lambda handler (``api.lean_imports``,
``webhook.lean_imports``).

``aws_lambda_powertools.event_handler/__init__.py`` imports every resolver (AppSync, Bedrock, VPC
Lattice, ...) and ``utilities/data_classes/__init__.py`` every event class (S3, Kinesis, Cognito,
...) whatever the caller uses: a tenth of ``import boto3`` for an API instance, which needs one
resolver and a handful of event classes. ``redis/__init__.py`` imports its asyncio client, its
cluster, sentinel and keyspace-notification clients, and ``redis/asyncio/__init__.py`` its own: a
fifth of ``import boto3`` for an API or webhook instance, which talk to Redis through the synchronous
client alone (docs/architecture.md#cold-starts).

:func:`defer_init` registers such a package as an empty module with the package's own spec, so its
submodules import as usual; a name its ``__init__`` imports from a submodule (read from the
``__init__``'s text: ``from .x import A, B`` or ``from <package>.x.y import (A, B)``) is read from that
module at its first use, a string constant it assigns (``__version__ = "8.1.0"``) is set at once,
a submodule read as an attribute (``redis.exceptions``, ``from redis import _himport_exec``) is
imported, and any other attribute runs the real ``__init__`` at once (the package is then exactly
what a plain import gives). Nothing changes for a process that imported the package
before (the local stack, the tests): it is left as it is.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import sys
import threading

POWERTOOLS = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")
REDIS = ("redis", "redis.asyncio")  # in this order: the second is found through the first
PACKAGES = POWERTOOLS + REDIS
# ``from .x import (A, B)`` / ``from pkg.x import A`` at the start of a line of an ``__init__``.
_FROM_IMPORT = re.compile(r"^from (\.?[\w.]+) import (?:\(([^()]*)\)|([^()\n]+)$)", re.MULTILINE)
# ``NAME = "text"`` (or single quotes) alone on a line of an ``__init__``.
_CONSTANT = re.compile(r"""^(\w+) = ("[^"\\\n]*"|'[^'\\\n]*')$""", re.MULTILINE)
_lock = threading.RLock()


def exports(package: str, source: str) -> dict[str, str]:
    """The names ``source`` (a package's ``__init__``) imports from modules of its distribution (its
    own submodules, or its top-level package's: ``redis.asyncio`` reads ``redis.exceptions``), each
    with that module's full dotted name."""
    top = package.split(".", 1)[0]
    found: dict[str, str] = {}
    for origin, grouped, single in _FROM_IMPORT.findall(source):
        if origin.startswith(f"{top}."):
            module = origin
        elif origin.startswith(".") and not origin.startswith(".."):
            module = f"{package}{origin}"
        else:
            continue
        for name in re.split(r"[\s,]+", grouped or single):
            if name.isidentifier():
                found[name] = module
    return found


def constants(source: str) -> dict[str, str]:
    """The string constants ``source`` (a package's ``__init__``) assigns at the start of a line."""
    return {name: ast.literal_eval(text) for name, text in _CONSTANT.findall(source)}


def defer_init(package: str) -> None:
    """``package`` without running its ``__init__`` until a name it does not map is read."""
    with _lock:
        if package in sys.modules:
            return
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None or spec.loader is None or not spec.submodule_search_locations:
            return
        with open(spec.origin, encoding="utf-8") as init:
            source = init.read()
        mapped = exports(package, source)
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(constants(source))
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
                    value = getattr(importlib.import_module(mapped[name]), name)
                    setattr(module, name, value)
                    return value
                if loading:  # the real ``__init__`` running: its ``from package import submodule``
                    raise AttributeError(name)
                if is_submodule(name):
                    return importlib.import_module(f"{package}.{name}")
                loading = True
                del module.__dict__["__getattr__"]
                loader.exec_module(module)  # the real ``__init__``: every name it defines
            return getattr(module, name)

        module.__dict__["__getattr__"] = __getattr__
        sys.modules[package] = module
        parent, _, child = package.rpartition(".")
        if parent:
            setattr(importlib.import_module(parent), child, module)


def install(packages: tuple[str, ...]) -> None:
    for package in packages:
        defer_init(package)
