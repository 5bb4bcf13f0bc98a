"""The Web Service SDK: the REST/JSON API every other part (portal, mobile service, adapters,
RADIUS front ends on other hosts) uses, and a typed Python client for it."""
