"""tests/system: the systemd units (static checks) and the QEMU boot test."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: boots a QEMU virtual machine (root, ~10-15 minutes; see tests/system/test_boot_vm.py)")
