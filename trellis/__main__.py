import sys

from trellis.cli.main import main

sys.exit(main())
