"""`/healthz` reports database, Redis and workers separately; 200 only when all are up.

Worker liveness is the heartbeat each worker keeps in Redis (no broker round trip); the parts are
shown to staff and to the monitor token only, anonymous callers get up/down.
"""

import pytest

from stratbox.health import health_cache_clear
from tests.factories import make_user


@pytest.fixture(autouse=True)
def _fresh_report():
    health_cache_clear()
    yield
    health_cache_clear()


@pytest.mark.django_db
def test_healthz_without_a_worker_is_503_and_names_the_queues(client, celery_queue):
    client.force_login(make_user("staff@example.test", is_staff=True))
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["database"]["ok"] is True
    assert body["database"]["detail"] == "postgresql"
    assert body["redis"]["ok"] is True
    assert body["worker"]["ok"] is False
    assert body["worker"]["error"] == (
        f"RuntimeError: no worker heartbeat within 15 s for queue(s) {celery_queue}, {celery_queue}.long"
    )


@pytest.mark.django_db
def test_anonymous_callers_get_up_or_down_only(client, celery_queue):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"status": "unhealthy"})


def test_healthz_with_a_real_worker_is_200(client, worker, settings):
    from stratbox import workers
    from tests.engine.conftest import wait_for

    wait_for(workers.workers_alive, timeout=10)
    settings.STRATBOX_HEALTH_TOKEN = "monitor-secret"
    response = client.get("/healthz", headers={"Authorization": "Bearer monitor-secret"})
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["worker"] == {"ok": True, "detail": "1 worker(s) alive", "ms": body["worker"]["ms"]}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_stopped_worker_leaves_no_heartbeat(client, worker, settings):
    from stratbox import workers
    from tests.engine.conftest import wait_for

    assert len(wait_for(workers.workers_alive, timeout=10)) == 1
    worker.stop()
    assert workers.workers_alive() == {}
    settings.STRATBOX_HEALTH_TOKEN = "monitor-secret"
    response = client.get("/healthz", headers={"Authorization": "Bearer monitor-secret"})
    assert response.status_code == 503
