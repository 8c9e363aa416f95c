"""`python -m bench`: run the benchmark (see `--help`)."""

from bench._cli import main

if __name__ == "__main__":
    main()
