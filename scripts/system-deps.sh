#!/usr/bin/env bash
# make system-deps: the system packages the test suite needs beyond Python.
#
#   chromium           headless browser of the report's browser test (tests/report/test_browser.py)
#   libgl1             libGL.so.1, loaded by opencv (a dependency of quantus, a test oracle)
#   libglib2.0-0       libglib-2.0.so.0 / libgthread, loaded by opencv likewise
#   fonts-dejavu-core  a font for Chromium to render the report's text (any TrueType font will do)
#
# First a fast check (no network, well under a second): if everything is there, nothing else
# happens. Otherwise the packages are installed with apt-get when this user may (root, or sudo
# without a password); if not, the script stops with one message naming the exact command, and a
# non-zero exit, before any test runs.
#
# Environment:
#   WHYBOX_CHROMIUM=/path            a Chromium/Chrome to use instead of one on PATH (the browser
#                                    test honours it too)
#   WHYBOX_SYSTEM_DEPS_NO_INSTALL=1  check only: never install, report what is missing
set -euo pipefail

PACKAGES="chromium fonts-dejavu-core libgl1 libglib2.0-0"
APT_CMD="DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES"

have_chromium() {
  if [[ -n "${WHYBOX_CHROMIUM:-}" ]] && command -v "$WHYBOX_CHROMIUM" >/dev/null 2>&1; then
    return 0
  fi
  local name
  for name in chromium chromium-browser google-chrome; do
    command -v "$name" >/dev/null 2>&1 && return 0
  done
  return 1
}

# a shared library, by the dynamic linker's cache (ldconfig lives in /sbin, often off PATH) or
# by the usual library folders
have_lib() {
  local lib=$1 ldconfig f
  for f in /lib/*/"$lib" /usr/lib/*/"$lib" /lib/"$lib" /usr/lib/"$lib" /usr/lib64/"$lib" /lib64/"$lib"; do
    [[ -e "$f" ]] && return 0
  done
  for ldconfig in "$(command -v ldconfig 2>/dev/null || true)" /sbin/ldconfig /usr/sbin/ldconfig; do
    if [[ -n "$ldconfig" && -x "$ldconfig" ]]; then
      [[ "$("$ldconfig" -p 2>/dev/null)" == *"$lib "* ]] && return 0
      return 1
    fi
  done
  return 1
}

have_font() {
  local f
  for f in /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/*/*.ttf \
    /usr/share/fonts/*/*/*.ttf /usr/share/fonts/*/*.otf /usr/share/fonts/*/*/*.otf \
    /usr/local/share/fonts/*.ttf; do
    [[ -e "$f" ]] && return 0
  done
  return 1
}

missing() {
  have_chromium || echo "  - headless Chromium (chromium on PATH, or WHYBOX_CHROMIUM): the report's browser test"
  have_lib libGL.so.1 || echo "  - libGL.so.1 (libgl1): loaded by opencv, a dependency of the quantus test oracle"
  have_lib libglib-2.0.so.0 || echo "  - libglib-2.0.so.0 (libglib2.0-0): loaded by opencv likewise"
  have_font || echo "  - a TrueType font (fonts-dejavu-core): for Chromium to render the report's text"
}

what=$(missing)
if [[ -z "$what" ]]; then
  echo "system-deps: Chromium, libGL, GLib and fonts are present; nothing to install."
  exit 0
fi

stop() {  # one message, non-zero exit, before any test
  {
    echo "make system-deps: the test suite needs system packages that are missing:"
    echo "$what"
    echo "$1"
    echo "Then run 'make test' again. (No test is skipped to get around a missing browser.)"
  } >&2
  exit 1
}

if ! command -v apt-get >/dev/null 2>&1; then
  stop "This machine has no apt-get (not Debian/Ubuntu), so they cannot be installed for you.
Install them with your system's package manager (e.g. Fedora: sudo dnf install chromium
mesa-libGL glib2 dejavu-sans-fonts; macOS: brew install --cask chromium), or point
WHYBOX_CHROMIUM at a Chromium/Chrome executable."
fi

sudo=""
if [[ "${WHYBOX_SYSTEM_DEPS_NO_INSTALL:-}" == 1 ]]; then
  can=no
elif [[ "$(id -u)" == 0 ]]; then
  can=yes
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  can=yes
  sudo="sudo"
else
  can=no
fi

if [[ "$can" == no ]]; then
  stop "This user may not install them (not root, no password-free sudo). Run, as root:
  sudo sh -c '$APT_CMD'"
fi

echo "system-deps: installing $PACKAGES with apt-get (once per machine; about a minute)"
export DEBIAN_FRONTEND=noninteractive
if [[ -n "$sudo" ]]; then  # sudo resets the environment: pass the variable through env
  sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $PACKAGES
else
  apt-get update -q
  apt-get install -y -q --no-install-recommends $PACKAGES
fi

what=$(missing)
if [[ -n "$what" ]]; then
  echo "make system-deps: apt-get finished but these are still missing:" >&2
  echo "$what" >&2
  exit 1
fi
echo "system-deps: installed."
