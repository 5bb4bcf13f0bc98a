"""Pure verification domain: no I/O, no clock, no storage.

Everything here takes its inputs (secrets, counters, ``now``) as arguments and returns values.
Transports (the SDK, RADIUS) and the store call into this package, never the other way round.
"""
