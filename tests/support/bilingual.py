"""One border clash reported in English and in Russian, and the feeds that carry it: the
cross-language join's shared test material (`tests/db/test_cross_language.py`,
`tests/db/test_fts_index.py`)."""

from __future__ import annotations

from monitor.models import Feed

WIRE = Feed(id="wire", url="https://wire.example/rss", name="Wire", language="en")
NEWS = Feed(id="news", url="https://news.example/rss", name="Новости", language="ru")
OTHER = Feed(id="other", url="https://other.example/rss", name="Other Wire", language="en")

CLASH_EN = (
    "Kyrgyz and Tajik border troops exchange fire near Batken",
    "Kyrgyz and Tajik border guards exchanged fire near Batken and Isfara on Friday, "
    "officials in Bishkek said. Two soldiers were killed.",
)
CLASH_RU = (
    "Кыргызские и таджикские пограничники открыли огонь у Баткена",
    "Кыргызские и таджикские пограничники в пятницу обменялись огнем у Баткена и Исфары, "
    "сообщили в Бишкеке. Погибли двое военнослужащих.",
)
