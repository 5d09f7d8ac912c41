"""The settings a YAML config makes itself (not through its ``_BASE_``), as a merge list.

A benchmark that measures a config's recipe on another footing (another base config, another
image size) reads the recipe from the config instead of repeating its keys, so the two cannot
drift apart.
"""

import yaml

__all__ = ["own_keys"]


def own_keys(path, node):
    """``path``'s own settings under ``node`` (a dotted key such as ``"MODEL.MASKX"``) as a
    detectron2 merge list ``[key, value, ...]``, nested nodes flattened to dotted keys in file
    order. Raises ``KeyError`` naming the file when it sets nothing under ``node``."""
    with open(path) as f:
        settings = yaml.safe_load(f) or {}
    for name in node.split("."):
        if not isinstance(settings, dict) or name not in settings:
            raise KeyError(f"{path} sets nothing under {node}")
        settings = settings[name]
    return _flatten(node, settings)


def _flatten(prefix, settings):
    if not isinstance(settings, dict):
        return [prefix, settings]
    return [item for key, value in settings.items() for item in _flatten(f"{prefix}.{key}", value)]
