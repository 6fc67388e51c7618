"""The explanation viewer used as a person uses it, in a real headless browser.

Builds the viewer of the smoke run (--mode=explain writes it; `python -m stt.explain.view`
rebuilds it with --max_videos), opens index.html from disk (file://, no server) in Debian's
chromium through its chromedriver (selenium; nothing is downloaded), applies filters, opens a
video, checks that each overlay's hottest pixel lies in the saved map's maximum cell, uses the
keys, follows a suite-page link, and saves a screenshot (to $STT_TEST_ARTIFACTS, else the test's
temporary directory; the README's docs/images/viewer.png is one).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

from etils import epath
import numpy as np
from PIL import Image
import pytest

from stt import reproduce_tables
from stt.explain import viewer_suite
from tests import conftest

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMEDRIVER = pathlib.Path("/usr/bin/chromedriver")
EXPLAINERS = ("attention", "gradcam", "random")
MAX_VIDEOS = 6

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver; .ci/run installs them)",
    ),
]


@pytest.fixture(name="browser", scope="module")
def _browser():
  webdriver = pytest.importorskip("selenium.webdriver")
  from selenium.webdriver.chrome import service  # pylint: disable=g-import-not-at-top

  options = webdriver.ChromeOptions()
  options.binary_location = str(CHROMIUM)
  for argument in (
      "--headless=new",
      "--no-sandbox",
      "--disable-dev-shm-usage",
      "--allow-file-access-from-files",
      "--window-size=1280,900",
  ):
    options.add_argument(argument)
  driver = webdriver.Chrome(
      service=service.Service(executable_path=str(CHROMEDRIVER)), options=options
  )
  driver.implicitly_wait(5)
  yield driver
  driver.quit()


@pytest.fixture(name="run", scope="module")
def _run(smoke_run, tmp_path_factory):
  """A copy of the smoke run explained with EXPLAINERS (which writes its viewer), then its viewer
  rebuilt by the CLI for the first MAX_VIDEOS videos."""
  data_dir, finished, _ = smoke_run
  workdir = tmp_path_factory.mktemp("viewer") / "run"
  shutil.copytree(finished, workdir)
  training_page = json.loads(_script_json(workdir / "viewer/data/index.js"))
  assert training_page["header"]["explainers"] == ["attention"]  # the model's own maps
  shutil.rmtree(workdir / "viewer")  # the explain run must write it again
  conftest.run_main(
      workdir,
      data_dir,
      f"--config.explain.explainers={EXPLAINERS!r}",
      "--mode=explain",
  )
  full = json.loads(_script_json(workdir / "viewer/data/index.js"))
  result = subprocess.run(
      [
          sys.executable,
          "-m",
          "stt.explain.view",
          f"--workdir={workdir}",
          f"--max_videos={MAX_VIDEOS}",
          f"--data_dir={data_dir}",
      ],
      cwd=conftest.REPO,
      env=conftest.subprocess_env(),
      capture_output=True,
      text=True,
      timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, full


def _script_json(path: pathlib.Path) -> str:
  return path.read_text().split("=", 1)[1].strip().removesuffix(";")


def _open(browser, url: str):
  browser.get(url)
  browser.find_element("id", "shown-count")
  return browser


def _shown(browser) -> tuple[int, list[str]]:
  cards = browser.find_elements("css selector", "#cards [data-video-id]")
  count = int(browser.find_element("id", "shown-count").text)
  return count, [card.get_attribute("data-video-id") for card in cards]


def _select(browser, element_id: str, value: str):
  browser.execute_script(
      "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
      "s.dispatchEvent(new Event('change'));",
      element_id,
      value,
  )


# The overlay's hottest pixel, read back from the canvas: the colour map's r+g+b rises with the
# relevance (viewer.js `hot`).
_HOTTEST = """
const canvas = arguments[0];
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let best = -1, at = 0;
for (let p = 0; p < data.length; p += 4) {
  const heat = data[p] + data[p + 1] + data[p + 2];
  if (heat > best) { best = heat; at = p / 4; }
}
return [at % canvas.width, Math.floor(at / canvas.width), canvas.width, canvas.height];
"""


def test_the_viewer_in_a_browser(run, browser, tmp_path):
  workdir, full = run
  assert len(full["videos"]) == 8 and full["header"]["explainers"] == list(EXPLAINERS)
  index = workdir / "viewer" / "index.html"
  data = json.loads(_script_json(workdir / "viewer/data/index.js"))
  videos = data["videos"]
  assert len(videos) == MAX_VIDEOS

  _open(browser, index.as_uri())
  assert _shown(browser) == (MAX_VIDEOS, [v["id"] for v in videos])
  assert browser.execute_script("return window.STT_VIEWER_INDEX.videos.length") == MAX_VIDEOS

  # Filters: a class, then wrong predictions of any class; the counts are the data's.
  label = videos[0]["label"]
  _select(browser, "filter-class", str(label))
  expected = [v["id"] for v in videos if v["label"] == label]
  assert _shown(browser) == (len(expected), expected)
  assert f"class={label}" in browser.current_url
  _open(browser, browser.current_url)  # the address keeps the view: a shared link
  browser.refresh()
  assert _shown(browser) == (len(expected), expected)
  _select(browser, "filter-class", "")
  _select(browser, "filter-correct", "wrong")
  wrong = [v["id"] for v in videos if v["correct"] is False]
  assert _shown(browser) == (len(wrong), wrong)
  _select(browser, "filter-correct", "")
  _select(browser, "sort", "confidence-desc")
  by_confidence = sorted(videos, key=lambda v: (-v["confidence"], v["row"]))
  assert _shown(browser)[1] == [v["id"] for v in by_confidence]
  _select(browser, "sort", "row")

  # One video: every explainer's overlay peaks in the saved map's maximum cell. Upsampled
  # bilinearly, a pixel of another cell is at most half the maximum plus half its own value, and
  # the maximum cell's own pixels at least 92% of it (12 x 12 pixels a cell or more): so where
  # every other cell is <= 80% of the maximum, the hottest pixel lies in the maximum cell.
  video = videos[1]
  checked = 0
  browser.find_element("css selector", f'#cards [data-video-id="{video["id"]}"]').click()
  browser.find_element("css selector", f'#detail h2[data-video-id="{video["id"]}"]')
  for name in EXPLAINERS:
    with np.load(workdir / "explain/maps" / f"{name}.npz") as saved:
      row = list(saved["video_id"]).index(video["id"])
      where, mask = saved["where"][row], saved["segment_mask"][row]
    canvases = browser.find_elements("css selector", f'#detail canvas[data-explainer="{name}"]')
    assert len(canvases) == mask.sum()
    for canvas in canvases:
      t = int(canvas.get_attribute("data-segment"))
      x, y, width, height = browser.execute_script(_HOTTEST, canvas)
      h, w = where.shape[1:]
      assert width >= 12 * w and height >= 12 * h
      ordered = np.sort(where[t].ravel())
      if ordered[-2] > 0.8 * ordered[-1]:
        continue  # no clear maximum
      expected = np.unravel_index(np.argmax(where[t]), where[t].shape)
      assert (y * h // height, x * w // width) == expected, (name, t)
      checked += 1
  assert (
      checked >= 3
  )  # gradcam's and attention's maps are peaked  # Keys: next video, next explainer, back to the list.
  body = browser.find_element("tag name", "body")
  body.send_keys("j")
  browser.find_element("css selector", f'#detail h2[data-video-id="{videos[2]["id"]}"]')
  body.send_keys("e")
  assert browser.find_element("id", "explainer").get_attribute("value") == EXPLAINERS[1]
  assert f"video={videos[2]['id']}" in browser.current_url
  artifacts = pathlib.Path(os.environ.get("STT_TEST_ARTIFACTS", tmp_path))
  artifacts.mkdir(parents=True, exist_ok=True)
  screenshot = artifacts / "viewer_screenshot.png"
  browser.save_screenshot(str(screenshot))
  with Image.open(screenshot) as image:  # 128 colours: small enough to commit (README)
    image.convert("RGB").quantize(colors=128).save(screenshot, optimize=True)
  assert 10_000 < screenshot.stat().st_size < 300_000
  body.send_keys("\ue00c")  # Escape
  assert browser.find_element("id", "detail").get_attribute("hidden") is not None

  # The suite page: a perturbation cell opens this run's viewer with its explainer.
  suite_dir = epath.Path(workdir.parent)
  rows = reproduce_tables.summary_rows(
      reproduce_tables.read_results({"stan": [epath.Path(workdir)]})
  )
  page = viewer_suite.write(suite_dir, rows, {"stan": [epath.Path(workdir)]})
  browser.get(pathlib.Path(page).as_uri())
  link = browser.find_element("css selector", 'a[href$="#explainer=gradcam"]')
  link.click()
  assert browser.find_element("id", "explainer").get_attribute("value") == "gradcam"
  assert _shown(browser)[0] == MAX_VIDEOS
