"""The owner's web page, a process of its own (`rtcc-edge owner serve`, run by systemd as the
user `rtcc-edge-page`): sign in with the owner password, see the site's state and cameras,
answer requests, pause sharing, read the activity. Everything it shows and changes goes through
the daemon's control socket with the owner's library, as the owner's CLI does. See
docs/owner-page.md.

`app.make_app` builds the aiohttp application; `serve` runs it; `password` is what
`rtcc-edge owner passwd` also uses (imported alone by the CLI, so the command line does not load
the web server).
"""
