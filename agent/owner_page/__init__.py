"""The owner's web page, served by the daemon: sign in with the owner password, see the site's
state, answer requests, pause sharing. See docs/owner-page.md."""

from agent.owner_page.app import BY, make_app
from agent.owner_page.component import OwnerPageComponent, owner_page_component

__all__ = ["BY", "OwnerPageComponent", "make_app", "owner_page_component"]
