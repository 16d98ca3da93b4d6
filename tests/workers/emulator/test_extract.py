"""Real Chromium screenshots of the sandbox sportsbook through real Tesseract: extraction
within the accuracy target; blank and garbage images yield no invented odds."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from bench.ocr_accuracy import NAMES_TARGET, ODDS_TARGET, score
from tests.workers.emulator.conftest import PAGES, needs_chromium, needs_tesseract
from workers.emulator import extract_file

pytestmark = [needs_tesseract]


@needs_chromium
def test_the_sandbox_sportsbook_is_extracted_within_the_accuracy_target(
        screens: dict[str, Path], truth: dict[str, Any]) -> None:
    extractions = {k: extract_file(path, book="sandbook") for k, path in screens.items()}
    doc = {"screenshots": [{"shot": f"0-{k}"} for k in PAGES],
           "markets": [{"shot": f"0-{k}", **m} for k, e in extractions.items() for m in e["markets"]],
           "boosts": [{"shot": f"0-{k}", **b} for k, e in extractions.items() for b in e["boosts"]]}
    result = score(doc, {"sports": [s for s in truth["sports"] if s["key"] in PAGES]})
    assert result["odds_total"] == 8 * 2 + 8 * 3 + 6 * 2
    assert result["odds_exact"] / result["odds_total"] >= ODDS_TARGET, result["misses"]
    assert result["names_matched"] / result["names_total"] >= NAMES_TARGET, result["misses"]
    assert result["odds_wrong"] == 0, result["misses"]  # a miss may be flagged, never invented
    assert result["boosts_exact"] == result["boosts_total"] == 6, result["misses"]
    formats = {k: {o["format"] for m in e["markets"] for o in m["outcomes"]} - {None}
               for k, e in extractions.items()}
    assert formats == {"basketball_nba": {"american"}, "soccer_epl": {"decimal"},
                       "mma_mixed_martial_arts": {"fractional"}}
    for e in extractions.values():
        for m in e["markets"]:
            assert m["market"] == "h2h" and m["section"].endswith("Moneyline")
            for o in m["outcomes"]:
                assert 0 <= o["conf"] <= 100 and 0 <= o["name_conf"] <= 100


def test_a_blank_screen_yields_no_odds(tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    Image.new("RGB", (1080, 1920), "black").save(path)  # a sleeping display
    result = extract_file(path)
    assert result["markets"] == [] and result["boosts"] == []


def test_garbage_yields_no_invented_odds(tmp_path: Path) -> None:
    rng = random.Random(3)
    img = Image.new("RGB", (900, 700), "white")
    draw = ImageDraw.Draw(img)
    for _ in range(4000):  # speckle noise and scribbles
        x, y = rng.randrange(900), rng.randrange(700)
        draw.rectangle((x, y, x + rng.randrange(1, 4), y + rng.randrange(1, 4)), fill=(0, 0, 0))
    for _ in range(40):
        draw.line([(rng.randrange(900), rng.randrange(700)) for _ in range(3)], fill=(30, 30, 30), width=2)
    path = tmp_path / "garbage.png"
    img.save(path)
    result = extract_file(path)
    read = [o for m in result["markets"] for o in m["outcomes"] if o["odds"] is not None]
    assert read == []


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark-mode"])
def test_a_drawn_price_row_is_read_with_its_confidence(tmp_path: Path, dark: bool) -> None:
    from PIL import ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 22)
    bg, fg = ("#15191e", "#f2f2f2") if dark else ("white", "black")
    img = Image.new("RGB", (700, 200), bg)
    draw = ImageDraw.Draw(img)
    draw.text((20, 20), "SAT 19:30", font=font, fill=fg)
    draw.text((20, 70), "Boston Celtics", font=font, fill=fg)
    draw.text((560, 70), "+150", font=font, fill=fg)
    draw.text((20, 120), "LA Lakers", font=font, fill=fg)
    draw.text((560, 120), "-175", font=font, fill=fg)
    path = tmp_path / "row.png"
    img.save(path)
    result = extract_file(path)
    assert result["ocr"]["inverted"] is dark
    [market] = result["markets"]
    assert [(o["name"], o["odds"]) for o in market["outcomes"]] == [("Boston Celtics", "+150"), ("LA Lakers", "-175")]
    assert all(o["conf"] >= 60 for o in market["outcomes"])
    assert market["complete"] and market["overround"] == pytest.approx(1 / 2.5 + 1 / (1 + 100 / 175), abs=1e-3)
