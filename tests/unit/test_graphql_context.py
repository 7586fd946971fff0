"""A long-lived (subscription) context drops its DataLoaders on renew()."""

from __future__ import annotations

from types import SimpleNamespace

from read_api.context import ReadContext


def test_renew_makes_the_next_access_build_fresh_loaders():
    built: list[object] = []

    def make_loaders(context):
        loaders = object()
        built.append(loaders)
        return loaders

    context = ReadContext(SimpleNamespace(make_loaders=make_loaders), None)  # type: ignore[arg-type]
    first = context.loaders
    assert context.loaders is first, "one request shares its loaders"
    context.renew()
    assert context.loaders is not first
    assert len(built) == 2
