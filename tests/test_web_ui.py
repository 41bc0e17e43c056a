"""The web UI in a real browser: Debian's chromium driven by Playwright, against a real
``kitaru serve``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kitaru_server import REVIEW_FLOW, SERVER_FLOWS, Served, start_server, wait_for_status

API = "/api/v1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_server(tmp_path_factory.mktemp("ui"), REVIEW_FLOW, SERVER_FLOWS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Chromium keeps caches under HOME whatever its profile: give it a home of its own.
    home = {**os.environ, "HOME": str(tmp_path_factory.mktemp("chromium-home"))}
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=home
        )
        yield launched
        launched.close()


class UI:
    """A signed-in browser tab, and what went wrong in it."""

    def __init__(self, browser: Any, served: Served, scope: str, width: int = 1280) -> None:
        self.served = served
        self.context = browser.new_context(viewport={"width": width, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(served.url + "/")
        self.page.fill("#token", served.tokens[scope])
        self.page.click("form button[type=submit]")
        self.page.wait_for_selector("#executions")

    def go(self, hash_: str, ready: str) -> Any:
        self.page.goto(f"{self.served.url}/{hash_}")
        return self.page.wait_for_selector(ready)

    def close(self) -> None:
        self.context.close()
        assert self.errors == []
        # Nothing is loaded from anywhere but the server (no CDN, no fonts, no trackers).
        elsewhere = [
            u for u in self.requests if not u.startswith((self.served.url, "data:", "blob:"))
        ]
        assert elsewhere == []


@pytest.fixture
def ui(browser: Any, served: Served) -> Iterator[Any]:
    opened: list[UI] = []

    def open_as(scope: str = "admin", width: int = 1280) -> UI:
        opened.append(UI(browser, served, scope, width))
        return opened[-1]

    yield open_as
    for tab in opened:
        tab.close()


def _start(served: Served, flow: str, args: dict[str, Any], key: str | None = None) -> str:
    headers = {"Idempotency-Key": key} if key else {}
    with served.client("run") as runner:
        started = runner.post(
            f"{API}/flows/{flow}/executions?wait=30", json={"args": args}, headers=headers
        )
    assert started.status_code in (200, 201), started.text
    return str(started.json()["exec_id"])


def test_signing_in_keeps_the_token_in_a_strict_httponly_cookie(ui: Any, served: Served) -> None:
    tab = ui("read")
    cookies = {c["name"]: c for c in tab.context.cookies()}
    session = cookies["kitaru_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert tab.page.evaluate("document.cookie") == ""  # no script can read it
    assert "test-read (read)" in tab.page.inner_text("#who")
    tab.page.click("#sign-out")
    tab.page.wait_for_selector("#token")
    wrong = tab.page
    wrong.fill("#token", "kitaru_000000000000_" + "x" * 43)
    wrong.click("form button[type=submit]")
    assert "not valid" in wrong.wait_for_selector("form .error:not(:empty)").inner_text()


def test_approving_the_review_in_the_inbox_completes_it_on_screen(ui: Any, served: Served) -> None:
    exec_id = _start(served, "review", {"topic": "durable agents"})
    tab = ui("input")
    card = tab.go("#/inbox", f"article[data-exec='{exec_id}']")
    assert "Approve draft?" in card.inner_text()
    # What is being approved: the draft, the step before the wait.
    card.query_selector("details.before summary").click()
    tab.page.wait_for_selector(f"article[data-exec='{exec_id}'] details.before pre")
    approved = card.query_selector("details.before").inner_text()
    assert "draft" in approved and "a fact" in approved
    tab.page.evaluate("window.__same_page = true")
    card.query_selector("button:has-text('Approve')").click()
    tab.page.wait_for_selector(f"article[data-exec='{exec_id}'] .badge.s-completed")
    assert tab.page.evaluate("window.__same_page") is True  # followed live, no reload
    with served.client("read") as reader:
        done = wait_for_status(reader, exec_id, ("completed",))
    assert done["result"]["published"] is True


def test_after_an_answer_the_inbox_shows_the_next_question_and_the_status(
    ui: Any, served: Served
) -> None:
    exec_id = _start(served, "interview", {"name": "Ada"})
    tab = ui("input")
    card = tab.go("#/inbox", f"article[data-exec='{exec_id}'][data-wait='age']")
    card.query_selector("input").fill("36")
    card.query_selector("button[type=submit]").click()
    # No reload: the second question comes as its own card.
    tab.page.wait_for_selector(f"article[data-exec='{exec_id}'][data-wait='hire']")
    answered = tab.page.inner_text(f"article[data-exec='{exec_id}'][data-wait='age']")
    assert "Status: waiting" in answered and "Answered with 36" in answered


def test_a_form_chooses_nothing_for_you_and_points_at_the_wrong_field(
    ui: Any, served: Served
) -> None:
    exec_id = _start(served, "rate", {"item": "the form"})
    tab = ui("input")
    card = tab.go("#/inbox", f"article[data-exec='{exec_id}']")
    verdict = card.query_selector("select[name=verdict]")
    assert verdict.evaluate("s => s.value") == ""  # a required Literal is not pre-chosen
    score = card.query_selector("input[name=score]")
    score.focus()
    tab.page.keyboard.type("1e400")
    card.query_selector("button[type=submit]").click()
    error = card.query_selector(".field-error")
    assert "score is not a number this form can send" in error.inner_text()
    assert score.get_attribute("aria-invalid") == "true"
    assert score.get_attribute("aria-describedby") == error.get_attribute("id")
    assert tab.page.evaluate("document.activeElement.name") == "score"
    score.fill("3")
    card.query_selector("button[type=submit]").click()
    assert "verdict is required: choose one" in error.inner_text()
    assert verdict.get_attribute("aria-invalid") == "true"
    assert score.get_attribute("aria-invalid") is None
    assert tab.page.evaluate("document.activeElement.name") == "verdict"


SEED_WAITS = """
import time
from kitaru_core.store.metadata_store import get_store
from kitaru_core.store.records import ExecutionRecord
store = get_store()
for i in range({n}):
    record = ExecutionRecord(id=f"seeded-{{i:04d}}", flow_name="approval", flow_ref="x:approval",
                             status="waiting", stack="local", created_at=time.time())
    store.create_execution(record, [])
    store.waits.create_pending(exec_id=record.id, name="ok", position=0, question=f"Seeded {{i}}?",
                               schema={{"type": "boolean"}}, schema_name="bool", metadata={{"amount": i}})
"""


def test_the_inbox_shows_a_page_of_many_waits_and_the_badge_counts_without_the_list(
    browser: Any, tmp_path: Path
) -> None:
    server = start_server(tmp_path, SERVER_FLOWS)
    try:
        seeded = subprocess.run(
            [sys.executable, "-c", SEED_WAITS.format(n=120)],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert seeded.returncode == 0, seeded.stderr
        tab = UI(browser, server, "admin")
        tab.go("#/inbox", "#inbox article")
        assert len(tab.page.query_selector_all("#inbox article")) == 50
        assert tab.page.inner_text("#inbox-total") == "120 waits for an answer; the oldest 50 shown"
        assert tab.page.inner_text("#inbox article h2") == "Seeded 0?"
        tab.page.click("button:has-text('Show more')")
        tab.page.wait_for_function(
            "() => document.querySelectorAll('#inbox article').length === 100"
        )
        tab.page.fill("#inbox-metadata", "amount=7")  # by what the wait is about
        tab.page.wait_for_function("() => document.querySelectorAll('#inbox article').length === 1")
        assert tab.page.inner_text("#inbox article h2") == "Seeded 7?"
        tab.page.fill("#inbox-metadata", "")
        tab.page.fill("#inbox-flow", "rate")  # a flow with no waits: none shown
        tab.page.wait_for_selector("#inbox-total:has-text('the oldest 0 shown')")
        # Elsewhere, a new wait moves the badge; only the count is fetched for it.
        tab.go("#/executions", "#executions")
        assert tab.page.inner_text("#inbox-count") == "120"
        tab.requests.clear()
        _start(server, "approval", {"n": 1})
        tab.page.wait_for_function(
            "() => document.querySelector('#inbox-count').textContent === '121'"
        )
        listed = [u for u in tab.requests if "/api/v1/waits" in u and "/waits/count" not in u]
        assert listed == []
        tab.close()
    finally:
        server.stop()


def test_a_wrong_value_is_refused_with_the_schemas_message(ui: Any, served: Served) -> None:
    exec_id = _start(served, "rate", {"item": "the draft"})
    tab = ui("input")
    card = tab.go("#/inbox", f"article[data-exec='{exec_id}']")
    card.query_selector("input[name=score]").fill("9")
    card.query_selector("select[name=verdict]").select_option(label="revise")
    card.query_selector("button[type=submit]").click()
    message = tab.page.wait_for_selector(f"article[data-exec='{exec_id}'] .field-error:not(:empty)")
    assert message.inner_text() == "score must be at most 5"
    # The server checks too: a value sent past the browser's check is refused with
    # the schema's own message, and nothing is stored.
    refused = tab.page.evaluate(
        """async ([id]) => {
            const s = await (await fetch('/ui/session')).json();
            const r = await fetch(`/api/v1/executions/${id}/input`, {method: 'POST',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf},
              body: JSON.stringify({value: {score: 0, verdict: 'ship'}})});
            return [r.status, (await r.json()).detail];
        }""",
        [exec_id],
    )
    assert refused[0] == 422 and "must be Rating" in refused[1]
    card.query_selector("input[name=score]").fill("4")
    card.query_selector("button[type=submit]").click()
    tab.page.wait_for_selector(f"article[data-exec='{exec_id}'] .badge.s-completed")
    with served.client("read") as reader:
        assert wait_for_status(reader, exec_id, ("completed",))["result"] == {
            "score": 4,
            "verdict": "revise",
            "comment": "",
        }


def test_replay_from_draft_with_an_override_then_compare(ui: Any, served: Served) -> None:
    source = _start(served, "review", {"topic": "replays"})
    with served.client("input") as answerer:
        answerer.post(f"{API}/executions/{source}/input", json={"value": True})
    with served.client("read") as reader:
        wait_for_status(reader, source, ("completed",))
    tab = ui("run")
    tab.go(f"#/execution/{source}", "#replay")
    tab.page.select_option("#replay-from", label="#2 draft")
    tab.page.fill("#replay-overrides", '{"checkpoint.research": ["a new fact"')
    tab.page.click("#replay button[type=submit]")
    error = tab.page.wait_for_selector("#replay .field-error:not(:empty)")
    assert "not valid JSON" in error.inner_text()
    tab.page.fill("#replay-overrides", '{"checkpoint.nope": 1}')
    tab.page.click("#replay button[type=submit]")
    tab.page.wait_for_function(
        "() => document.querySelector('#replay .field-error').textContent.includes('nope')"
    )
    tab.page.fill("#replay-overrides", '{"checkpoint.research": ["a new fact"]}')
    tab.page.click("#replay button[type=submit]")
    tab.page.wait_for_function(f"() => !location.hash.includes('{source}')")
    replay_id = tab.page.evaluate("decodeURIComponent(location.hash.split('/')[2])")
    tab.page.wait_for_selector("#status .badge.s-waiting")
    assert tab.page.query_selector("#timeline .bar.journal") is not None  # reused steps
    tab.page.click("text=compare with its original")
    tab.page.wait_for_selector("#diff-table")
    statuses = {
        row.get_attribute("data-step"): row.get_attribute("data-status")
        for row in tab.page.query_selector_all("#diff-table tr[data-step]")
    }
    assert statuses["research"] == "changed" and statuses["draft"] == "changed"
    assert "a new fact" in tab.page.inner_text("#comparison")
    assert replay_id != source


def test_the_memory_page_shows_a_keys_history(ui: Any, served: Served) -> None:
    with served.client("admin") as admin:
        path = f"{API}/memory/namespace/ui-team/style"
        admin.put(path, json={"value": {"tone": "plain"}})
        admin.put(path, json={"value": {"tone": "warm", "length": "short"}})
        admin.delete(path)
        admin.put(path, json={"value": {"tone": "warm"}})
    tab = ui("read")
    tab.go("#/memory/namespace/ui-team/style", "#memory-history .versions")
    history = tab.page.inner_text("#memory-history")
    assert "v4" in history and "deleted (tombstone)" in history and "v1" in history
    assert '"tone": "warm"' in tab.page.inner_text("#version-diff")
    tab.page.select_option("#v-from", label="v1")
    tab.page.select_option("#v-to", label="v2")
    diff_text = tab.page.inner_text("#version-diff")
    assert '-   "tone": "plain"' in diff_text and '+   "length": "short"' in diff_text
    assert tab.page.query_selector("#mem-value") is None  # a read token cannot write
    # An admin writes the key whose history is shown: the page shows the new version.
    admin = ui("admin")
    admin.go("#/memory/namespace/ui-team/style", "#mem-key")
    admin.page.click("form:has(#mem-key) button[type=submit]")  # no key: refused here
    assert "a key is required" in admin.page.inner_text("form:has(#mem-key) .field-error")
    admin.page.fill("#mem-key", "style")
    admin.page.fill("#mem-value", '{"tone": "dry"}')
    admin.page.click("form:has(#mem-key) button[type=submit]")
    admin.page.wait_for_function(
        "() => document.querySelector('#memory-history ol li strong')?.textContent === 'v5'"
    )
    assert admin.page.inner_text("form:has(#mem-key) .field-error") == ""
    assert admin.page.query_selector("[aria-pressed]") is None
    assert admin.page.inner_text(".list-buttons [aria-current=true]") == "namespace: ui-team"


def test_a_read_token_sees_no_button_it_cannot_use_and_forged_posts_fail(
    ui: Any, served: Served
) -> None:
    exec_id = _start(served, "approval", {"n": 5})
    reader = ui("read")
    card = reader.go("#/inbox", f"article[data-exec='{exec_id}']")
    assert card.query_selector("button") is None
    reader.go(f"#/execution/{exec_id}", "#pending-wait")
    assert reader.page.query_selector("button[data-action]") is None
    assert reader.page.query_selector("#replay") is None
    forged = reader.page.evaluate(
        """async ([id]) => {
            const s = await (await fetch('/ui/session')).json();
            const r = await fetch(`/api/v1/executions/${id}/input`, {method: 'POST',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf},
              body: JSON.stringify({value: true})});
            return r.status;
        }""",
        [exec_id],
    )
    assert forged == 403
    admin = ui("admin")
    admin.go(f"#/execution/{exec_id}", "#pending-wait")
    assert admin.page.query_selector("button[data-action=cancel]") is not None
    no_csrf = admin.page.evaluate(
        """async ([id]) => {
            const r = await fetch(`/api/v1/executions/${id}/input`, {method: 'POST',
              headers: {'Content-Type': 'application/json'}, body: JSON.stringify({value: true})});
            return [r.status, (await r.json()).detail];
        }""",
        [exec_id],
    )
    assert no_csrf[0] == 403 and "X-CSRF-Token" in no_csrf[1]
    with served.client("read") as client:
        assert client.get(f"{API}/executions/{exec_id}").json()["status"] == "waiting"


def test_the_executions_page_filters_pages_and_follows_new_runs(ui: Any, served: Served) -> None:
    for i in range(3):
        _start(served, "echo", {"text": f"row {i}"}, key=f"ui-echo-{i}")
    tab = ui("read")
    tab.page.select_option("#f-status", "completed")
    tab.page.fill("#f-flow", "echo")
    tab.page.wait_for_selector("#executions tr[data-exec='ui-echo-2']")
    tab.page.fill("#f-q", "ui-echo-1")
    tab.page.wait_for_function(
        "() => document.querySelectorAll('#executions tbody tr[data-exec]').length === 1"
    )
    assert tab.page.query_selector("#executions tr[data-exec='ui-echo-1']") is not None
    tab.page.fill("#f-q", "")
    tab.page.wait_for_selector("#executions tr[data-exec='ui-echo-0']")
    _start(served, "echo", {"text": "late"}, key="ui-echo-late")  # appears without reload
    tab.page.wait_for_selector("#executions tr[data-exec='ui-echo-late']")
    # The filters are in the address: a reload (or a link) shows the same view.
    tab.page.fill("#f-q", "ui-echo-2")
    tab.page.wait_for_function("() => location.hash.includes('q=ui-echo-2')")
    assert "status=completed" in tab.page.evaluate("location.hash")
    tab.page.reload()
    tab.page.wait_for_selector("#executions tr[data-exec='ui-echo-2']")
    assert tab.page.input_value("#f-q") == "ui-echo-2"
    assert tab.page.input_value("#f-status") == "completed"
    assert len(tab.page.query_selector_all("#executions tbody tr[data-exec]")) == 1


def test_a_retried_execution_shows_its_failed_attempt_and_where_the_retry_began(
    ui: Any, served: Served, tmp_path: Path
) -> None:
    exec_id = _start(served, "flaky", {"marker": str(tmp_path / "ran-once")})
    with served.client("run") as runner:
        assert wait_for_status(runner, exec_id, ("failed",))
        assert runner.post(f"{API}/executions/{exec_id}/retry").status_code == 200
        wait_for_status(runner, exec_id, ("completed",))
    tab = ui("read")
    tab.go(f"#/execution/{exec_id}", "#timeline .run-start")
    assert tab.page.inner_text("#timeline .run-start") == "run 2"
    # The failed attempt of run 1 is on the timeline beside the attempt that completed.
    tab.page.click("#timeline .bar.failed[data-earlier='1']")
    tab.page.wait_for_selector("#step-earlier")
    assert "RuntimeError: the first run fails here" in tab.page.inner_text("#step-error")
    completed = tab.page.query_selector_all(
        "#timeline .bar[data-step='first_time_fails']:not(.failed)"
    )
    assert len(completed) == 1
    header = tab.page.inner_text("#view .row .muted")
    assert "(run 2; " in header and "since the first start" in header


def test_search_totals_compare_two_and_cancel_many_from_the_list(ui: Any, served: Served) -> None:
    for i in range(2):
        _start(served, "interview", {"name": f"Grace{i}"}, key=f"ui-bulk-{i}")
    tab = ui("run")
    # The flow filter takes any part of a name (waited for until only those rows show).
    tab.page.fill("#f-flow", "tervie")
    tab.page.wait_for_function(
        "() => location.hash.includes('flow=tervie') && [...document.querySelectorAll("
        "'#executions tbody tr[data-exec]')].every((r) => r.textContent.includes('interview'))"
    )
    # Free text finds a wait's question: only this test's two executions ask it.
    tab.page.fill("#f-q", "old is grace")
    tab.page.wait_for_function(
        "() => document.querySelector('#view p.muted[aria-live]').textContent"
        ".startsWith('2 executions match')"
    )
    shown = {r.get_attribute("data-exec") for r in tab.page.query_selector_all("tr[data-exec]")}
    assert shown == {"ui-bulk-0", "ui-bulk-1"}
    tab.page.fill("#f-q", "")  # a cancelled execution asks nothing: keep the flow filter only
    tab.page.wait_for_function("() => !location.hash.includes('q=')")
    started = tab.page.get_attribute("#executions tr[data-exec='ui-bulk-0'] time", "title")
    assert started and re.search(r"\d\d:\d\d:\d\d \S+$", started)  # absolute on hover
    for i in range(2):
        tab.page.check(f"#executions tr[data-exec='ui-bulk-{i}'] input[type=checkbox]")
    tab.page.once("dialog", lambda dialog: dialog.accept())
    tab.page.click("#selection button:has-text('Cancel selected (2)')")
    tab.page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll("
        "'#executions tr[data-exec^=\"ui-bulk-\"]')];"
        " return rows.length === 2 && rows.every((r) => r.textContent.includes('cancelled')); }"
    )
    for i in range(2):
        tab.page.check(f"#executions tr[data-exec='ui-bulk-{i}'] input[type=checkbox]")
    tab.page.click("#compare-selected")
    tab.page.wait_for_selector("#diff-table")
    assert "ui-bulk-" in tab.page.evaluate("location.hash")


def test_text_from_users_and_models_is_shown_as_text(ui: Any, served: Served) -> None:
    hostile = "<img src=x onerror=\"document.title='owned'\">"
    exec_id = _start(served, "echo", {"text": hostile})
    tab = ui("read")
    tab.go(f"#/execution/{exec_id}", "#result pre")
    assert tab.page.inner_text("#result pre") == json.dumps(hostile.upper())[1:-1].replace(
        '\\"', '"'
    )
    assert tab.page.query_selector("#result img, #inputs img") is None
    assert tab.page.title() == "Kitaru"
    shown = json.loads(served.kitaru("executions", "get", exec_id, "-o", "json").stdout)
    assert shown["code_version"]  # the code it ran, on its page too
    assert tab.page.inner_text("#code-version") == f"code {shown['code_version']}"
    # Started over the API with the run token: its name is on the page.
    assert shown["started_by"] == "test-run"
    assert tab.page.inner_text("#started-by") == "started by test-run"


def test_the_step_debugger_opens_from_the_keyboard_for_a_checkpoint_and_its_llm_call(
    ui: Any, served: Served
) -> None:
    exec_id = _start(served, "review", {"topic": "debuggers"})  # stops at its wait
    tab = ui("read")
    tab.go(f"#/execution/{exec_id}", "#timeline .bar[data-step='draft']")
    assert tab.page.query_selector("#step-panel").is_hidden()
    # Keyboard only: a bar takes focus, Enter opens it, Tab goes to the next step's.
    tab.page.focus("#timeline .bar[data-step='research']")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_selector("#step-panel #step-output-value")
    assert tab.page.inner_text("#step-title") == "#1 research"
    assert json.loads(tab.page.inner_text("#step-output-value")) == ["a fact"]
    assert tab.page.inner_text("#step-inputs") == "Inputs\ntopic\n'debuggers'"
    llm = tab.page.inner_text("#step-panel .llm-call")
    assert "LLM call: fast" in llm and "tokens" in llm and "cost" in llm
    tab.page.wait_for_selector("#step-panel .llm-prompt pre")
    assert "List the key facts about debuggers" in tab.page.inner_text(".llm-prompt")
    assert "a fact" in tab.page.inner_text(".llm-response")
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.dataset.step") == "draft"
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_function(
        "() => document.querySelector('#step-title').textContent === '#2 draft'"
    )
    # Waiting for an answer: no Resume that would do nothing.
    admin = ui("admin")
    admin.go(f"#/execution/{exec_id}", "#pending-wait")
    assert admin.page.query_selector("button[data-action=resume]") is None


def test_the_step_debugger_shows_why_a_step_failed_and_cancel_asks_first(
    ui: Any, served: Served
) -> None:
    failed = _start(served, "breaks", {"text": "luck"})
    tab = ui("admin")
    tab.go(f"#/execution/{failed}", "#timeline .bar.failed")
    tab.page.click("#timeline .bar.failed")
    tab.page.wait_for_selector("#step-error")
    assert "ValueError: no luck" in tab.page.inner_text("#step-error")
    assert "Traceback" in tab.page.inner_text("#step-error")
    assert "raise ValueError" in tab.page.inner_text("#step-error pre")
    assert tab.page.inner_text("#step-inputs") == "Inputs\ntext\n'luck'"
    # What the flow printed and logged is in its log, the log record with its zone.
    log = tab.page.inner_text("#log")
    assert "trying luck" in log
    assert re.search(
        r"\d\d:\d\d:\d\d[+-]\d{4} WARNING server_flows: luck is not going to work", log
    )
    # The same step from the table, by its row.
    tab.page.click("#steps summary")
    tab.page.click("#steps tr[data-position='0']")
    assert tab.page.inner_text("#step-title") == "#0 brittle"
    # Cancel asks before it acts: dismissed, nothing happens; accepted, it is cancelled.
    waiting = _start(served, "review", {"topic": "cancelled"})
    tab.go(f"#/execution/{waiting}", "button[data-action=cancel]")
    tab.page.once("dialog", lambda dialog: dialog.dismiss())
    tab.page.click("button[data-action=cancel]")
    assert (
        json.loads(served.kitaru("executions", "get", waiting, "-o", "json").stdout)["status"]
        == "waiting"
    )
    tab.page.once("dialog", lambda dialog: dialog.accept())
    tab.page.click("button[data-action=cancel]")
    tab.page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('cancelled')"
    )


def test_children_are_told_apart_and_linked_to_their_parent(ui: Any, served: Served) -> None:
    parent = _start(served, "fan_out", {"n": 3}, key="ui-parent")
    tab = ui("run")
    tab.page.fill("#f-q", "ui-parent")
    tab.page.wait_for_selector("#executions tr[data-exec='ui-parent.2']")
    for n in range(3):
        row = tab.page.inner_text(f"#executions tr[data-exec='ui-parent.{n}']")
        assert f"ui-parent.{n}" in row and "child of ui-parent" in row
    tab.page.click("#executions tr[data-exec='ui-parent.1'] .child-of a")
    tab.page.wait_for_selector("#replay")
    assert tab.page.inner_text("h1") == f"Execution {parent}"
    # Its steps are child flows: nothing to replay from, and no form sends from: 0.
    assert "Nothing to replay from" in tab.page.inner_text("#replay")
    assert tab.page.query_selector("#replay-from") is None
    # A flow step opens its child, which leads back to its parent.
    tab.page.click("#timeline .bar[data-position='1']")
    tab.page.click("#step-facts a")
    tab.page.wait_for_selector("#parent")
    assert tab.page.inner_text("#parent") == f"Child of {parent} (its step #1)"


def test_a_deep_link_survives_signing_in_and_times_name_their_zone(
    browser: Any, served: Served
) -> None:
    exec_id = _start(served, "echo", {"text": "deep"})
    context = browser.new_context(timezone_id="Europe/Berlin")
    page = context.new_page()
    try:
        page.goto(f"{served.url}/#/execution/{exec_id}")
        page.wait_for_selector("#token")
        page.fill("#token", served.tokens["read"])
        page.click("form button[type=submit]")
        page.wait_for_selector("#timeline")  # the page asked for, not the list
        assert exec_id in page.inner_text("h1")
        created = page.inner_text("#view .row .muted")
        assert re.search(r"created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\+1", created), created
        page.click("#time-zone")
        page.wait_for_function(
            "() => document.querySelector('#view .row .muted')?.textContent.includes('UTC')"
        )
        assert page.inner_text("#time-zone") == "Times: UTC"
    finally:
        context.close()


def test_stacks_plugins_and_schedules_pages(ui: Any, served: Served) -> None:
    made = served.kitaru(
        "schedule",
        "create",
        "ui-nightly",
        f"{SERVER_FLOWS}:echo",
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Asia/Tokyo",
        "--arg",
        "text=night",
    )
    assert made.returncode == 0, made.stderr
    tab = ui("admin")
    section = tab.go("#/stacks", "section[data-stack='local']")
    assert "active" in section.inner_text() and "installed" in section.inner_text()
    assert "builtin" in tab.page.inner_text("#plugins")
    row = tab.go("#/schedules", "tr[data-schedule='ui-nightly']")
    assert "0 3 * * *" in row.inner_text() and len(row.query_selector_all("li")) == 5
    # Its firings in its own zone, named: 03:00 in Tokyo, whatever the browser's zone.
    firings = [li.inner_text() for li in row.query_selector_all("li")]
    assert all(f.endswith(" 03:00:00 GMT+9") for f in firings), firings
    row.query_selector("button:has-text('Pause')").click()
    tab.page.wait_for_selector("tr[data-schedule='ui-nightly'] button:has-text('Resume')")
    assert "paused" in tab.page.inner_text("tr[data-schedule='ui-nightly']")


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_renders_at_desktop_and_phone_width_in_both_themes(
    ui: Any, served: Served, width: int, theme: str
) -> None:
    exec_id = _start(served, "review", {"topic": "layouts"}, key="ui-layout")
    tab = ui("admin", width=width)
    tab.page.evaluate(f"localStorage.setItem('kitaru-theme', '{theme}')")
    tab.page.reload()
    pages = {
        "#/executions": "#executions tbody tr",
        "#/inbox": "#inbox article",
        f"#/execution/{exec_id}": "#timeline",
        f"#/compare/{exec_id}/{exec_id}": "#diff-table",
        "#/memory": "#view h1",
        "#/stacks": "section[data-stack]",
        "#/schedules": "#view h1",
    }
    for hash_, ready in pages.items():
        tab.go(hash_, ready)
        assert tab.page.evaluate("document.documentElement.dataset.theme") == theme
        overflow = tab.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{hash_} is wider than {width} px by {overflow} px"
        # Every table's header cells line up with its cells: a hidden cell hides its header.
        misaligned = tab.page.evaluate(
            """() => [...document.querySelectorAll('table')].filter((t) => {
                const head = t.tHead && t.tHead.rows[0];
                const row = t.tBodies[0] && [...t.tBodies[0].rows].find((r) => r.cells.length > 1);
                if (!head || !row) return false;
                const shown = (cells) => [...cells].filter((c) => c.offsetParent !== null).length;
                return shown(head.cells) !== shown(row.cells);
            }).map((t) => t.id || t.parentElement.id || 'a table')"""
        )
        assert misaligned == [], f"{hash_}: headers over the wrong columns in {misaligned}"
    # Keyboard: from the top of the page, Tab reaches every page of the navigation and
    # the header's buttons; Shift+Tab from the brand reaches the skip link.
    tab.page.mouse.click(1, 1)
    reached = []
    for _ in range(10):
        tab.page.keyboard.press("Tab")
        reached.append(tab.page.evaluate("document.activeElement.textContent.trim()"))
    for name in ("Kitaru", "Executions", "Compare", "Memory", "Stacks", "Schedules", "Sign out"):
        assert name in reached, reached
    tab.page.focus(".brand")
    tab.page.keyboard.press("Shift+Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to content"


AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
"""axe-core 4.14.1 (MPL-2.0, Deque Systems), vendored: the tests need no network."""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_no_page_has_a_serious_or_critical_accessibility_violation(
    ui: Any, served: Served, theme: str
) -> None:
    exec_id = _start(served, "review", {"topic": "accessible"}, key=f"ui-axe-{theme}")
    failed = _start(served, "breaks", {"text": "axe"})
    tab = ui("admin")
    tab.page.evaluate(f"localStorage.setItem('kitaru-theme', '{theme}')")
    tab.page.reload()
    pages = {
        "#/executions": "#executions tbody tr",
        "#/inbox": "#inbox article",
        f"#/execution/{exec_id}": "#timeline",
        f"#/execution/{failed}": "#timeline",
        f"#/compare/{exec_id}/{failed}": "#diff-table",
        "#/memory": "#view h1",
        "#/stacks": "section[data-stack]",
        "#/schedules": "#view h1",
    }
    found = {}
    for hash_, ready in pages.items():
        tab.go(hash_, ready)
        if hash_.startswith("#/execution/"):  # with the step debugger open
            tab.page.click("#timeline .bar")
            tab.page.wait_for_selector("#step-panel:not([hidden]) #step-title")
        # Evaluated, not a <script>: the page's Content-Security-Policy stays as it is.
        tab.page.evaluate(AXE)
        violations = tab.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`)"""
        )
        if violations:
            found[hash_] = violations
    assert found == {}, json.dumps(found, indent=1)
