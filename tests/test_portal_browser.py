"""The portal in a real browser: Debian's headless chromium driven by selenium.

Open the project page of the example, start a run with the page's button, wait for the
failed-host branch to turn green, click a node and read its outputs, then the run page.
Screenshots go to ``$TREK_ARTIFACTS`` (default ``tests/artifacts/``). Without chromium,
chromedriver or selenium the tests skip, saying which is missing; with
``TREK_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, set_config, set_redis_ports
from portal_served import Served, webserver

from trek_tasks.cli import main
from trek_tasks.environment import Environment
from trek_tasks.project import Project

KEY = "host.detect.redis"
REQUIRE_BROWSER = os.environ.get("TREK_REQUIRE_BROWSER", "") not in ("", "0")
ARTIFACTS = Path(os.environ.get("TREK_ARTIFACTS") or REPO / "tests" / "artifacts")


def browser_missing(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"TREK_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """A headless chromium (Debian's ``chromium`` and ``chromium-driver``)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        browser_missing("selenium is not installed (pip install -e '.[test]')")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if browser is None or chromedriver is None:
        browser_missing(
            "chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(chromedriver), options=options)
    chrome.set_page_load_timeout(60)
    yield chrome
    chrome.quit()


@pytest.fixture
def served(project: Path, redis_server: int, isolated_home: Path) -> Iterator[Served]:
    set_config(project, router_port=0)
    set_redis_ports(project, {"S-redis-local": redis_server})
    with webserver("-p", str(project), cwd=project.parent, home=isolated_home) as server:
        yield server
    main(["shutdownenv", "-a", "-p", str(project)])
    assert Environment(Project.load(project)).leftovers() == []


def shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"portal-{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot {path}"
    return path


def node_class(driver: Any, node_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, f"node-{node_id}").get_attribute("class"))


def test_a_run_started_in_the_browser_turns_the_failed_host_branch_green(
    driver: Any, served: Served
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{served.url}/p/{KEY}")
    groups = driver.find_elements(By.CSS_SELECTOR, "#graph svg g.node")
    assert sorted(g.get_attribute("id") for g in groups) == [f"node-{n}" for n in "012345"]
    assert node_class(driver, "3") == "node st-not-run"
    shot(driver, "before-run")
    driver.find_element(By.ID, "run").click()
    # the failed-host branch: tag the host (3), then notify (5)
    wait = WebDriverWait(driver, 120, poll_frequency=0.1)
    wait.until(
        lambda d: node_class(d, "3") == "node st-done" and node_class(d, "5") == "node st-done"
    )
    wait.until(lambda d: d.find_element(By.ID, "run-status").text == "done")
    assert [node_class(driver, n) for n in "012345"] == ["node st-done"] * 6
    shot(driver, "after-run")

    driver.find_element(By.CSS_SELECTOR, "#node-2 text").click()  # its label
    outputs = wait.until(lambda d: d.find_element(By.ID, "node-outputs"))
    assert '"fail_hosts_count": 1' in outputs.text
    assert '"id": "S-redis-down"' in outputs.text
    assert driver.find_element(By.ID, "node-status").text == "done"
    shot(driver, "node-2")

    driver.find_element(By.LINK_TEXT, "Runs").click()
    driver.find_element(By.CSS_SELECTOR, "#runs tr[data-run] a").click()
    rows = driver.find_elements(By.CSS_SELECTOR, "#run-nodes tr[data-node]")
    statuses = [
        (r.get_attribute("data-node"), r.find_element(By.CLASS_NAME, "node-status").text)
        for r in rows
    ]
    assert statuses == [(n, "done") for n in ["0", "2", "3", "4", "5", "1"]]
    shot(driver, "run")
