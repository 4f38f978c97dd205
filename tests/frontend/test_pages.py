"""Web UI pages through Django's test client: auth pages, strategies, instances, tenant scoping.

Each test asserts what the user sees (status, the field carrying the error) and what the database
holds afterwards. Another tenant's objects are 404s and never leak into lists.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from tests.factories import add_member, make_user
from tests.frontend.factories import make_definition, make_instance

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(user: Any, tenant: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def other_web(other_user: Any, other_tenant: Any) -> Client:
    client = Client()
    client.force_login(other_user)
    return client


# --- auth pages ---------------------------------------------------------------------------


def test_login_page_extends_the_layout_with_labelled_fields(client: Client) -> None:
    response = client.get(reverse("account_login"))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'href="/static/build/app.css"' in html
    assert '<label for="id_login">' in html and '<label for="id_password">' in html


def test_signup_creates_user_and_tenant_and_lands_on_instances(client: Client) -> None:
    from tenants.models import Membership

    response = client.post(
        reverse("account_signup"),
        {
            "email": "new@example.test",
            "password1": "correct-horse-9-battery",
            "password2": "correct-horse-9-battery",
        },
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user__email="new@example.test")
    assert membership.role == "owner"
    page = client.get(response["Location"], follow=True)
    assert page.status_code == 200
    assert escape(membership.tenant.name) in page.content.decode()


def test_signup_errors_are_shown_by_field(client: Client) -> None:
    from django.contrib.auth import get_user_model

    response = client.post(
        reverse("account_signup"), {"email": "not-an-email", "password1": "x", "password2": "y"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-error-for="email"' in html
    assert 'aria-invalid="true"' in html
    assert not get_user_model().objects.filter(email="not-an-email").exists()


def test_pages_need_a_login(client: Client) -> None:
    for name in (
        "frontend:strategy_list",
        "frontend:instance_list",
        "frontend:instance_create",
        "frontend:settings",
    ):
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("account_login"))


def test_logout_is_a_post(web: Client) -> None:
    html = web.get(reverse("frontend:instance_list")).content.decode()
    assert f'<form method="post" action="{reverse("account_logout")}">' in html


# --- strategies -----------------------------------------------------------------------------


def test_strategy_list_shows_catalog_and_own_but_not_other_tenants(
    web: Client, tenant: Any, other_tenant: Any
) -> None:
    make_definition(None, key="catalog-sma")
    make_definition(tenant, key="mine")
    make_definition(other_tenant, key="theirs")
    html = web.get(reverse("frontend:strategy_list")).content.decode()
    assert 'data-strategy-key="catalog-sma"' in html
    assert 'data-strategy-key="mine"' in html
    assert "theirs" not in html


def test_other_tenants_strategy_is_404(web: Client, other_tenant: Any) -> None:
    theirs = make_definition(other_tenant, key="theirs")
    assert web.get(reverse("frontend:strategy_detail", args=[theirs.id])).status_code == 404
    assert web.get(reverse("frontend:strategy_version", args=[theirs.id, 1])).status_code == 404
    response = web.post(reverse("frontend:strategy_version_upload", args=[theirs.id]), {"source": "x = 1\n"})
    assert response.status_code == 404
    assert theirs.versions.count() == 1


def test_upload_page_lists_allowed_imports(web: Client) -> None:
    html = web.get(reverse("frontend:strategy_upload")).content.decode()
    assert 'id="allowed-imports"' in html
    assert ">math<" in html


def test_upload_without_any_source_names_the_file_field(web: Client, tenant: Any) -> None:
    response = web.post(reverse("frontend:strategy_upload"), {"kind": "single", "key": "k1", "name": "K1"})
    assert response.status_code == 400
    assert response.context["form"].errors["file"] == ["Choose a .py file or paste the source."]
    assert not tenant.strategies.exists()


def test_viewer_cannot_upload(tenant: Any) -> None:
    viewer = add_member(tenant, role="viewer")
    client = Client()
    client.force_login(viewer)
    response = client.post(
        reverse("frontend:strategy_upload"), {"kind": "single", "key": "v1", "name": "V", "source": "x=1\n"}
    )
    assert response.status_code == 403
    assert not tenant.strategies.exists()


# --- instances ------------------------------------------------------------------------------


def test_create_form_is_generated_from_the_versions_schema(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    make_definition(tenant, key="mine")
    response = web.get(reverse("frontend:instance_create"), {"strategy": "mine"})
    form = response.context["form"]
    assert response.status_code == 200
    window = form.fields["cfg__window"]
    assert (window.min_value, window.max_value, window.initial) == (2, 500, 20)
    assert [c[0] for c in form.fields["cfg__side"].choices] == ["long", "short"]
    assert "SMA window" in window.help_text
    html = response.content.decode()
    assert 'name="cfg__window"' in html and 'min="2"' in html and 'max="500"' in html


def test_create_instance_and_see_it_in_the_list(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    make_definition(tenant, key="mine")
    response = web.post(
        reverse("frontend:instance_create"),
        {
            "name": "Bot one",
            "strategy": "mine",
            "version": "1",
            "account": str(paper_account.id),
            "market": str(market.id),
            "cfg__window": "30",
            "cfg__threshold": "0.25",
            "cfg__side": "short",
            "cfg__label": "x",
            "total_capital": "1000",
            "capital_per_trade": "100",
            "max_positions": "1",
            "max_position_size": "500",
            "max_daily_loss": "100",
            "sizing_method": "fixed",
            "frequency_seconds": "7",
        },
    )
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    instance = tenant.instances.get()
    assert instance.config == {
        "window": 30,
        "threshold": 0.25,
        "side": "short",
        "verbose": False,
        "label": "x",
    }
    assert instance.frequency_seconds == 7 and instance.mode == "off"
    html = web.get(reverse("frontend:instance_list")).content.decode()
    assert f'data-instance-id="{instance.id}"' in html
    assert "Runs every 7 seconds" in html
    assert 'data-mode="off"' in html and "PAPER" in html


def test_create_with_out_of_range_config_shows_the_field_error(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    make_definition(tenant, key="mine")
    response = web.post(
        reverse("frontend:instance_create"),
        {
            "name": "Bot",
            "strategy": "mine",
            "version": "1",
            "account": str(paper_account.id),
            "market": str(market.id),
            "cfg__window": "9999",
            "cfg__threshold": "0.5",
            "cfg__side": "long",
            "total_capital": "1000",
            "capital_per_trade": "100",
            "max_positions": "1",
            "max_position_size": "500",
            "max_daily_loss": "100",
            "sizing_method": "fixed",
            "frequency_seconds": "0",
        },
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "cfg__window" in errors and "frequency_seconds" in errors
    assert not tenant.instances.exists()


def test_create_refuses_another_tenants_account(
    web: Client, tenant: Any, other_paper_account: Any, paper_account: Any, market: Any
) -> None:
    make_definition(tenant, key="mine")
    response = web.post(
        reverse("frontend:instance_create"),
        {
            "name": "Bot",
            "strategy": "mine",
            "version": "1",
            "account": str(other_paper_account.id),
            "market": str(market.id),
            "total_capital": "1000",
            "capital_per_trade": "100",
            "max_positions": "1",
            "max_position_size": "500",
            "max_daily_loss": "100",
            "sizing_method": "fixed",
            "frequency_seconds": "5",
            "cfg__window": "20",
            "cfg__threshold": "0.5",
            "cfg__side": "long",
        },
    )
    assert response.status_code == 400
    assert "account" in response.context["form"].errors
    assert not tenant.instances.exists()
    # Another tenant's account is never offered.
    assert str(other_paper_account.id) not in dict(response.context["form"].fields["account"].choices)


def test_detail_config_server_error_lands_on_the_field(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = make_instance(tenant, paper_account, market)
    url = reverse("frontend:instance_detail", args=[instance.id])
    page = web.get(url)
    assert page.status_code == 200
    data = {k: v for k, v in page.context["form"].initial.items()}
    data.update({"cfg__window": "1", "cfg__threshold": "0.5", "cfg__side": "long", "cfg__label": "sma"})
    response = web.post(url, data)
    assert response.status_code == 400
    assert "cfg__window" in response.context["form"].errors
    instance.refresh_from_db()
    assert instance.config["window"] == 20


def test_detail_config_saves(web: Client, tenant: Any, paper_account: Any, market: Any) -> None:
    instance = make_instance(tenant, paper_account, market)
    url = reverse("frontend:instance_detail", args=[instance.id])
    data = dict(web.get(url).context["form"].initial)
    data.update(
        {
            "cfg__window": "42",
            "cfg__threshold": "0.5",
            "cfg__side": "long",
            "cfg__label": "sma",
            "frequency_seconds": "3",
        }
    )
    response = web.post(url, data)
    assert response.status_code == 302
    instance.refresh_from_db()
    assert instance.config["window"] == 42 and instance.frequency_seconds == 3


def test_mode_controls_follow_the_transition_rules(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = make_instance(tenant, paper_account, market)
    url = reverse("frontend:instance_mode", args=[instance.id])
    refused = web.post(url, {"mode": "active"}, follow=True)
    assert "Activation is disabled while the instance is off" in refused.content.decode()
    instance.refresh_from_db()
    assert instance.mode == "off"
    web.post(url, {"mode": "observe"})
    instance.refresh_from_db()
    assert instance.mode == "observe"
    html = web.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    assert 'data-target-mode="active"' in html and 'data-mode="observe"' in html


def test_mode_change_is_post_only(web: Client, tenant: Any, paper_account: Any, market: Any) -> None:
    instance = make_instance(tenant, paper_account, market)
    assert web.get(reverse("frontend:instance_mode", args=[instance.id])).status_code == 405


def test_other_tenants_instance_is_404_and_unchanged(
    web: Client, other_tenant: Any, other_paper_account: Any, market: Any
) -> None:
    theirs = make_instance(other_tenant, other_paper_account, market, name="Secret bot")
    assert web.get(reverse("frontend:instance_detail", args=[theirs.id])).status_code == 404
    assert (
        web.post(reverse("frontend:instance_mode", args=[theirs.id]), {"mode": "observe"}).status_code == 404
    )
    assert web.post(reverse("frontend:instance_detail", args=[theirs.id]), {"name": "x"}).status_code == 404
    theirs.refresh_from_db()
    assert (theirs.mode, theirs.name) == ("off", "Secret bot")
    assert "Secret bot" not in web.get(reverse("frontend:instance_list")).content.decode()


def test_viewer_sees_instances_but_cannot_change_mode(tenant: Any, paper_account: Any, market: Any) -> None:
    instance = make_instance(tenant, paper_account, market)
    viewer = add_member(tenant, role="viewer", user=make_user())
    client = Client()
    client.force_login(viewer)
    assert client.get(reverse("frontend:instance_detail", args=[instance.id])).status_code == 200
    response = client.post(reverse("frontend:instance_mode", args=[instance.id]), {"mode": "observe"})
    assert response.status_code == 403
    instance.refresh_from_db()
    assert instance.mode == "off"
