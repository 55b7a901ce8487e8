from trek_tasks.cli import main

raise SystemExit(main())
