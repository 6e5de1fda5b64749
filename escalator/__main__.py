from escalator.cli import main

raise SystemExit(main())
