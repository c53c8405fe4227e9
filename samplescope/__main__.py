from samplescope.cli import main

raise SystemExit(main())
