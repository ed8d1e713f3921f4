import sys

from panseg.cli.main import main

sys.exit(main())
