"""The fake's answers validated against Langfuse's published OpenAPI spec, so it cannot drift.

Every route evalmon calls is exercised with real HTTP against the fake, and each request and
response is checked with openapi-core. One documented exception: POST /api/public/scores with a
JSON list (what SDK 5 sends) answers 202/207; the spec's generated reference shows only the
single-score form and 200 (the SDK documents the list form), so the list answers are checked
against the SDK's own response models instead.
"""

import base64
import json
from functools import cache
from typing import Any

import httpx
import pytest
from conftest import WINDOW_SINCE, WINDOW_UNTIL
from contracts import langfuse_spec
from fakes.langfuse_server import FakeLangfuse, generate_traces
from langfuse.api.scores.types import CreateScoreBatchResponse, CreateScoreBatchResults
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse


@cache
def spec() -> OpenAPI:
    # The published file itself does not pass openapi-spec-validator; we validate traffic, not it.
    return OpenAPI.from_file_path(str(langfuse_spec()), config=Config(spec_validator_cls=None))


class Checked:
    def __init__(self, fake: FakeLangfuse) -> None:
        self.fake = fake
        token = base64.b64encode(f"{fake.public_key}:{fake.secret_key}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.http = httpx.Client(base_url=fake.url, headers=self.headers, timeout=10)

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        data = json.dumps(body).encode() if body is not None else None
        response = self.http.request(
            method, path, params=query, content=data, headers={"content-type": "application/json"} if data else None
        )
        request = MockRequest(self.fake.url, method.lower(), path, args=query, headers=self.headers, data=data)
        mock = MockResponse(response.content, status_code=response.status_code)
        spec().validate_request(request)
        spec().validate_response(request, mock)
        return response


@pytest.fixture
def checked(fake: FakeLangfuse) -> Checked:
    fake.seed_observations(generate_traces(12, since=WINDOW_SINCE, until=WINDOW_UNTIL))
    return Checked(fake)


def test_health_and_projects(checked: Checked) -> None:
    assert checked.call("GET", "/api/public/health").status_code == 200
    assert checked.call("GET", "/api/public/projects").json()["data"]


@pytest.mark.parametrize(
    "fields", [None, "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context", "core,io"]
)
def test_v2_observations_pages_and_field_groups(checked: Checked, fields: str | None) -> None:
    roots = [{"type": "boolean", "column": "isRootObservation", "operator": "=", "value": True}]
    first = checked.call(
        "GET", "/api/public/v2/observations", params={"fields": fields, "limit": 5, "filter": json.dumps(roots)}
    ).json()
    assert len(first["data"]) == 5 and first["meta"]["cursor"]
    rest = checked.call(
        "GET",
        "/api/public/v2/observations",
        params={"fields": fields, "limit": 50, "cursor": first["meta"]["cursor"], "filter": json.dumps(roots)},
    ).json()
    assert len(rest["data"]) == 7 and "cursor" not in rest["meta"]
    if fields and "io" in fields:
        assert isinstance(first["data"][0]["input"], str)  # raw strings, as v4 returns them


def test_v2_observations_rejects_bad_parameters(checked: Checked) -> None:
    assert checked.call("GET", "/api/public/v2/observations", params={"limit": 5000}).status_code == 400
    bad = json.dumps([{"type": "string", "column": "nope", "operator": "=", "value": 1}])
    assert checked.call("GET", "/api/public/v2/observations", params={"filter": bad}).status_code == 400


def test_scores_single_create_and_v3_read(checked: Checked) -> None:
    body = {"id": "s-1", "traceId": "t-1", "name": "quality", "value": 0.5, "dataType": "NUMERIC", "comment": "ok"}
    assert checked.call("POST", "/api/public/scores", body=body).json() == {"id": "s-1"}
    boolean = {"id": "s-2", "traceId": "t-1", "observationId": "o-1", "name": "ok", "value": 1, "dataType": "BOOLEAN"}
    checked.call("POST", "/api/public/scores", body=boolean)
    page = checked.call(
        "GET", "/api/public/v3/scores", params={"id": "s-1,s-2", "fields": "details,subject", "limit": 100}
    ).json()
    assert {s["id"] for s in page["data"]} == {"s-1", "s-2"}
    assert checked.call("GET", "/api/public/v3/scores", params={"limit": 101}).status_code == 400


def test_scores_list_create_answers_202_or_207(fake: FakeLangfuse, checked: Checked) -> None:
    good = [{"id": f"s-{i}", "traceId": "t", "name": "m", "value": 1.0} for i in range(3)]
    response = checked.http.post("/api/public/scores", json=good)
    assert response.status_code == 202
    CreateScoreBatchResponse.model_validate(response.json())
    mixed = [*good, {"traceId": "t", "name": "m", "value": "not a number", "dataType": "NUMERIC"}]
    response = checked.http.post("/api/public/scores", json=mixed)
    assert response.status_code == 207
    results = CreateScoreBatchResults.model_validate(response.json())
    assert (results.accepted, results.rejected) == (3, 1)


def test_prompts(checked: Checked) -> None:
    body = {"name": "athena-recommendation", "type": "text", "prompt": "Question: {{q}}", "labels": ["production"]}
    created = checked.call("POST", "/api/public/v2/prompts", body=body).json()
    assert created["version"] == 1 and "latest" in created["labels"]
    checked.call("POST", "/api/public/v2/prompts", body={**body, "prompt": "v2 {{q}}", "labels": []})
    prod = checked.call("GET", "/api/public/v2/prompts/athena-recommendation").json()
    assert prod["version"] == 1
    latest = checked.call("GET", "/api/public/v2/prompts/athena-recommendation", params={"label": "latest"}).json()
    assert latest["version"] == 2
    listing = checked.call("GET", "/api/public/v2/prompts").json()
    assert listing["data"][0]["versions"] == [1, 2]
    moved = checked.call(
        "PATCH", "/api/public/v2/prompts/athena-recommendation/versions/2", body={"newLabels": ["production"]}
    ).json()
    assert "production" in moved["labels"]
    assert checked.call("GET", "/api/public/v2/prompts/nope").status_code == 404


def test_datasets_items_and_run_items(checked: Checked) -> None:
    checked.call("POST", "/api/public/v2/datasets", body={"name": "evalmon-athena"})
    assert checked.call("GET", "/api/public/v2/datasets/evalmon-athena").json()["name"] == "evalmon-athena"
    item = {"datasetName": "evalmon-athena", "id": "item-1", "input": {"q": 1}, "sourceTraceId": "t-1"}
    checked.call("POST", "/api/public/dataset-items", body=item)
    checked.call("POST", "/api/public/dataset-items", body=item)  # upsert by id
    items = checked.call("GET", "/api/public/dataset-items", params={"datasetName": "evalmon-athena"}).json()
    assert [i["id"] for i in items["data"]] == ["item-1"]
    run_item = {"runName": "run-1", "datasetItemId": "item-1", "traceId": "t-1"}
    checked.call("POST", "/api/public/dataset-run-items", body=run_item)
    run = checked.call("GET", "/api/public/datasets/evalmon-athena/runs/run-1").json()
    assert [ri["datasetItemId"] for ri in run["datasetRunItems"]] == ["item-1"]


def test_bad_credentials_are_401(fake: FakeLangfuse) -> None:
    response = httpx.get(f"{fake.url}/api/public/v2/observations", auth=(fake.public_key, "wrong"))
    assert response.status_code == 401


def test_score_configs(checked: Checked) -> None:
    created = checked.call(
        "POST", "/api/public/score-configs", body={"name": "human_review", "dataType": "BOOLEAN"}
    ).json()
    assert [c["label"] for c in created["categories"]] == ["True", "False"]  # autogenerated for BOOLEAN
    listing = checked.call("GET", "/api/public/score-configs", params={"page": 1, "limit": 100}).json()
    assert [c["id"] for c in listing["data"]] == [created["id"]] and listing["meta"]["totalItems"] == 1
    assert checked.call("GET", f"/api/public/score-configs/{created['id']}").json()["name"] == "human_review"
    assert checked.call("GET", "/api/public/score-configs/nope").status_code == 404
    invalid = checked.http.post("/api/public/score-configs", json={"name": "x", "dataType": "NOPE"})  # off-spec body
    assert invalid.status_code == 400


def test_annotation_queues_and_their_items(checked: Checked) -> None:
    config = checked.call("POST", "/api/public/score-configs", body={"name": "ok", "dataType": "BOOLEAN"}).json()
    no_config = {"name": "review", "scoreConfigIds": []}
    assert checked.call("POST", "/api/public/annotation-queues", body=no_config).status_code == 400
    queue = checked.call(
        "POST",
        "/api/public/annotation-queues",
        body={"name": "review", "description": "judge failures", "scoreConfigIds": [config["id"]]},
    ).json()
    assert checked.call("GET", f"/api/public/annotation-queues/{queue['id']}").json()["name"] == "review"
    assert (
        checked.call("GET", "/api/public/annotation-queues", params={"limit": 10}).json()["data"][0]["id"]
        == (queue["id"])
    )
    items_path = f"/api/public/annotation-queues/{queue['id']}/items"
    first = checked.call("POST", items_path, body={"objectId": "t-1", "objectType": "TRACE"}).json()
    assert first["status"] == "PENDING" and first["completedAt"] is None
    again = checked.call("POST", items_path, body={"objectId": "t-1", "objectType": "TRACE"}).json()
    assert again["id"] != first["id"]  # Langfuse does not deduplicate: callers must look first
    checked.call("POST", items_path, body={"objectId": "o-1", "objectType": "OBSERVATION", "status": "COMPLETED"})
    page = checked.call("GET", items_path, params={"page": 1, "limit": 2}).json()
    assert len(page["data"]) == 2 and page["meta"]["totalItems"] == 3 and page["meta"]["totalPages"] == 2
    done = checked.call("GET", items_path, params={"status": "COMPLETED"}).json()
    assert [i["objectId"] for i in done["data"]] == ["o-1"]
    updated = checked.call("PATCH", f"{items_path}/{first['id']}", body={"status": "COMPLETED"}).json()
    assert updated["status"] == "COMPLETED" and updated["completedAt"]
    assert checked.call("GET", f"{items_path}/{first['id']}").json()["status"] == "COMPLETED"
    assert checked.call("DELETE", f"{items_path}/{again['id']}").json()["success"] is True
    assert checked.call("GET", f"{items_path}/{again['id']}").status_code == 404
    assert checked.call("GET", items_path, params={"limit": 101}).status_code == 400
    assert checked.call("GET", "/api/public/annotation-queues/nope/items").status_code == 404


def test_v3_scores_filter_by_time_source_and_queue(fake: FakeLangfuse, checked: Checked) -> None:
    fake.seed_score(
        id="h-1", traceId="t-1", name="human", value=1, dataType="BOOLEAN", source="ANNOTATION",
        queueId="aq-1", authorUserId="u-1", timestamp=WINDOW_SINCE,
    )  # fmt: skip
    fake.seed_score(id="h-2", traceId="t-2", name="human", value=0.2, source="API", timestamp=WINDOW_UNTIL)
    params = {"name": "human", "fields": "subject,annotation", "fromTimestamp": WINDOW_SINCE.isoformat()}
    window = checked.call("GET", "/api/public/v3/scores", params={**params, "toTimestamp": WINDOW_UNTIL.isoformat()})
    assert [(s["id"], s["queueId"], s["authorUserId"]) for s in window.json()["data"]] == [("h-1", "aq-1", "u-1")]
    api = checked.call("GET", "/api/public/v3/scores", params={**params, "source": "api"}).json()
    assert [s["id"] for s in api["data"]] == ["h-2"]
    queued = checked.call("GET", "/api/public/v3/scores", params={"queueId": "aq-1"}).json()
    assert [s["id"] for s in queued["data"]] == ["h-1"]
