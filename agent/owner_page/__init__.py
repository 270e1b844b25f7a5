"""The owner's web page, served by the daemon: sign in with the owner password, see the site's
state and cameras, answer requests, pause sharing, read the activity. See docs/owner-page.md.

`app.make_app` builds the aiohttp application; `component.owner_page_component` is the
daemon's component; `password` is what `rtcc-edge owner passwd` also uses (imported alone by
the CLI, so the command line does not load the web server).
"""
