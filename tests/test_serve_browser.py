"""``asm serve`` end to end in a real headless Chromium (selenium + Debian's chromium-driver): start
the server as the CLI does, upload a rendered target, wait for the match, check that both audio
elements load and that the preset downloads and re-imports, and save a screenshot."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"asm serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("asm serve did not come up")


@pytest.mark.slow
def test_page_matches_an_uploaded_target_plays_both_sounds_and_the_preset_re_imports(cli, tmp_path, asm_home):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed (make system-deps installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    target = tmp_path / "square A3.wav"
    r = cli("render", "--synth", "asm-sub", "--note", "57", "--duration", "1.0", "--note-off", "0.6",
            "--set", "osc1_wave=square", "--set", "cutoff=0.45", "--out", target)
    assert r.code == 0, r.err
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(ROOT / "asm-cli.py"), "serve", "--port", str(port), "--workers", "1"],
                              cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = None
    try:
        _wait_up(f"{base}/api/config", server)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1440,1300", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"):
            options.add_argument(flag)
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        wait = WebDriverWait(driver, 60)
        driver.get(base + "/")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert driver.title.startswith("asm serve")

        driver.find_element(By.ID, "file").send_keys(str(target))
        wait.until(lambda d: d.find_element(By.ID, "start").is_enabled())
        notes = driver.find_element(By.ID, "target-notes").text
        assert "A3" in notes, notes  # the detected note is shown
        Select(driver.find_element(By.ID, "method")).select_by_value("nsga2")
        budget = driver.find_element(By.ID, "budget")
        budget.clear()
        budget.send_keys("60")
        driver.find_element(By.ID, "start").click()
        WebDriverWait(driver, 240).until(
            lambda d: "done" in d.find_element(By.ID, "job-status").get_attribute("class")
            or "failed" in d.find_element(By.ID, "job-status").get_attribute("class"))
        status = driver.find_element(By.ID, "job-status")
        assert "done" in status.get_attribute("class"), status.text
        assert "60 renders" in status.text

        # both players load (metadata and a duration), with levels matched
        audio = """return ['audio-target', 'audio-match'].map(id => { const a = document.getElementById(id);
            return {ready: a.readyState, duration: a.duration, error: a.error && a.error.code, volume: a.volume}; });"""
        wait.until(lambda d: all(a["ready"] >= 1 for a in d.execute_script(audio)))
        players = driver.execute_script(audio)
        assert all(a["error"] is None and abs(a["duration"] - 1.0) < 0.1 for a in players), players
        assert max(a["volume"] for a in players) == 1.0 and min(a["volume"] for a in players) <= 1.0
        driver.find_element(By.ID, "pick-b").click()
        assert "on" in driver.find_element(By.ID, "pick-b").get_attribute("class")
        rows = driver.find_elements(By.CSS_SELECTOR, "#pareto tbody tr")
        assert len(rows) >= 1
        picture = driver.execute_script("const i = document.getElementById('picture'); return i.complete && i.naturalWidth;")
        assert picture and picture > 100

        driver.find_element(By.ID, "dl-preset").click()
        end = time.monotonic() + 30
        while time.monotonic() < end and not [p for p in downloads.iterdir() if p.suffix == ".json"]:
            time.sleep(0.2)
        (preset,) = [p for p in downloads.iterdir() if p.suffix == ".json"]
        assert preset.name == "square_A3-match.json"
        driver.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "serve.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        if os.environ.get("ASM_SERVE_SCREENSHOT"):
            shutil.copy(shot, os.environ["ASM_SERVE_SCREENSHOT"])

        # the History tab lists the stored match
        driver.find_element(By.CSS_SELECTOR, "a[data-tab=history]").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs tbody tr[data-id]"))
        assert "match" in driver.find_element(By.ID, "runs").text
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    job = json.loads(preset.read_text())
    assert job["synth"] == "asm-sub"
    r = cli("import-presets", "--synth", "asm-sub", preset, "--json")
    assert r.code == 0, r.err
