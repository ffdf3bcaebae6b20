"""Every feature name is written out in full in its family's module, so a search finds where it is defined.

A name assembled from pieces (``f"reply_latency_{stat}_hours_{window}d"``) is found by no
search for ``reply_latency_p90_hours_90d``: only the README and the tests would turn up.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import features
from features.build import all_specs

FEATURES_DIR = Path(features.__file__).parent
SPECS = all_specs()


@cache
def family_source(family: str) -> str:
    path = FEATURES_DIR / f"{family}.py"
    assert path.is_file(), f"family {family!r} has no module features/{family}.py"
    return path.read_text(encoding="utf-8")


@cache
def spec_call_names(family: str) -> frozenset[str]:
    """String literals passed as the name of a call (first argument or ``name=``): FeatureSpec(...), _spec(...)."""
    names = set()
    for node in ast.walk(ast.parse(family_source(family))):
        if not isinstance(node, ast.Call):
            continue
        candidates = node.args[:1] + [k.value for k in node.keywords if k.arg == "name"]
        names.update(c.value for c in candidates if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return frozenset(names)


def test_catalogue_is_not_empty():
    assert len(SPECS) > 30


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_feature_name_is_written_out_in_its_family_module(spec):
    module = f"features/{spec.family}.py"
    assert f'"{spec.name}"' in family_source(spec.family), (
        f'{module} never spells "{spec.name}" in full: write the name out literally (no f-string) '
        "so a search for it finds where it is defined"
    )
    assert spec.name in spec_call_names(spec.family), (
        f"{module} spells {spec.name!r} but not as the name of its FeatureSpec: define the spec with the literal name"
    )
