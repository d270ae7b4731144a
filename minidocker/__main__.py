from minidocker.cli import main

raise SystemExit(main())
