from demo.story import main

raise SystemExit(main())
