"""clockface attendance log: the event store, reports, export and retention."""
