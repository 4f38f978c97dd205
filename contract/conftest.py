"""`make contract-alpaca`: the venue contract against Alpaca's paper API, by hand, with your keys.

Not part of `make test` (it needs the internet and an Alpaca paper account). Without keys it stops
at once and says which variables to set; it never reports a pass it did not run.
"""

from __future__ import annotations

import os

import pytest

if not (os.environ.get("APCA_API_KEY_ID") and os.environ.get("APCA_API_SECRET_KEY")):
    pytest.exit(
        "make contract-alpaca needs an Alpaca paper account's keys: set APCA_API_KEY_ID and "
        "APCA_API_SECRET_KEY (and APCA_API_BASE_URL / APCA_API_DATA_URL to point at another server)",
        returncode=2,
    )
