"""Figures rendered with matplotlib's object API on an Agg canvas (thread-safe, no pyplot)."""

import matplotlib

# User text is drawn literally: "$...$" would otherwise be parsed as mathtext (and can fail).
matplotlib.rcParams["text.parse_math"] = False
