"""tests/system: the systemd units (static checks) and the QEMU boot test."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vm: boots a QEMU virtual machine (root, ~10-15 minutes; see tests/system/test_boot_vm.py)"
    )


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Each VM check with its timing, in the CI log whether the checks passed or not."""
    from tests.system import vmlib

    if vmlib.REPORT:
        terminalreporter.section("clockface VM boot checks")
        for line in vmlib.REPORT:
            terminalreporter.write_line(line)
