"""Directory synchronisation: people from LDAP and Active Directory (see ``sync``)."""
