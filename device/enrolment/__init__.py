"""Who may be enrolled: per-photo rules, all-photo review, and a folder or USB stick turned into a gallery."""
