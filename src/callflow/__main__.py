from callflow.entrypoints.cli import main

raise SystemExit(main())
