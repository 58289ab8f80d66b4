"""Language identification for the two languages `monitor` reads: English and Russian.

Pure and cheap: it counts letters by script. It does not try to tell Russian from
Kyrgyz or Tajik in Cyrillic; the indicators are written for Russian, and Cyrillic
text in the other languages simply matches less.
"""

from __future__ import annotations

_MIN_LETTERS = 8


def detect_language(text: str) -> str:
    """Return "ru" for mostly Cyrillic text, "en" for mostly Latin, "und" when unsure."""
    cyrillic = latin = 0
    for char in text:
        if "\u0400" <= char <= "\u04ff":
            cyrillic += 1
        elif ("a" <= char <= "z") or ("A" <= char <= "Z"):
            latin += 1
    letters = cyrillic + latin
    if letters < _MIN_LETTERS:
        return "und"
    if cyrillic >= 0.5 * letters:
        return "ru"
    if latin >= 0.7 * letters:
        return "en"
    return "und"
