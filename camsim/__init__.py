"""camsim: a virtual ONVIF camera (several per process) for the demo, the tests and training.

It speaks the same protocols as a real camera: WS-Discovery, ONVIF device and media services with
WS-Security, RTSP with Digest auth serving real H.264/H.265 whose every frame carries its
wall-clock capture time (see `camsim.sei`).
"""

__version__ = "0.1.0"
