"""The administration console: helpdesk and administrators run OpenMFA from a browser, each
under their own name (issue 37). An app beside the portal: it reaches the nodes only through
the SDK (``sdk.calls_console``), with a ``console`` key and the signed-in operator's token; the
node decides every call by the operator's role and audits it as ``KEY/OPERATOR``."""
