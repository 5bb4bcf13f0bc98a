"""A farm of nodes: the master's change feed, subordinates that follow it, signed node traffic."""
