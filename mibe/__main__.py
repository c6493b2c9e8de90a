from mibe.cli import main

raise SystemExit(main())
