"""The admin has no login form of its own: staff sign in through allauth, whose failed-login limit
(5 per account per 5 minutes) locks out password guessing against staff accounts too."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password-1"


def test_admin_login_goes_to_the_shared_login_with_its_next(db: None) -> None:
    response = Client().get("/admin/login/?next=/admin/tenants/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/tenants/"
    # Posting credentials at the old address checks nothing: it only redirects.
    response = Client().post("/admin/login/", {"username": "x", "password": "y"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_repeated_failures_lock_a_staff_account_out_and_staff_still_reach_the_admin(db: None) -> None:
    staff = make_user("staff@stratbox.test", is_staff=True, is_superuser=True)
    web = Client()
    for _ in range(5):
        failed = web.post(
            "/accounts/login/?next=/admin/", {"login": staff.email, "password": "wrong-password-1"}
        )
        assert failed.status_code == 200  # the form again, with its error
    # Now even the right password is refused, with allauth's message, and no session is opened.
    locked = web.post("/accounts/login/?next=/admin/", {"login": staff.email, "password": PASSWORD})
    assert locked.status_code == 200
    assert "Too many failed login attempts. Try again later." in locked.content.decode()
    assert web.get("/admin/").status_code == 302

    other = Client()  # another staff member, untouched by the lockout, signs in and reaches the admin
    admin2 = make_user("admin2@stratbox.test", is_staff=True, is_superuser=True)
    ok = other.post("/accounts/login/?next=/admin/", {"login": admin2.email, "password": PASSWORD})
    assert ok.status_code == 302 and ok["Location"] == "/admin/"
    assert other.get("/admin/").status_code == 200
