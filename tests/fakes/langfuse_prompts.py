"""A loopback fake of Langfuse's prompt API and its prompt-version webhooks (tests only).

Follows tests/contracts/langfuse-openapi.yml:
  GET   /api/public/v2/prompts/{promptName}?version=&label=   -> Prompt (404 if none)
  POST  /api/public/v2/prompts                                -> Prompt (a new version)
  PATCH /api/public/v2/prompts/{name}/versions/{version}      -> Prompt ({"newLabels": [...]})
Basic auth with the project's public/secret key, like the real API. Langfuse keeps the "latest" label
on the newest version, labels unique across versions, and PATCH adds labels; so does this fake.
(tests/fakes/langfuse_server.py is the full fake; this one covers prompts and their webhooks.)

Like a Langfuse "Automation", `subscribe(url, secret)` makes every created/updated version POST a
prompt-version event signed the way Langfuse signs it: header `x-langfuse-signature: t=<unix>,v1=<hex>`,
hex = HMAC-SHA256(key = the whole secret, message = "<t>.<body>"), body = compact JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx


def langfuse_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The x-langfuse-signature header value for `body`, as Langfuse computes it."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def prompt_version_event(prompt: dict[str, Any], action: str = "created", *, event_id: str | None = None) -> bytes:
    """A prompt-version webhook body in Langfuse's documented shape, compact JSON like JSON.stringify."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    event = {
        "id": event_id or str(uuid.uuid4()),
        "timestamp": now,
        "type": "prompt-version",
        "apiVersion": "v1",
        "action": action,
        "prompt": {
            "id": prompt.get("id", str(uuid.uuid4())),
            "name": prompt["name"],
            "version": prompt["version"],
            "projectId": prompt.get("projectId", "project-fake"),
            "labels": prompt.get("labels", []),
            "prompt": prompt.get("prompt", ""),
            "type": prompt.get("type", "text"),
            "config": prompt.get("config", {}),
            "commitMessage": prompt.get("commitMessage"),
            "tags": prompt.get("tags", []),
            "createdAt": prompt.get("createdAt", now),
            "updatedAt": now,
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


class FakeLangfusePrompts:
    """Run with `with FakeLangfusePrompts() as fake:`; `fake.base_url` goes to LANGFUSE_BASE_URL."""

    def __init__(self, public_key: str | None = None, secret_key: str = "sk-lf-fake") -> None:
        # A fresh public key per fake: the SDK keeps one resource manager (and base URL) per key.
        self.public_key = public_key or f"pk-lf-{uuid.uuid4().hex[:12]}"
        self.secret_key = secret_key
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.down = False
        self.webhooks: list[tuple[str, str]] = []
        self.deliveries: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    base_url = url

    def stop(self) -> None:
        """Close the port: from now on Langfuse is unreachable."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeLangfusePrompts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server.socket.fileno() != -1:
            self.stop()

    def gets(self, name: str | None = None) -> int:
        """How many prompt GETs reached the server (optionally for one name): cache misses."""
        with self._lock:
            return sum(1 for m, p in self.requests if m == "GET" and (name is None or p.endswith("/" + name)))

    def subscribe(self, url: str, secret: str) -> None:
        """Send signed prompt-version events to `url` (like a Langfuse webhook automation)."""
        self.webhooks.append((url, secret))

    # -- store ------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        prompt: Any,
        *,
        labels: list[str] | None = None,
        config: dict[str, Any] | None = None,
        type: str | None = None,
        commit_message: str | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a version directly in the store (what a person does in the Langfuse UI)."""
        body = {
            "name": name,
            "prompt": prompt,
            "labels": labels or [],
            "config": config or {},
            "type": type or ("text" if isinstance(prompt, str) else "chat"),
            "commitMessage": commit_message,
            "tags": tags,
        }
        created = self._create(body)
        self._emit(created, "created")
        return created

    def set_labels(self, name: str, version: int, labels: list[str]) -> dict[str, Any]:
        updated = self._set_labels(name, version, labels)
        self._emit(updated, "updated")
        return updated

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            versions = self.versions.setdefault(body["name"], [])
            labels = list(dict.fromkeys(body.get("labels") or []))
            for v in versions:
                v["labels"] = [lb for lb in v["labels"] if lb not in labels and lb != "latest"]
            prompt = body["prompt"]
            kind = body.get("type") or ("text" if isinstance(prompt, str) else "chat")
            if kind == "chat":
                prompt = [
                    {"type": "placeholder", "name": m["name"]}
                    if m.get("type") == "placeholder"
                    else {"role": m["role"], "content": m["content"], "type": "chatmessage"}
                    for m in prompt
                ]
            tags = body.get("tags")
            if tags is None:
                tags = versions[-1]["tags"] if versions else []
            record = {
                "id": str(uuid.uuid4()),
                "name": body["name"],
                "version": len(versions) + 1,
                "type": kind,
                "prompt": prompt,
                "config": body.get("config") if body.get("config") is not None else {},
                "labels": [*labels, "latest"],
                "tags": tags,
                "commitMessage": body.get("commitMessage"),
                "resolutionGraph": None,
            }
            versions.append(record)
            return json.loads(json.dumps(record))

    def _set_labels(self, name: str, version: int, new_labels: list[str]) -> dict[str, Any]:
        with self._lock:
            versions = self.versions.get(name, [])
            target = next((v for v in versions if v["version"] == version), None)
            if target is None:
                raise KeyError(name)
            wanted = [lb for lb in dict.fromkeys(new_labels) if lb != "latest"]
            for v in versions:
                if v is not target:
                    v["labels"] = [lb for lb in v["labels"] if lb not in wanted]
            # Langfuse adds newLabels to the version's labels (never removes) and takes them off the others.
            target["labels"] = list(dict.fromkeys([*target["labels"], *wanted]))
            return json.loads(json.dumps(target))

    def _find(self, name: str, version: int | None, label: str | None) -> dict[str, Any] | None:
        with self._lock:
            versions = self.versions.get(name, [])
            if version is not None:
                found = next((v for v in versions if v["version"] == version), None)
            else:
                want = label or "production"
                found = next((v for v in versions if want in v["labels"]), None)
            return json.loads(json.dumps(found)) if found else None

    def _emit(self, prompt: dict[str, Any], action: str) -> None:
        for url, secret in self.webhooks:
            body = prompt_version_event(prompt, action)
            resp = httpx.post(
                url,
                content=body,
                timeout=10,
                headers={"content-type": "application/json", "x-langfuse-signature": langfuse_signature(body, secret)},
            )
            self.deliveries.append(resp.status_code)

    # -- HTTP -------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                expected = base64.b64encode(f"{fake.public_key}:{fake.secret_key}".encode()).decode()
                return self.headers.get("authorization", "") == f"Basic {expected}"

            def _body(self) -> Any:
                length = int(self.headers.get("content-length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                with fake._lock:
                    fake.requests.append((method, unquote(url.path)))
                if fake.down:
                    self._send(503, {"message": "service unavailable"})
                    return
                if not self._authorised():
                    self._send(401, {"message": "Invalid credentials"})
                    return
                parts = url.path.split("/")
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                prefix = ["", "api", "public", "v2", "prompts"]
                if parts[:5] != prefix:
                    self._send(404, {"message": "not found"})
                    return
                rest = parts[5:]
                if method == "GET" and len(rest) == 1:
                    version = int(query["version"]) if query.get("version") else None
                    found = fake._find(unquote(rest[0]), version, query.get("label"))
                    if found is None:
                        self._send(404, {"error": "LangfuseNotFoundError", "message": "Prompt not found"})
                    else:
                        self._send(200, found)
                elif method == "POST" and rest in ([], [""]):
                    body = self._body()
                    if not isinstance(body.get("name"), str) or "prompt" not in body:
                        self._send(400, {"message": "name and prompt are required"})
                        return
                    created = fake._create(body)
                    self._send(200, created)
                    fake._emit(created, "created")
                elif method == "PATCH" and len(rest) == 3 and rest[1] == "versions":
                    body = self._body()
                    try:
                        updated = fake._set_labels(unquote(rest[0]), int(rest[2]), list(body["newLabels"]))
                    except KeyError:
                        self._send(404, {"message": "Prompt not found"})
                        return
                    self._send(200, updated)
                    fake._emit(updated, "updated")
                else:
                    self._send(405, {"message": "method not allowed"})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

        return Handler
