"""`python -m device.cli ...`, the same as the `clockface` command."""

from device.cli.main import main

main(prog_name="clockface")
