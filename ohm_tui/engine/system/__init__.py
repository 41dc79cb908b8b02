"""The system room: the kernel side (process table, verified signals, pid watcher,
spawning, exit records). No SQLite and no config; ``runner.py`` stays stdlib-only.
"""
