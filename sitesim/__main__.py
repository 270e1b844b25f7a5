from sitesim.cli import main

raise SystemExit(main())
