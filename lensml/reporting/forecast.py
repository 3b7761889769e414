"""The ``forecast`` study's section: the information ceiling per noise level (the forecast's own table and
figure, ``lensml.inference.summary``), M_min per data set with the factor the velocity field buys and a
verdict from the intervals, and the CNN's efficiency against the ceiling (``lensml.analysis.forecast_section``
computes those)."""

from __future__ import annotations

from lensml.analysis.forecast_section import answer_rows, efficiency, verdict
from lensml.analysis.markdown import md_table
from lensml.inference.summary import figure, markdown
from lensml.reporting.core import Report


def render(r: Report) -> None:
    s = r.s.get("forecast")
    if not s or not s.get("forecast"):
        return
    r.section("The information ceiling: linearised forecast (marginalised)", s)
    for noise, result in s["forecast"]["noise"].items():
        r.add(f"### noise={noise}\n")
        body = markdown(result).split("\n", 2)[2]  # drop the forecast's own title
        r.add(body)
        r.fig(f"forecast_{noise}.png", figure(result), f"forecast significance vs mass, noise={noise}")
        rows = answer_rows(result)
        paired = any("[" in row[3] for row in rows)  # summaries before the paired ratio have none
        r.add(
            "M_min per data set and what the velocity field buys (M_min of flux / M_min of the data set):\n\n"
            + md_table(["marginalise", "data set", "M_min (M_sun) [95 %]",
                        "factor [paired 95 %]" if paired else "factor"], rows)
        )
        text = " ".join(x for x in (verdict(result), verdict(result, "macro_pixelated")) if x)
        if text:
            r.add(text + "\n")
    r.add(efficiency(r.s, next(iter(s["forecast"]["noise"].values()))) + "\n")
