"""Attack class: the upload report and the load disagree.

The report used to name class ``A`` while a subclass ``B`` defined through an alias was what ran;
a file that validated in 4 s timed out on every 2 s load; one lock serialised every tenant's
validations. Validation now trial-loads the file under the load budget, reports the class (and
schema) that actually runs, and validations do not wait for each other.
"""

from __future__ import annotations

import threading
import time

from sandbox import Limits, validate_source

ALIAS = """
from sandbox.sdk import Strategy

class A(Strategy):
    CONFIG_SCHEMA = {"qty": {"type": "float", "default": 1.0}}

Alias = A

class B(Alias):
    CONFIG_SCHEMA = {"qty": {"type": "float", "default": 1000000.0}}

    def on_tick(self, tick):
        self.context.place_order("buy", self.config["qty"])
"""


def test_report_names_the_class_that_runs() -> None:
    report = validate_source(ALIAS)
    assert report.ok, report.errors
    assert report.class_name == "B"
    assert report.config_schema == {"qty": {"type": "float", "default": 1000000.0}}


def test_schema_built_at_import_time_is_reported_as_it_runs() -> None:
    src = ALIAS.replace('CONFIG_SCHEMA = {"qty": {"type": "float", "default": 1000000.0}}', "pass")
    report = validate_source(src)
    assert report.ok and report.class_name == "B"
    assert report.config_schema == {"qty": {"type": "float", "default": 1.0}}  # inherited from A, as it runs


SLOW_INIT = """
from sandbox.sdk import Strategy

class S(Strategy):
    def init(self):
        while True:
            pass
"""


def test_a_slow_init_fails_validation_like_a_load() -> None:
    report = validate_source(SLOW_INIT)
    assert not report.ok and report.errors[0].code == "TIMEOUT"


def test_validations_do_not_wait_for_each_other() -> None:
    """A slow upload (runs into the load budget) does not hold up another one."""
    done: dict[str, float] = {}

    def slow() -> None:
        report = validate_source(SLOW_INIT, limits=Limits(load_timeout=4.0))  # runs into its 4 s budget
        assert report.errors[0].code == "TIMEOUT"
        done["slow"] = time.monotonic()

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)  # the slow validation is running
    report = validate_source(ALIAS)
    done["fast"] = time.monotonic()
    thread.join()
    assert report.ok
    assert done["fast"] < done["slow"], "the quick validation waited for the slow one"


def test_a_strategy_base_named_through_an_alias_validates_as_it_loads() -> None:
    src = "from sandbox import sdk\n\nBase = sdk.Strategy\n\nclass Mine(Base):\n    def on_tick(self, tick):\n        pass\n"
    report = validate_source(src)
    assert report.ok, report.errors
    assert report.class_name == "Mine"
