"""Identity-provider adapters: the web sign-ins of other software ask OpenMFA for the second
factor. Like the portal, they talk to the nodes only through the SDK (an ``adapter`` key).

``lemonldap``: LemonLDAP::NG's REST second factor, registered with its own ``lemonldap-ng-cli``
under the stable name ``openmfa`` (an extra second-factor instance, ``sfExtra``).
"""
