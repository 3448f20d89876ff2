from cbs.cli import main

raise SystemExit(main())
