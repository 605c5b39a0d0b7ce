"""`python -m logs ...`: the logs and web commands without the device CLI (tests, a workstation copy of the database)."""

import click

from logs.cli import logs, web


@click.group()
def main() -> None:
    """clockface attendance log tools."""


main.add_command(logs)
main.add_command(web)

if __name__ == "__main__":  # pragma: no cover
    main()
