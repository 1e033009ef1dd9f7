"""`python -m ganprior.cli ...` (and `torchrun ... -m ganprior.cli ...`)."""
import sys

from . import main

sys.exit(main())
