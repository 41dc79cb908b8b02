"""The actions room: respawn, recovery after an ohm crash, cleanup, stop and restart,
and the pure respawn policy they follow."""
