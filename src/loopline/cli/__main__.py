"""`python -m loopline.cli`."""

from loopline.cli import main

main()
