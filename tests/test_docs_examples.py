"""Every example in README.md and docs/*.md runs, verbatim.

Fenced blocks tagged ```python or ```sh are run, in document order, from a fresh temporary directory
in which the repository's ``examples/`` folder is available as ``examples/``; blocks tagged
```text or ```console (output, long-lived servers, a browser) are not. One driver process per
document runs its Python blocks in one shared namespace (a later block may use what an earlier one
made, as a reader would) and each sh block with ``bash -euo pipefail``; the first failure names the
document, the block and its line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = ("python", "sh")
PER_DOCUMENT_TIMEOUT_S = 300

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


def code_blocks(text: str) -> list[tuple[str, int, str]]:
    """``(language, first line number, code)`` of every fenced block (CommonMark fences: three or
    more backticks or tildes, closed by a fence of the same kind at least as long)."""
    out: list[tuple[str, int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        lang = info.split()[0].lower() if info else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if (
                close
                and close.group("fence")[0] == fence[0]
                and len(close.group("fence")) >= len(fence)
                and not close.group("info").strip()
            ):
                break
            body.append(lines[j].removeprefix(m.group("indent")))
            j += 1
        out.append((lang, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return out


_DRIVER = r"""
import json, subprocess, sys, traceback
doc, blocks = json.loads(sys.stdin.read())
ns = {"__name__": "__main__"}
for k, (lang, line, code) in enumerate(blocks, 1):
    where = f"{doc}: block {k} (```{lang} at line {line})"
    if lang == "python":
        try:
            exec(compile(code, f"{doc}:{line}", "exec"), ns)
        except BaseException:
            print(f"FAILED {where}\n{code}\n{traceback.format_exc()}", flush=True)
            sys.exit(1)
    else:
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", code], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAILED {where}: exit code {r.returncode}\n{code}\n--- stdout\n{r.stdout[-3000:]}"
                  f"\n--- stderr\n{r.stderr[-3000:]}", flush=True)
            sys.exit(1)
print(f"ok: {len(blocks)} blocks of {doc}")
"""


def _runnable(doc: Path) -> list[tuple[str, int, str]]:
    return [b for b in code_blocks(doc.read_text(encoding="utf-8")) if b[0] in RUN_LANGS]


@pytest.mark.parametrize("doc", [d for d in DOCS if _runnable(d)], ids=lambda d: str(d.relative_to(ROOT)))
def test_examples_run(doc: Path, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = dict(os.environ)
    # the `aegisfwd` command of the environment running the tests, first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    name = str(doc.relative_to(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        input=json.dumps([name, _runnable(doc)]),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=PER_DOCUMENT_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + "\n" + proc.stderr[-3000:]


def test_fence_parser() -> None:
    text = "a\n```python\nx = 1\n```\n\n````sh\necho '```'\n````\n~~~text\nno\n~~~\n```\nplain\n```\n"
    assert code_blocks(text) == [
        ("python", 3, "x = 1\n"),
        ("sh", 7, "echo '```'\n"),
        ("text", 10, "no\n"),
        ("", 13, "plain\n"),
    ]


def test_every_document_is_collected() -> None:
    # README and every docs/*.md, those of other features included as they land
    assert ROOT / "README.md" in DOCS and len(DOCS) == 1 + len(list((ROOT / "docs").glob("*.md")))
