"""`python -m hcdc` runs the same command line as the `hcdc` script."""

from hcdc.cli import main

if __name__ == "__main__":
    main()
