"""A small OpenAI-compatible chat server on 127.0.0.1 for tests of LLM calls: litellm talks to
it through its real code path (``api_base``). It records what it was sent."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class FakeLLM:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    """Status codes to answer with before answering normally (e.g. [429])."""
    delay: float = 0.0
    reply: str = "a fine answer"
    structured: str | None = None
    """The content answered to a request with a ``response_format`` (JSON text)."""
    refusal: str | None = None
    """When set, a request with a ``response_format`` is refused with this."""
    chunk_pause: float = 0.0
    """Seconds between the chunks of a streamed answer."""

    @property
    def api_base(self) -> str:
        return f"{self.url}/v1"

    def authorizations(self) -> list[str]:
        return [r["authorization"] for r in self.requests]


def _handler(state: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            state.requests.append(
                {
                    "path": self.path,
                    "authorization": self.headers.get("authorization", ""),
                    "body": body,
                }
            )
            if state.delay:
                time.sleep(state.delay)
            if state.failures:
                code = state.failures.pop(0)
                self._send(code, {"error": {"message": "slow down", "type": "rate_limit"}})
                return
            prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
            content: str | None = f"{state.reply} ({len(prompt)})"
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if body.get("response_format"):
                message["content"] = None if state.refusal else state.structured
                if state.refusal:
                    message["refusal"] = state.refusal
            usage = {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": 5,
                "total_tokens": len(prompt.split()) + 5,
            }
            if body.get("stream"):
                self._stream(body, str(message["content"] or ""), usage)
                return
            self._send(
                200,
                {
                    "id": f"chatcmpl-{len(state.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "unknown"),
                    "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                    "usage": usage,
                },
            )

        def _stream(self, body: dict[str, Any], text: str, usage: dict[str, int]) -> None:
            """Server-sent chunks, a word each, then the usage, then [DONE]."""
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            base = {
                "id": "chatcmpl-stream",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model", "unknown"),
            }
            words = text.split(" ")
            for i, word in enumerate(words):
                delta = {"role": "assistant"} if i == 0 else {}
                delta["content"] = word if i == 0 else " " + word
                last = i == len(words) - 1
                choice = {"index": 0, "delta": delta, "finish_reason": "stop" if last else None}
                self._event({**base, "choices": [choice]})
                if state.chunk_pause:
                    time.sleep(state.chunk_pause)
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event({**base, "choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    state = FakeLLM()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
