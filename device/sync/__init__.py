"""The sync agent (issue 13): this terminal's attendance log pushed to the central PostgreSQL.

Nothing here is imported by `clockface run`: the recogniser never waits on the
network. psycopg and logs.central are imported only by the agent itself.
"""
