"""RADIUS front end (RFC 2865, RFC 3579 Message-Authenticator, RFC 5997 Status-Server).

``packet`` is the sans-IO codec: bytes in, values out, no sockets. ``server`` is the asyncio
shell around it; ``flows`` decides what an Access-Request means for a given RADIUS client.
"""
