"""``python -m wrim``: the ``wrim`` command line (see `wrim.cli`); also what torchrun runs."""

from wrim.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    raise SystemExit(main())
