"""``python -m stream_app.worker``: the same entry point as ``fraudstream-worker``."""

from stream_app.worker.main import main

main()
