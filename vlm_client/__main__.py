"""`python -m vlm_client`: the same as the `vlm-client` console script."""

from __future__ import annotations

import sys

from vlm_client.cli import main

if __name__ == "__main__":
    sys.exit(main())
