"""Tesseract through pytesseract: preprocessing, word boxes, rows rebuilt from the boxes.

Preprocessing (api-reference E.4): alpha dropped onto white, grayscale, dark UIs inverted
(Tesseract wants dark text on light), upscaled so body text has an x-height near 20 px, Otsu
threshold (light button fills and borders vanish), a white border. Words come from
`image_to_data` (--psm 11, sparse text: a sportsbook is scattered labels, not paragraphs)
with their boxes and confidences; `rows` groups them by vertical overlap, left to right, and
splits a row into segments at wide horizontal gaps (the name column, the price button).
`reread` OCRs one cropped cell again (--psm 7, odds whitelist) to confirm a doubtful token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytesseract
from PIL import Image, ImageOps

log = logging.getLogger(__name__)

BORDER = 12
ODDS_WHITELIST = "0123456789+-./EVNS"


@dataclass(frozen=True)
class Word:
    text: str
    conf: float  # 0..100 (Tesseract's word confidence)
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def mid(self) -> float:
        return self.top + self.height / 2


@dataclass
class Row:
    """Words on one visual line, left to right, split into segments at wide gaps."""

    words: list[Word] = field(default_factory=list)

    @property
    def top(self) -> int:
        return min(w.top for w in self.words)

    @property
    def bottom(self) -> int:
        return max(w.bottom for w in self.words)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    def segments(self) -> list[list[Word]]:
        """Runs of words separated by a gap wider than ~2.5 letter heights."""
        words = sorted(self.words, key=lambda w: w.left)
        height = sorted(w.height for w in words)[len(words) // 2]
        out: list[list[Word]] = [[words[0]]]
        for prev, w in zip(words, words[1:]):
            if w.left - prev.right > 2.5 * height:
                out.append([w])
            else:
                out[-1].append(w)
        return out


@dataclass(frozen=True)
class Prepared:
    """The image Tesseract reads, and how to map its pixels back to the screenshot's."""

    image: Image.Image
    scale: float
    inverted: bool
    threshold: int


def engine_version() -> str:
    """e.g. "tesseract 5.3.0"."""
    return f"tesseract {pytesseract.get_tesseract_version()}"


def prepare(image: Image.Image, *, target_x_height: float = 20.0,
            x_height: float | None = None, max_scale: float = 3.0) -> Prepared:
    """Grayscale, invert a dark UI, upscale, Otsu-threshold, add a white border."""
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    gray = image.convert("L")
    hist = gray.histogram()
    total = sum(hist) or 1
    mean = sum(i * n for i, n in enumerate(hist)) / total
    inverted = mean < 110
    if inverted:
        gray = ImageOps.invert(gray)
    # Typical UI body text: x-height ~ 0.53 em; at 21 px that is ~11 px, so ~2x.
    xh = x_height if x_height is not None else 10.5
    scale = max(1.0, min(max_scale, target_x_height / xh))
    if scale != 1.0:
        gray = gray.resize((round(gray.width * scale), round(gray.height * scale)),
                           Image.Resampling.LANCZOS)
    threshold = _otsu(gray.histogram())
    binary = gray.point(lambda v: 255 if v > threshold else 0, mode="L")
    return Prepared(ImageOps.expand(binary, border=BORDER, fill=255), scale, inverted, threshold)


def words(prepared: Prepared, psm: int = 11, lang: str = "eng", timeout: float = 120) -> list[Word]:
    """Every word Tesseract finds, in screenshot pixel coordinates."""
    data = pytesseract.image_to_data(prepared.image, lang=lang, config=f"--oem 1 --psm {psm}",
                                     output_type=pytesseract.Output.DICT, timeout=timeout)
    out = []
    s = prepared.scale
    for i, text in enumerate(data["text"]):
        text = (text or "").strip()
        conf = float(data["conf"][i])
        if not text or conf < 0:
            continue
        out.append(Word(text, conf, round((data["left"][i] - BORDER) / s),
                        round((data["top"][i] - BORDER) / s), round(data["width"][i] / s),
                        round(data["height"][i] / s)))
    return out


def rows(found: list[Word]) -> list[Row]:
    """Group words into visual lines: a word joins the row its vertical middle falls in."""
    out: list[Row] = []
    for w in sorted(found, key=lambda w: (w.mid, w.left)):
        for row in reversed(out[-3:]):
            if row.top - 2 <= w.mid <= row.bottom + 2 and min(
                    abs(w.mid - x.mid) for x in row.words) <= max(w.height, 8) * 0.6:
                row.words.append(w)
                break
        else:
            out.append(Row([w]))
    for row in out:
        row.words.sort(key=lambda w: w.left)
    out.sort(key=lambda r: r.top)
    return out


def reread(prepared: Prepared, box: tuple[int, int, int, int], lang: str = "eng",
           whitelist: str | None = ODDS_WHITELIST) -> tuple[str, float]:
    """OCR one cell again as a single line (odds whitelist by default): (text, confidence)."""
    s = prepared.scale
    left, top, right, bottom = box
    pad = round(6 * s)
    crop = prepared.image.crop((max(0, round(left * s) + BORDER - pad),
                                max(0, round(top * s) + BORDER - pad),
                                min(prepared.image.width, round(right * s) + BORDER + pad),
                                min(prepared.image.height, round(bottom * s) + BORDER + pad)))
    crop = ImageOps.expand(crop, border=BORDER, fill=255)
    config = "--oem 1 --psm 7"
    if whitelist:
        config += (f" -c tessedit_char_whitelist={whitelist}"
                   " -c load_system_dawg=0 -c load_freq_dawg=0")
    data = pytesseract.image_to_data(crop, lang=lang, output_type=pytesseract.Output.DICT,
                                     config=config)
    parts = [(t.strip(), float(c)) for t, c in zip(data["text"], data["conf"])
             if (t or "").strip() and float(c) >= 0]
    if not parts:
        return "", 0.0
    return ("" if whitelist else " ").join(t for t, _ in parts), min(c for _, c in parts)


def _otsu(hist: list[int]) -> int:
    total = sum(hist)
    if total == 0:
        return 127
    sum_all = sum(i * h for i, h in enumerate(hist))
    sum_b = weight_b = 0.0
    best, threshold = -1.0, 127
    for t in range(256):
        weight_b += hist[t]
        if weight_b == 0:
            continue
        weight_f = total - weight_b
        if weight_f == 0:
            break
        sum_b += t * hist[t]
        mean_b = sum_b / weight_b
        mean_f = (sum_all - sum_b) / weight_f
        between = weight_b * weight_f * (mean_b - mean_f) ** 2
        if between > best:
            best, threshold = between, t
    return threshold
