"""`cbs advise`: what batch size should a planned run use, from a fitted CBS law and from published laws."""

from cbs.advise.forecast import Advice, Forecast, from_fit, from_published, trade_off
from cbs.advise.laws import LAWS, PlannedRun, PublishedLaw, published_law

__all__ = [
    "LAWS",
    "Advice",
    "Forecast",
    "PlannedRun",
    "PublishedLaw",
    "from_fit",
    "from_published",
    "published_law",
    "trade_off",
]
