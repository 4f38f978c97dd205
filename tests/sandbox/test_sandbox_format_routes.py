"""Attack class: format-string traversal (``{0.__traceback__.tb_frame.f_back...}``) on every route.

On a ``str`` instance ``.format``/``.format_map`` are checked; the unbound ``str.format`` is refused;
and a user subclass of ``str`` (whose class-level ``S.format`` would be the unchecked method, via
``getattr``, ``map``, ``super()``, ``staticmethod`` or ``partial``) cannot be created at all.
"""

from __future__ import annotations

import pytest
from sbx_support import runner_fixture, strategy

runner = runner_fixture("t-format")

TRAVERSE = "'{0.__traceback__.tb_frame.f_back}'"
SUBCLASS = "subclassing str is not allowed"

ROUTES = [
    ("class-level", f"class S(str):\n    pass\nS.format({TRAVERSE}, ValueError())", SUBCLASS),
    ("class-getattr", f"class S(str):\n    pass\ngetattr(S, 'format')({TRAVERSE}, 1)", SUBCLASS),
    ("class-map", f"class S(str):\n    pass\nlist(map(S.format, [{TRAVERSE}], [1]))", SUBCLASS),
    ("class-format-map", "class S(str):\n    pass\nS.format_map('{x.real}', {'x': 1})", SUBCLASS),
    (
        "super",
        f"class S(str):\n    def f(self):\n        return super().format(1)\nS({TRAVERSE}).f()",
        SUBCLASS,
    ),
    (
        "staticmethod",
        f"class S(str):\n    g = staticmethod(str.format)\nS.g({TRAVERSE}, 1)",
        "access to .format of class str",
    ),
    (
        "partial",
        f"import functools\nclass S(str):\n    pass\nfunctools.partial(S.format, {TRAVERSE})(1)",
        SUBCLASS,
    ),
    ("nested-subclass", "class S(str):\n    pass\nclass T(S):\n    pass", SUBCLASS),
    (
        "str-getattr",
        f"getattr(str, 'format')({TRAVERSE}, 1)",
        "access to .format of class str is not allowed",
    ),
    (
        "str-format-map-getattr",
        "getattr(str, 'format_map')('{x.real}', {'x': 1})",
        "access to .format_map of class str is not allowed",
    ),
    (
        "instance-traversal",
        f"{TRAVERSE}.format(ValueError())",
        "format fields may not access attributes or items",
    ),
    (
        "instance-getattr",
        f"getattr({TRAVERSE}, 'format')(ValueError())",
        "format fields may not access attributes or items",
    ),
    (
        "instance-map",
        f"list(map(lambda s: s.format(1), [{TRAVERSE}]))",
        "format fields may not access attributes or items",
    ),
    ("super-of-str-method", "super(str, 'x').format", "access to .format of a super object is not allowed"),
]


@pytest.mark.parametrize(("payload", "message"), [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
def test_every_route_to_str_format_is_checked(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "FORBIDDEN", message)


def test_plain_format_still_works(runner) -> None:
    result = runner.ok(
        strategy("self.state['s'] = '{} {x:.2f}'.format(1, x=2.5) + '{a}'.format_map({'a': 'b'})")
    )
    assert result["state"] == {"s": "1 2.50b"}
