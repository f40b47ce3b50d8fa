from bomix.cli import main

raise SystemExit(main())
