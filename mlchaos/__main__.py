from mlchaos.cli import main

raise SystemExit(main())
