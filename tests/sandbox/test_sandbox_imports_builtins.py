"""Attack class: imports and builtins (os/sys via allowed modules, __import__, open, eval/exec)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sbx_support import runner_fixture, strategy

from sandbox import ALLOWED_IMPORTS

runner = runner_fixture("t-imports")

FORBIDDEN_IMPORTS = [
    ("import os", "import of 'os' is not allowed"),
    ("import sys", "import of 'sys' is not allowed"),
    ("import subprocess", "import of 'subprocess' is not allowed"),
    ("import socket", "import of 'socket' is not allowed"),
    ("import ctypes", "import of 'ctypes' is not allowed"),
    ("import importlib", "import of 'importlib' is not allowed"),
    ("import builtins", "import of 'builtins' is not allowed"),
    ("import string", "import of 'string' is not allowed"),
    ("import pickle", "import of 'pickle' is not allowed"),
    ("from os import path", "import of 'os' is not allowed"),
    ("from statistics import sys", "import of statistics.sys is not allowed"),
    ("from random import _os", "import of random._os is not allowed"),
    ("from decimal import getcontext", "import of decimal.getcontext is not allowed"),
    ("from collections import UserString", "import of collections.UserString is not allowed"),
    ("from operator import attrgetter", "import of operator.attrgetter is not allowed"),
    ("from operator import methodcaller", "import of operator.methodcaller is not allowed"),
    ("from math import *", "import of math.* is not allowed"),
    ("from . import strategy", "relative modules is not allowed"),
    ("from sandbox import client", "import of sandbox.client is not allowed"),
    ("import sandbox.client", "import of 'sandbox.client' is not allowed"),
    ("from sandbox.sdk import SDK_EXPORTS", "import of sandbox.sdk.SDK_EXPORTS is not allowed"),
    ("import collections.abc", "import of 'collections.abc' is not allowed"),
    ("x = __import__('os')", '"__import__" is an invalid variable name'),
]


@pytest.mark.parametrize(("payload", "message"), FORBIDDEN_IMPORTS, ids=[p for p, _ in FORBIDDEN_IMPORTS])
def test_forbidden_imports_fail_at_load(runner, payload: str, message: str) -> None:
    err = runner.expect(strategy(module=payload), "FORBIDDEN", message)
    assert err.line == 2


REACH_THROUGH = [
    ("import statistics\nx = statistics.sys", "no attribute 'sys'"),
    ("import random\nx = random.SystemRandom", "no attribute 'SystemRandom'"),
    ("import functools\nx = functools.sys", "no attribute 'sys'"),
    ("import collections\nx = collections.abc", "no attribute 'abc'"),
    ("import re\nx = re.enum", "no attribute 'enum'"),
    ("import datetime\nx = datetime.sys", "no attribute 'sys'"),
    ("import decimal\nx = decimal.getcontext", "no attribute 'getcontext'"),
    ("import operator\nx = operator.attrgetter", "no attribute 'attrgetter'"),
    ("import heapq\nx = heapq.sys", "no attribute 'sys'"),
]


@pytest.mark.parametrize(
    ("payload", "message"), REACH_THROUGH, ids=[p.split("\n")[1] for p, _ in REACH_THROUGH]
)
def test_allowed_modules_are_curated_wrappers(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "RUNTIME_ERROR", message)


def test_modules_are_read_only(runner) -> None:
    runner.expect(
        strategy("import math\nmath.sqrt = lambda x: 0"),
        "FORBIDDEN",
        "cannot modify <module 'math' (sandboxed)>",
    )


def test_no_file_or_network_access_from_user_code(runner) -> None:
    runner.expect(strategy("open('/tmp/sbx-pwned', 'w')"), "RUNTIME_ERROR", "name 'open' is not defined")
    assert not Path("/tmp/sbx-pwned").exists()


def test_allowed_imports_is_documented_and_complete() -> None:
    for module in (
        "math",
        "statistics",
        "datetime",
        "decimal",
        "fractions",
        "itertools",
        "functools",
        "collections",
        "heapq",
        "bisect",
        "random",
    ):
        assert ALLOWED_IMPORTS[module], module
    assert "sys" not in ALLOWED_IMPORTS["statistics"]
    assert "getcontext" not in ALLOWED_IMPORTS["decimal"]


def test_confinement_layers_are_active(client) -> None:
    info = client.host_info("t-imports")
    layers = info["layers"]
    assert layers["rlimits"]["AS"] and layers["rlimits"]["NPROC"] and layers["rlimits"]["FSIZE"]
    assert layers["no_new_privs"] is True
    assert layers["seccomp"] is True
    assert layers["netns"] is True and layers["nobody"] is True  # the suite runs as root here
    assert info["uid"] != 0
