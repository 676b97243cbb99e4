"""A headless Chromium driven over the Chrome DevTools Protocol, for the report's browser tests.

Only what the tests need: open a file, collect console errors, exceptions and dialogs, evaluate
JavaScript, take a screenshot. The DevTools websocket is spoken with ``websocket-client`` (a
dev dependency).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-allow-origins=*",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
]


def find_chromium() -> str:
    """The Chromium executable; fails the test (never skips) when there is none.

    There is no environment switch to skip: a variable left set in a shell profile or a CI
    configuration would turn these tests into skips for every later run. To leave them out of
    one run on purpose, say so on that run's command line (``--deselect tests/report/test_browser.py``).
    """
    for name in (
        os.environ.get("WHYBOX_CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
    ):
        if name and shutil.which(name):
            return str(shutil.which(name))
    pytest.fail(
        "headless Chromium is needed for the report's browser test but was not found on PATH "
        "(looked for chromium, chromium-browser, google-chrome, or $WHYBOX_CHROMIUM). Run "
        "`make system-deps` (as root it installs it; otherwise it prints the exact command), "
        "e.g. `sudo apt-get install chromium`, or set WHYBOX_CHROMIUM to a Chromium/Chrome "
        "executable."
    )


class Browser:
    """One headless Chromium with one page, driven over CDP."""

    def __init__(self, profile: Path, timeout: float = 30.0) -> None:
        import websocket  # websocket-client

        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._id = 0
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile / "chromium-stderr.log"
        with self.log.open("w") as err:  # a file, not a pipe: a full pipe would block Chromium
            self.proc = subprocess.Popen(
                [find_chromium(), *FLAGS, f"--user-data-dir={profile / 'data'}", "about:blank"],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        port = self._devtools_port()
        page = self._page_target(port)
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True
        )
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + self.timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            for line in text.splitlines():
                if "DevTools listening on ws://" in line:
                    return int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        pytest.fail("Chromium did not start its DevTools server:\n" + text[-3000:])

    def _page_target(self, port: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]
            time.sleep(0.1)
        self.close()
        pytest.fail("Chromium opened no page target")

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a CDP method and return its result; events that arrive meanwhile are kept."""
        self._id += 1
        call = self._id
        self.ws.send(json.dumps({"id": call, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == call:
                if "error" in msg:
                    raise RuntimeError(f"CDP {method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._event(msg)

    def _event(self, msg: dict[str, Any]) -> None:
        self.events.append(msg)
        if msg["method"] == "Page.javascriptDialogOpening":  # never leave the page blocked
            self._id += 1
            self.ws.send(
                json.dumps(
                    {
                        "id": self._id,
                        "method": "Page.handleJavaScriptDialog",
                        "params": {"accept": True},
                    }
                )
            )

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for e in self.events:
            if e["method"] == method:
                return e
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self._event(msg)
                if msg["method"] == method:
                    return msg
        raise TimeoutError(f"no {method} within {self.timeout} s")

    def open(self, path: Path) -> None:
        """Navigate to a local file and wait for its load event, then let it settle."""
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        self.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 200)))")

    def evaluate(self, expression: str) -> Any:
        res = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluating {expression!r} raised {res['exceptionDetails']}")
        return res["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors seen so far."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(
                    "console: " + " ".join(str(a.get("value", a)) for a in p.get("args", []))
                )
            elif e["method"] == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                out.append(
                    f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
                )
        return out

    def dialogs(self) -> list[str]:
        return [
            e["params"].get("message", "")
            for e in self.events
            if e["method"] == "Page.javascriptDialogOpening"
        ]

    def screenshot(self, path: Path) -> Path:
        """A full-page PNG screenshot."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
