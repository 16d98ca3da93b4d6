"""The truth store: models of status.json (the public contract), its atomic writer/reader,
and the SQL history.

May import: workers.protocol. Never imports supervisor or policies.
"""
