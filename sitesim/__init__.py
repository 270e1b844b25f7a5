"""sitesim: many simulated sites in one process, running the agent's real link code.

For scale tests and benchmarks of the RTCC side (the console's map with thousands of cameras,
incidents across many sites) without thousands of machines. Like camsim, the agent never
imports it. See `sitesim.site` for what a simulated site is and is not.
"""

__version__ = "0.1.0"

from sitesim.layout import CameraSpec, SiteSpec, city
from sitesim.site import Broker, Rtcc, SimSite, Simulation

__all__ = ["Broker", "CameraSpec", "Rtcc", "SimSite", "Simulation", "SiteSpec", "city"]
