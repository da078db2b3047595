"""RST Lab's orchestrator: `python -m orchestrator` (cli.py)."""
from .compiled import install

install()     # before any other module of the package: a compiled copy older than its .py does not run
