"""`make system-deps` in a clean environment, and `make test`'s order of work.

The script ``scripts/system-deps.sh`` is run with a PATH that holds only the tools a test puts
there (a temp folder of symlinks and fakes): no Chromium, and either no apt-get, or a fake
apt-get that records its calls. Non-root is simulated two ways: a fake ``id`` that prints 1000
(with no sudo on PATH), and the script's own ``WHYBOX_SYSTEM_DEPS_NO_INSTALL=1``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "system-deps.sh"
BASH = shutil.which("bash")
EXACT = (
    "sudo sh -c 'DEBIAN_FRONTEND=noninteractive apt-get update -q && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
    "chromium fonts-dejavu-core libgl1 libglib2.0-0'"
)

pytestmark = pytest.mark.skipif(BASH is None, reason="bash is needed to run the set-up script")


def _tool(bin_dir: Path, name: str, body: str) -> Path:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _bin(tmp_path: Path, *, apt: bool, uid: int | None = None) -> tuple[Path, Path]:
    """A PATH folder with bash, optionally a recording fake apt-get and a fake ``id``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(BASH)
    log = tmp_path / "apt.log"
    if apt:  # "installs" chromium by dropping a stub on the PATH
        _tool(
            bin_dir,
            "apt-get",
            f'echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> {log}\n'
            f'case "$1" in install) printf "#!/bin/sh\\n" > {bin_dir}/chromium; '
            f"/bin/chmod 755 {bin_dir}/chromium;; esac\n",
        )
    if uid is not None:
        _tool(bin_dir, "id", f"echo {uid}\n")
    return bin_dir, log


def _run(bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent), **env}
    return subprocess.run(
        [BASH, str(SCRIPT)], env=clean, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_without_apt_it_stops_with_a_clear_message(tmp_path):
    bin_dir, _ = _bin(tmp_path, apt=False)
    res = _run(bin_dir)
    assert res.returncode != 0
    assert "headless Chromium" in res.stderr
    assert "has no apt-get" in res.stderr
    assert "WHYBOX_CHROMIUM" in res.stderr


@pytest.mark.parametrize("how", ["fake id prints 1000, no sudo", "WHYBOX_SYSTEM_DEPS_NO_INSTALL"])
def test_non_root_stops_with_the_exact_command_and_installs_nothing(tmp_path, how):
    if how.startswith("fake id"):
        bin_dir, log = _bin(tmp_path, apt=True, uid=1000)
        res = _run(bin_dir)
    else:
        bin_dir, log = _bin(tmp_path, apt=True, uid=0)  # even as root: check only
        res = _run(bin_dir, WHYBOX_SYSTEM_DEPS_NO_INSTALL="1")
    assert res.returncode == 1
    assert res.stdout == ""  # one message, on stderr
    assert "headless Chromium" in res.stderr
    assert EXACT in res.stderr
    assert "may not install" in res.stderr
    assert not log.exists()  # apt-get was never called
    assert not (bin_dir / "chromium").exists()


def test_root_installs_once_and_the_second_run_does_nothing(tmp_path):
    bin_dir, log = _bin(tmp_path, apt=True, uid=0)
    first = _run(bin_dir)
    assert first.returncode == 0, first.stderr
    calls = log.read_text().splitlines()
    assert calls == [
        "DEBIAN_FRONTEND=noninteractive update -q",
        "DEBIAN_FRONTEND=noninteractive install -y -q --no-install-recommends "
        "chromium fonts-dejavu-core libgl1 libglib2.0-0",
    ]
    start = time.perf_counter()
    second = _run(bin_dir)
    elapsed = time.perf_counter() - start
    assert second.returncode == 0
    assert "nothing to install" in second.stdout
    assert log.read_text().splitlines() == calls  # apt-get not called again
    assert elapsed < 5.0  # the fast check only


def test_an_install_that_does_not_provide_chromium_fails(tmp_path):
    bin_dir, log = _bin(tmp_path, apt=False, uid=0)
    _tool(bin_dir, "apt-get", f'echo "$*" >> {log}\n')  # succeeds, installs nothing
    res = _run(bin_dir)
    assert res.returncode == 1
    assert "still missing" in res.stderr and "headless Chromium" in res.stderr


def test_whybox_chromium_counts_as_a_browser(tmp_path):
    bin_dir, log = _bin(tmp_path, apt=True, uid=1000)
    browser = _tool(tmp_path, "my-chrome", "")
    res = _run(bin_dir, WHYBOX_CHROMIUM=str(browser))
    # only Chromium was missing from this PATH; libraries and fonts come from the machine, which
    # `make test` has brought up already
    assert "headless Chromium" not in res.stderr
    assert not log.exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is needed")
def test_make_test_runs_system_deps_before_any_test():
    out = subprocess.run(
        ["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    deps = [i for i, line in enumerate(out) if "scripts/system-deps.sh" in line]
    tests = [i for i, line in enumerate(out) if "-m pytest" in line]
    assert deps and tests, out
    assert deps[0] < min(tests)
    assert "--durations=10" in out[tests[0]]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is needed")
def test_make_test_stops_before_pytest_when_system_deps_fail(tmp_path):
    bin_dir, log = _bin(tmp_path, apt=True, uid=1000)
    (bin_dir / "make").symlink_to(shutil.which("make"))
    # PYTHON=false and a temp VENV: should system-deps wrongly pass, nothing heavy runs
    res = subprocess.run(
        ["make", "test", "PYTHON=false", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert EXACT in res.stderr
    assert "pytest" not in res.stdout and "ruff" not in res.stdout
    assert not (tmp_path / "venv").exists()
    assert not log.exists()
