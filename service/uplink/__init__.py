"""The uplink: what sends an analysis's statistics to the service, from outside it.

    client.py  ApiClient (HTTP, Arrow batches) and DbClient (a database written directly), connect()
    spool.py   Spool: the live process's durable local queue (one SQLite file)
    sender.py  Sender: drains the spool into an ApiTarget or DbTarget, in a thread, with backoff
"""
