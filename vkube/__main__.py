import sys

from vkube.cli.main import main

sys.exit(main())
