"""Attack class: information in reprs (module paths, heap addresses) of host objects."""

from __future__ import annotations

import re

from sbx_support import runner_fixture, strategy

runner = runner_fixture("t-reprs")

OBJECTS = {
    "context": "self.context",
    "strategy": "self",
    "strategy_class": "Strategy",
    "sdk_class": "sdk.EntrySignal",
    "sdk_function": "sdk.metric",
    "sdk_module": "sdk",
    "tick_class": "sdk.Tick",
    "stdlib_function": "statistics.mean",
    "random_method": "random.random",
    "generator": "random.Random(3)",
    "generator_method": "random.Random(3).random",
    "typing_name": "typing.Optional[typing.List[int]]",
    "getattr": "getattr",
    "print": "print",
    "wraps": "functools.wraps",
    "namedtuple": "collections.namedtuple",
    "bound_format": "'x'.format",
    "receipt": "self.context.place_order('buy', 1)",
}


def test_host_objects_reveal_no_paths_or_addresses(runner) -> None:
    body = "import statistics, random, typing, functools, collections\nfrom sandbox import sdk\n"
    body += "self.state['r'] = {" + ", ".join(f"{k!r}: repr({v})" for k, v in OBJECTS.items()) + "}"
    result = runner.ok(strategy(body))
    reprs = result["state"]["r"]
    assert set(reprs) == set(OBJECTS)
    for name, text in reprs.items():
        assert not re.search(r"0x[0-9a-f]{4,}", text), (name, text)
        assert not re.search(r"sandbox\.(?!sdk')", text) and "/" not in text and "\\" not in text, (
            name,
            text,
        )
    assert reprs["context"] == "<context>"
    assert reprs["strategy"] == "<S strategy>"
    assert reprs["strategy_class"] == "<class 'Strategy'>"
    assert reprs["stdlib_function"] == "<function statistics.mean>"
    assert reprs["sdk_module"] == "<module 'sandbox.sdk' (sandboxed)>"  # the name user code imports
