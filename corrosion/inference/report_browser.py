"""Headless Chromium for the report's browser test and benchmark (Debian's ``chromium`` + ``chromium-driver``).

The machines that run these have no network, so the browser is started with everything that would
reach out switched off and a fresh profile; selenium (a developer dependency, ``make browser``) is
imported only here, when a browser is asked for.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1366,900", "--hide-scrollbars",
)  # fmt: skip
DRIVER_PLACES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or why there are none (the test skips with that reason)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pinned in requirements.lock; make venv)"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or next((p for p in DRIVER_PLACES if os.path.exists(p)), None)
    if not chromium or not driver:
        missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p)
        return f"no {missing} on this machine: `make browser` installs Debian's chromium and chromium-driver (as root, with apt-get)"
    return chromium, driver


def open_chromium(profile: Path, chromium: str, driver: str, window: str = "1366,900"):
    """A selenium Chrome driver on a fresh profile, logging the console (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag if not flag.startswith("--window-size") else f"--window-size={window}")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))
