"""rtcc-edge: the site agent of a city's Real Time Crime Center camera-sharing program."""

__version__ = "0.1.0"
