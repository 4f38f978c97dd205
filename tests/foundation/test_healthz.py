"""`/healthz` reports database, Redis and a worker separately; 200 only when all are up."""

import pytest


@pytest.mark.django_db
def test_healthz_without_a_worker_is_503_and_names_the_worker(client, celery_queue):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["database"]["ok"] is True
    assert body["database"]["detail"] == "postgresql"
    assert body["redis"]["ok"] is True
    assert body["worker"]["ok"] is False
    assert "no Celery worker" in body["worker"]["error"]


def test_healthz_with_a_real_worker_is_200(client, worker):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["worker"] == {"ok": True, "detail": "a worker answered", "ms": body["worker"]["ms"]}
