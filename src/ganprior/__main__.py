"""`python -m ganprior ...`: the same as the `ganprior` command."""
import sys

from .cli import main

sys.exit(main())
