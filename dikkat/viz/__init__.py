"""Figures rendered with matplotlib's object API on an Agg canvas (thread-safe, no pyplot)."""
