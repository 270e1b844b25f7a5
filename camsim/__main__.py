"""`python -m camsim` is the `camsim` command."""

from camsim.cli import main

raise SystemExit(main())
