"""Code outside the package that registers passes, runtimes or evaluators, loaded in every process that reads the
registries (the driver, Ray workers, the memory probe's subprocess): the modules named in AUTOCOMPRESS_PLUGINS
(comma-separated, importable from the Python path) and the entry points of group `autocompress.plugins` that
installed packages declare. Each registry calls `load()` once it is filled with the built-in entries."""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from autocompress.errors import UserInputError

ENV = "AUTOCOMPRESS_PLUGINS"
GROUP = "autocompress.plugins"
_loaded: set[str] = set()


def load() -> None:
    names = [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]
    for name in names:
        if name in _loaded:
            continue
        _loaded.add(name)  # first: a plugin importing a registry calls load() again while it is imported
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise UserInputError(
                f"{ENV} names {name!r}, which cannot be imported ({err}): fix the name or the path"
            ) from None
    for point in entry_points(group=GROUP):
        if point.value not in _loaded:
            _loaded.add(point.value)
            point.load()
