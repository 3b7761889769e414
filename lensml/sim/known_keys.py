"""Unknown keys in the physics groups: a typo'd key must stop the run, not be silently ignored.

The keys a physics group (``source``, ``lens``, ``subhalo``, ``noise``, ``instrument``, ``sim``) may hold are
those of its shipped presets, ``conf/<group>/*.yaml`` (union over the presets, so a preset that adds a key
registers it): adding a key to a group means adding it to a preset, as the house style asks anyway. Nested
blocks (e.g. ``subhalo.placement``, ``subhalo.depth``, ``lens.multipoles``) are checked one level down; priors
(``{dist: ...}``) and per-split blocks (``source.split_overrides``) are values, not blocks.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import cache
from typing import Any

import yaml

from lensml.errors import ConfigError
from lensml.paths import CONF_DIR

#: keys Hydra itself puts into a group file
_HYDRA_KEYS = frozenset({"defaults"})
#: removed keys that the group's own checks refuse with a message naming their replacement
RETIRED_KEYS: dict[str, frozenset[str]] = {"noise": frozenset({"sigma_v_kms"})}


def _is_block(value: Any) -> bool:
    """A nested config block: a mapping that is neither a prior nor a mapping of mappings."""
    return (
        isinstance(value, Mapping)
        and "dist" not in value
        and not (value and all(isinstance(v, Mapping) for v in value.values()))
    )


@cache
def known_keys(group: str) -> dict[str, frozenset[str]]:
    """``{"": top-level keys, "<block>": keys of that nested block}`` of ``conf/<group>/*.yaml``."""
    out: dict[str, set[str]] = {"": set()}
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        node = yaml.safe_load(path.read_text()) or {}
        for key, value in node.items():
            out[""].add(key)
            if _is_block(value):
                out.setdefault(key, set()).update(value)
    return {k: frozenset(v) for k, v in out.items()}


def _unknown(keys: Any, allowed: frozenset[str]) -> list[str]:
    return [k for k in keys if k not in allowed and k not in _HYDRA_KEYS and not str(k).startswith("_")]


def _fail(name: str, allowed: frozenset[str], group: str) -> None:
    close = difflib.get_close_matches(name.rsplit(".", 1)[-1], sorted(allowed), n=1)
    hint = f"did you mean {name.rsplit('.', 1)[0]}.{close[0]}? " if close and "." in name else ""
    if close and "." not in name:
        hint = f"did you mean {close[0]}? "
    raise ConfigError(
        f"{name} is not a key of the {group} group; {hint}the keys are those of conf/{group}/*.yaml "
        "(add a new key to a preset there first)."
    )


def check_known_keys(group: str, config: Mapping[str, Any]) -> None:
    """``ConfigError`` naming the first unknown key of ``config`` (the ``group`` node) and the closest valid
    one; does nothing for a group without presets."""
    table = known_keys(group)
    if not table[""]:
        return
    for key in _unknown(config, table[""] | RETIRED_KEYS.get(group, frozenset())):
        _fail(f"{group}.{key}", table[""], group)
    for block, allowed in table.items():
        value = config.get(block) if block else None
        if block and isinstance(value, Mapping):
            for key in _unknown(value, allowed):
                _fail(f"{group}.{block}.{key}", allowed, group)
