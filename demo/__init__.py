"""`make demo`: the whole rtcc-edge story on one machine, printed step by step (see story.py)."""
