"""Drives the status page in a real, headless Chromium (Debian's, through its
chromedriver) for tests/integration/status_page.rs.

Reads a JSON request on stdin: {"chromium", "chromedriver", "overview",
"failing", "silenced", "screenshot"}. Loads the overview, follows the failing
probe's link, then the silenced one's, and prints one JSON object with what a
person would see: the console errors, the probes listed with their states and
groups, the failing probe's page text, its chart's phase lines, points,
failure marks, firing shading and threshold line, whether any element came
from provider text, the silenced probe's shading, and where the screenshot
went. No browser is downloaded; nothing but loopback is asked.
"""

import json
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def main():
    req = json.load(sys.stdin)
    options = webdriver.ChromeOptions()
    options.binary_location = req["chromium"]
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,1400",
        "--user-data-dir=" + tempfile.mkdtemp(),
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(req["chromedriver"]), options=options)
    out = {}
    try:
        driver.get(req["overview"])
        out["title"] = driver.title
        out["probes"] = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.probes td:first-child a")]
        out["states"] = {
            row.find_element(By.CSS_SELECTOR, "td:first-child a").text: row.find_element(By.CSS_SELECTOR, ".state").text
            for row in driver.find_elements(By.CSS_SELECTOR, "table.probes tbody tr")
        }
        out["reasons"] = {
            row.find_element(By.CSS_SELECTOR, "td:first-child a").text: row.find_elements(By.CSS_SELECTOR, "td")[1].text
            for row in driver.find_elements(By.CSS_SELECTOR, "table.probes tbody tr")
        }
        # Each group's heading with the probes under it, in page order.
        out["groups"] = [
            [h.text, [a.text for a in h.find_elements(By.XPATH, "following-sibling::table[1]//td[1]/a")]]
            for h in driver.find_elements(By.CSS_SELECTOR, "h2.group")
        ]
        out["alerts"] = [li.text for li in driver.find_elements(By.CSS_SELECTOR, ".alerts li")]
        driver.save_screenshot(req["screenshot"])
        # A person clicks the failing probe's row.
        driver.find_element(By.LINK_TEXT, req["failing"]).click()
        out["probe_url"] = driver.current_url
        out["probe_text"] = driver.find_element(By.TAG_NAME, "main").text
        out["points"] = len(driver.find_elements(By.CSS_SELECTOR, "svg.chart circle.point"))
        out["failure_marks"] = len(driver.find_elements(By.CSS_SELECTOR, "svg.chart path.failure"))
        out["series"] = [
            p.get_attribute("data-series") for p in driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline.series")
        ]
        out["firing_shading"] = len(driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.firing"))
        lines = driver.find_elements(By.CSS_SELECTOR, "svg.chart line.threshold")
        out["threshold_seconds"] = [float(l.get_attribute("data-seconds")) for l in lines]
        # Provider text must show as text: no element it could have opened.
        out["injected_elements"] = len(driver.find_elements(By.CSS_SELECTOR, "main b, main script, main img"))
        driver.save_screenshot(req["screenshot"].replace(".png", "-probe.png"))
        driver.get(req["overview"])
        driver.find_element(By.LINK_TEXT, req["silenced"]).click()
        out["silenced_shading"] = len(driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.silenced"))
        out["silenced_text"] = driver.find_element(By.TAG_NAME, "main").text
        out["console"] = [
            e["message"] for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")
        ]
    finally:
        driver.quit()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
