"""The README, run in order in a fresh home, as a new user would.

- ```python blocks: a complete script runs; an excerpt must stand in the example it
  quotes; a fragment runs with the mocked LLM.
- ```yaml blocks parse; a whole stack file (one with ``name``) is a valid stack.
- ```bash blocks run line by line. ``export`` sets the environment; a ``# -> TEXT``
  comment is what the command prints (``ID`` and ``NEW_ID`` stand for the executions the
  ``run`` and ``replay`` before printed); ``# refused: TEXT`` is its one-line error. The
  two set-up commands name nox sessions, which must exist (CI runs them).
- ```text blocks are synopses: every ``kitaru`` command they name must exist.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import subprocess_env
from kitaru_core.stack import StackDefinition

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
BLOCKS = [
    (m.group(1), m.group(2), README[: m.start()].count("\n") + 1) for m in BLOCK.finditer(README)
]


def test_every_block_says_what_it_is() -> None:
    unlabeled = [
        line for lang, _body, line in BLOCKS if lang not in ("python", "yaml", "bash", "text")
    ]
    assert unlabeled == [], f"README blocks at lines {unlabeled} need a language"


class Session:
    """One user's shell: environment, working directory and the ids seen so far."""

    def __init__(self, tmp_path: Path) -> None:
        self.env = subprocess_env(COLUMNS="200", KITARU_HOME=str(tmp_path / "home"))
        self.env.pop("KITARU_DATABASE_URL", None)  # the README's default: SQLite in the home
        self.ids: dict[str, str] = {}

    def substitute(self, text: str) -> str:
        for name in ("NEW_ID", "ID"):
            if name in self.ids:
                text = re.sub(rf"\b{name}\b", self.ids[name], text)
        return text

    def run(self, argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=self.env, cwd=ROOT, input=stdin
        )

    def settle(self) -> None:
        """A person types slower than a background worker resumes: wait for it."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = self.run([sys.executable, "-m", "kitaru", "executions", "list", "-o", "json"])
            if listed.returncode != 0 or all(
                e["status"] != "running" for e in json.loads(listed.stdout)
            ):
                return
            time.sleep(0.1)


def split_comment(line: str) -> tuple[str, str]:
    """The command and its trailing ``# ...`` comment (a # inside quotes is kept)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:
        return line, ""
    command = " ".join(shlex.quote(w) for w in words)
    comment = line.split(" # ", 1)[1].strip() if " # " in line else ""
    return command, comment


def run_bash_line(session: Session, line: str, where: str) -> None:
    command, comment = split_comment(line)
    words = shlex.split(command)
    if not words:
        return
    if words[0] == "export":
        key, _, value = words[1].partition("=")
        session.env[key] = value
        return
    if words[:3] == ["python3", "-m", "venv"]:  # the line that puts kitaru on PATH
        check_setup_line(line, where)
        return
    if words[:3] == ["python3", "-m", "pip"]:  # the two set-up commands
        sessions = re.findall(r"nox -s (\w+)", line)
        noxfile = (ROOT / "noxfile.py").read_text()
        assert sessions and all(f"def {s}(" in noxfile for s in sessions), where
        return
    assert words[0] == "kitaru", f"{where}: a runnable block runs kitaru commands: {line}"
    argv = [sys.executable, "-m", "kitaru", *(session.substitute(w) for w in words[1:])]
    proc = session.run(argv)
    out = proc.stdout.strip()
    if comment.startswith("refused:"):
        expected = comment.removeprefix("refused:").strip()
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and len(lines) == 1, f"{where}: {line}\n{proc.stderr}"
        assert expected in lines[0], f"{where}: {line}\n{proc.stderr}"
        return
    assert proc.returncode == 0, f"{where}: {line}\n{proc.stdout}\n{proc.stderr}"
    if words[1] in ("run", "executions") and len(words) > 2 and words[1:3] != ["executions", "get"]:
        first = out.split()[0] if out else ""
        if re.fullmatch(r"[0-9a-f]{32}", first):
            session.ids["NEW_ID" if "ID" in session.ids else "ID"] = first
    if comment.startswith("->"):
        for claim in _claims(session.substitute(comment.removeprefix("->").strip())):
            assert claim(out), f"{where}: {line}\nexpected: {comment}\ngot:\n{out}"
    session.settle()


def check_setup_line(line: str, where: str) -> None:
    """It makes a virtual environment, activates it, and installs this checkout with
    extras that exist, whose console script is ``kitaru``; ``nox -s demo`` prints it."""
    import tomllib

    steps = [shlex.split(step) for step in line.split("&&")]
    assert steps[0][:3] == ["python3", "-m", "venv"], where
    venv = steps[0][3]
    assert steps[1] == [".", f"{venv}/bin/activate"], f"{where}: activate {venv}"
    assert steps[2][:3] == ["pip", "install", "-e"], where
    target = steps[2][3]
    assert target.startswith(".[") and target.endswith("]"), where
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = target[2:-1].split(",")
    assert set(extras) <= set(project["optional-dependencies"]), f"{where}: {extras}"
    assert "kitaru" in project["scripts"], where
    noxfile = (ROOT / "noxfile.py").read_text()
    assert f"SETUP_LINE = '{line.strip()}'" in noxfile, f"{where}: nox -s demo prints another line"


DIFF_STATUSES = ("only in a", "only in b", "changed", "same")


def _claims(expected: str) -> list[object]:
    """What a ``# -> ...`` comment promises about the output: its first part is printed
    as written; ``A, B changed`` / ``C only in a`` are rows of a diff; ``X and Y ran
    once`` are checkpoints of one attempt each."""
    first, *rest = (part.strip() for part in expected.split(";"))
    claims: list[object] = []
    for part in [first, *rest]:
        status = next((st for st in DIFF_STATUSES if part.endswith(" " + st)), None)
        if status is not None:
            names = re.split(r",\s*|\s+and\s+", part.removesuffix(" " + status))
            claims.extend(lambda out, n=n, st=status: _row(out, n, st) for n in names)
        elif part.endswith(" ran once"):
            names = re.split(r",\s*|\s+and\s+", part.removesuffix(" ran once"))
            claims.extend(lambda out, n=n: _row(out, n, "completed", "1") for n in names)
        else:
            claims.append(lambda out, text=part: text in out)
    return claims


def _row(out: str, name: str, *cells: str) -> bool:
    """Whether a table row for ``name`` holds each of ``cells``."""
    for line in out.splitlines():
        columns = [c.strip() for c in line.split("│")]
        if name in columns and all(cell in columns for cell in cells):
            return True
    return False


def check_python(body: str, session: Session, where: str, tmp_path: Path) -> None:
    if "if __name__ ==" in body:  # a complete script
        script = tmp_path / "readme_script.py"
        script.write_text(body)
        proc = session.run([sys.executable, str(script)])
        assert proc.returncode == 0, f"{where}\n{proc.stderr}"
        assert re.fullmatch(r"[0-9a-f]{32} completed None", proc.stdout.strip()), proc.stdout
        return
    if body.lstrip().startswith("@flow"):  # an excerpt of an example
        examples = "".join(p.read_text() for p in (ROOT / "examples").glob("*.py"))
        assert body.strip() in examples, f"{where}: the excerpt no longer matches examples/"
        return
    proc = session.run(
        [sys.executable, "-c", "import kitaru\n" + body + "\nprint(answer)"],
    )
    assert proc.returncode == 0, f"{where}\n{proc.stderr}"


def check_yaml(body: str, where: str) -> None:
    data = yaml.safe_load(body)
    if isinstance(data, dict) and "name" in data:
        StackDefinition.from_mapping(data, where)


def check_synopsis(body: str, session: Session, where: str) -> None:
    for line in body.splitlines():
        words = line.split("#")[0].split()
        if words[:1] != ["kitaru"] or len(words) < 2:
            continue
        path = [w for w in words[1:3] if re.fullmatch(r"[a-z]+", w)]
        if len(path) == 2 and path[0] in ("run",):
            path = path[:1]
        proc = session.run([sys.executable, "-m", "kitaru", *path, "--help"])
        assert proc.returncode == 0, f"{where}: `kitaru {' '.join(path)}` does not exist"


def test_the_readme_runs_in_order(tmp_path: Path) -> None:
    session = Session(tmp_path)
    session.env["KITARU_LLM_MOCK_RESPONSE"] = "Durable agents never pay twice for a step."
    for lang, body, line in BLOCKS:
        where = f"README.md:{line}"
        if lang == "python":
            check_python(body, session, where, tmp_path)
        elif lang == "yaml":
            check_yaml(body, where)
        elif lang == "text":
            check_synopsis(body, session, where)
        elif lang == "bash":
            for offset, text in enumerate(body.splitlines(), start=1):
                if text.strip() and not text.lstrip().startswith("#"):
                    run_bash_line(session, text, f"README.md:{line + offset}")
    assert set(session.ids) == {"ID", "NEW_ID"}  # the walk-through ran


@pytest.mark.parametrize("path", sorted((ROOT / "stacks").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_stack_file_is_a_valid_stack(path: Path) -> None:
    StackDefinition.from_file(path)
