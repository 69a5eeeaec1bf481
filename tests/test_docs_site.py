"""The docs site: mkdocs builds it, and headless Chromium uses it as a reader would.

The site is built into a temporary folder (mkdocs.yml + docs/ + generated/docs/ through
docs/_hooks/kemi_api.py), served on 127.0.0.1 by a thread, and driven over the Chrome
DevTools Protocol: type a function name into Material's search box, follow the first
result to the module page, read the function's signatures there. Screenshots go to
tests/artifacts/ (gitignored). Also: every "first script" of the getting-started page
loads in its engine (``kemi check``).
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pykemi.codegen.generate import ROOT, load
from pykemi.kemi import Spec

ARTIFACTS = ROOT / "tests" / "artifacts"
LANGS = ["Lua", "Python", "JavaScript", "Ruby", "Squirrel", "C"]
HAND_PAGES = [
    "getting-started",
    "configuration",
    "cfgengine",
    "callbacks",
    "rpc",
    "writing-a-module",
    "adding-a-language",
    "benchmarks",
    "architecture",
]


def target() -> tuple[str, str, str]:
    """(search term, KSR name, page path#anchor): t_relay once the tm spec exists."""
    if (ROOT / "spec" / "tm.yaml").exists():
        return "t_relay", "KSR.tm.t_relay", "api/tm/#ksr-tm-t-relay"
    return "send_reply", "KSR.sl.send_reply", "api/sl/#ksr-sl-send-reply"


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e .[docs])")
    pytest.importorskip("material", reason="mkdocs-material is not installed")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


# ---- the built site ----------------------------------------------------------------------


def test_site_has_hand_written_and_api_pages(site: Path, spec: Spec) -> None:
    assert (site / "index.html").is_file()
    for page in HAND_PAGES:
        assert (site / page / "index.html").is_file(), page
    assert (site / "api" / "index.html").is_file()
    assert (site / "api" / "modparams" / "index.html").is_file()
    home = (site / "index.html").read_text(encoding="utf-8")
    for m in spec.modules:
        page = site / "api" / m.name / "index.html"
        assert page.is_file(), m.name
        assert f'href="api/{m.name}/"' in home, f"{m.name} is missing from the nav"


def test_every_function_has_its_anchor_and_signatures(site: Path, spec: Spec) -> None:
    for m in spec.modules:
        html = (site / "api" / m.name / "index.html").read_text(encoding="utf-8")
        for e in m.exports:
            anchor = ("ksr-" + e.qualname).replace(".", "-").replace("_", "-").lower()
            assert f'id="{anchor}"' in html, f"{e.ksr_name}: no #{anchor}"
    sl = (site / "api" / "sl" / "index.html").read_text(encoding="utf-8")
    section = sl.split('id="ksr-sl-send-reply"', 1)[1].split("<h3", 1)[0]
    for lang in LANGS:
        assert f"<td>{lang}</td>" in section, lang
    assert "KSR::SL.send_reply: (Integer code, String reason) -&gt; Integer" in section
    assert "int ksr_sl_send_reply(sip_msg_t *msg, int code, str *reason)" in section
    assert "loadmodule &quot;sl.so&quot;" in section or 'loadmodule "sl.so"' in section


def test_search_index_finds_functions_by_name(site: Path, spec: Spec) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    titles = {d["title"]: d["location"] for d in index["docs"]}
    for e in spec.exports:
        assert e.ksr_name in titles, e.ksr_name
    term, name, location = target()
    assert titles[name] == location
    # the separator keeps snake_case names whole and splits KSR.tm.t_relay at the dots
    sep = re.compile(index["config"]["separator"])
    assert term in sep.split(name)


def test_globals_and_modparams_are_rendered(site: Path, spec: Spec) -> None:
    cfg = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "kemi:globals-table" not in cfg
    assert "<code>kemi.reply_route_callback</code>" in cfg
    assert "<code>children</code>" in cfg
    mp = (site / "api" / "modparams" / "index.html").read_text(encoding="utf-8")
    for m in spec.modules:
        for p in m.params:
            assert f"<code>{p.name}</code>" in mp, f"{m.name}.{p.name}"


# ---- the getting-started scripts load in their engines -------------------------------------

FIRST_SCRIPT = re.compile(
    r'=== "(?P<lang>\w+)"\n\n    `loadmodule "(?P<mod>\w+)\.so"`, '
    r'`modparam\("\w+", "load", "(?P<script>[\w.]+)"\)`, `cfgengine "(?P<engine>\w+)"`\n\n'
    r"    ```\w+\n(?P<code>.*?)\n    ```",
    re.S,
)


def _first_scripts() -> list[tuple[str, str, str, str, str]]:
    text = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    return [
        (m["lang"], m["mod"], m["script"], m["engine"], m["code"])
        for m in FIRST_SCRIPT.finditer(text)
    ]


def test_getting_started_has_a_script_per_language() -> None:
    assert [s[0] for s in _first_scripts()] == ["Lua", "Python", "JavaScript", "Ruby", "Squirrel"]


@pytest.mark.parametrize("case", _first_scripts(), ids=lambda c: c[0])
def test_getting_started_script_loads(case: tuple[str, str, str, str, str], tmp_path: Path) -> None:
    lang, mod, script, engine, code = case
    (tmp_path / script).write_text(
        "\n".join(line[4:] for line in code.splitlines()) + "\n", encoding="utf-8"
    )
    (tmp_path / "kamailio.cfg").write_text(
        "listen=udp:127.0.0.1:5099\n"
        'loadmodule "sl.so"\nloadmodule "maxfwd.so"\n'
        f'loadmodule "{mod}.so"\nmodparam("{mod}", "load", "{script}")\ncfgengine "{engine}"\n',
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pykemi.runtime.cli", "check", str(tmp_path / "kamailio.cfg")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{lang}: {proc.stderr}"
    assert proc.stderr.rstrip().endswith(": ok"), proc.stderr


# ---- a reader in headless Chromium ----------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium is not installed (apt-get install chromium)")


class Cdp:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        websocket = pytest.importorskip("websocket", reason="websocket-client is not installed")
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, ev in enumerate(self.events):
                if ev["method"] == name:
                    return self.events.pop(i)
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
        raise AssertionError(f"no {name} within {timeout}s")

    def eval(self, expr: str) -> Any:
        res = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"{expr}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expr: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expr)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for: {expr}")

    def navigate(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cdp]:
    exe = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [
            exe,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cdp: Cdp | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        assert pages, "Chromium has no page target"
        cdp = Cdp(pages[0]["webSocketDebuggerUrl"])
        cdp.send("Page.enable")
        cdp.send("Runtime.enable")
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_search_finds_function_and_page_shows_signatures(served: str, browser: Cdp) -> None:
    term, name, location = target()
    browser.navigate(served)
    assert browser.wait_for("document.querySelector('input.md-search__input') !== null")
    # type into the search box as a reader does: focus it, then key in the text
    browser.eval("document.querySelector('input.md-search__input').focus()")
    browser.send("Input.insertText", text=term)
    browser.send(
        "Input.dispatchKeyEvent", type="keyUp", key="y", code="KeyY"
    )  # Material reads keyup
    results = browser.wait_for(
        "(() => { const a = [...document.querySelectorAll('a.md-search-result__link')];"
        " return a.length ? a.map(x => [x.href,"
        " (x.querySelector('h1, h2') || x).textContent.trim()]) : null })()"
    )
    titles = [title for _, title in results]
    assert name in titles, f"search for {term!r} did not list {name}: {titles[:10]}"
    href = results[titles.index(name)][0]
    assert re.sub(r"\?[^#]*", "", href).endswith(location), href

    # Material groups hits per page and folds all but the best under "N more on this
    # page": unfold the group when the function is in the folded part, as a reader does
    find = (
        "[...document.querySelectorAll('a.md-search-result__link')].find(a =>"
        " (a.querySelector('h1, h2') || a).textContent.trim()"
        f" === {json.dumps(name)})"
    )
    browser.eval(
        f"(() => {{ const d = {find}.closest('details');"
        " if (d && !d.open) d.querySelector('summary').click(); })()"
    )
    browser.wait_for(f"{find}.getBoundingClientRect().height > 0")
    browser.eval(f"{find}.scrollIntoView({{block: 'center'}})")
    browser.screenshot(ARTIFACTS / "docs_search.png")

    # follow the result, as a click does
    browser.events.clear()
    browser.eval(f"{find}.click()")
    browser.wait_event("Page.loadEventFired")
    anchor = location.split("#", 1)[1]
    assert browser.wait_for("location.pathname + location.hash").endswith(location)
    rows = browser.wait_for(f"""(() => {{
            const h = document.getElementById({json.dumps(anchor)});
            if (!h) return null;
            let el = h.nextElementSibling;
            while (el && !el.querySelector('table') && el.tagName !== 'TABLE') {{
                el = el.nextElementSibling;
            }}
            if (!el) return null;
            const t = el.tagName === 'TABLE' ? el : el.querySelector('table');
            return [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.innerText));
        }})()""")
    assert [r[0] for r in rows] == LANGS
    short = name.rsplit(".", 1)[1]
    for lang, text in rows:
        assert short in text, f"{lang}: {text}"
    assert rows[0][1].startswith(name + "(")  # Lua spelling: KSR.tm.t_relay(...)
    # the heading is on screen (scrolled to the anchor) when the screenshot is taken
    top = browser.eval(f"document.getElementById({json.dumps(anchor)}).getBoundingClientRect().top")
    assert 0 <= top < 900
    browser.screenshot(ARTIFACTS / "docs_function.png")
