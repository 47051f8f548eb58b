import sys

from egtr.cli import main

sys.exit(main())
