"""The running terminal: tracking, per-track decisions, the attendance recorder, the service loop, systemd notify, preview, demo."""
