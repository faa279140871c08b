"""``python -m edgeship``: the same as the ``edgeship`` command."""

from edgeship.cli import main

main()
