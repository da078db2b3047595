"""Shared test helpers."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WILD = ROOT.parent / "shared" / "pcaps" / "wild"    # other people's captures (../shared), never seen before
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# No run leaves labs warm for the next (lab/pool.py) unless its test asks for it: every other test
# checks that a run leaves nothing behind. The commands the tests start inherit it.
os.environ["RSTLAB_POOL"] = "0"
