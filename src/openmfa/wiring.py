"""A running node, wired in one place: the open store and every service on it, started and
stopped in order. ``openmfa serve`` composes it with the SDK's routes (``sdk.app``) and the
HTTP server; the routes reach the services only through this object.

Start order: readiness (a first check of the store), the commit queue's thread, the RADIUS
server (its socket is read on the commit thread), the farm's role watcher. Stop: the reverse.
"""

from __future__ import annotations

import functools
import socket
import time

from prometheus_client import CollectorRegistry

from .config import Config
from .directory.password import DirectoryPasswords
from .directory.schedule import DirectorySchedule
from .farm import membership
from .farm.claims import round_for
from .farm.components import ComponentBoard
from .farm.endpoints import FarmEndpoints
from .farm.push_relay import MasterPush, wait_outcome
from .farm.runtime import FarmRuntime
from .node.accounts import Accounts
from .node.apikeys import ApiClient, ApiKeys, KeyRing
from .node.authenticator import Authenticator
from .node.commit_queue import CommitQueue
from .node.console_sign_in import ConsoleSignIn
from .node.first_factor import PasswordCheck
from .node.groups import Groups
from .node.notify import Notifier
from .node.notify_metrics import NotifyMetrics
from .node.oidc_codes import OidcCodes
from .node.oidc_eam import EntraEam
from .node.oidc_keys import OidcKeys
from .node.passkeys import Passkeys
from .node.password_change import PasswordChange
from .node.pins import Pins
from .node.policy import verify_policy
from .node.portal import PortalTokens
from .node.portal_methods import PortalMethods
from .node.portal_policy import PortalPolicy
from .node.portal_sessions import PortalSessions
from .node.portal_sign_in import SignInSteps
from .node.privacy import Privacy
from .node.push import Opened, PushService
from .node.push_hub import PushHub
from .node.readiness import Readiness
from .node.reports import ReportFolder, Reports
from .node.roles import Roles
from .node.session_ends import SessionEnds
from .node.signed_in import SignedIn
from .node.tokens import Tokens
from .node.user_search import UserSearch
from .radius.primary import LdapBind, LocalPasswords, UpstreamRadius
from .radius.service import RadiusService
from .store.database import Store
from .wiring_metrics import NodeMetrics


class NodeRuntime:
    def __init__(
        self,
        store: Store,
        config: Config,
        radius_listen: str | None = None,
        radius_sock: socket.socket | None = None,
    ) -> None:
        """``radius_listen`` overrides ``[radius] listen`` (empty: RADIUS off)."""
        self.store = store
        self.config = config
        self.keyring = KeyRing()
        self.accounts = Accounts(store, config)
        self.groups = Groups(store, self.accounts)
        self.user_search = UserSearch(store, self.accounts)
        self.reports = Reports(store)
        self.report_folder = ReportFolder(self.reports)
        self.privacy = Privacy(store, config, self.accounts)
        self.pins = Pins(store, self.accounts)
        self.apikeys = ApiKeys(store)
        self.tokens = Tokens(store, config, self.accounts)
        self.push = PushService(store, config, self.accounts)
        self.portal = PortalTokens(store, config)
        self.session_ends = SessionEnds(store)
        self.passkeys = Passkeys(self.accounts, self.portal, config)
        self.push_hub = PushHub()
        self.authenticator = Authenticator(
            store, verify_policy(config), self.keyring, round_for(store, config), self.push
        )
        self.queue = CommitQueue(self.authenticator)
        self.max_body = int(config.get("server", "max_body_bytes"))
        listen = config.get("radius", "listen") if radius_listen is None else radius_listen
        self.password_checks: dict[str, PasswordCheck] = {
            "local": LocalPasswords(store),
            "ldap": LdapBind(config, store),
            "radius": UpstreamRadius(config),
        }
        """The first-factor checks, built once per configuration: RADIUS clients and the
        portal's sign-in use the same ones (``[radius] clients``' primary, ``[portal] primary``)."""
        self.sign_in = SignInSteps(
            store,
            self.queue,
            self.accounts,
            self.portal,
            self.push,
            self.push_hub,
            self.passkeys,
            self.password_checks,
            wait_outcome,
            PortalPolicy(store, verify_policy(config)),
        )
        self.roles = Roles(store, self.accounts, self.portal)
        self.console = ConsoleSignIn(self.sign_in)
        self.portal_methods = PortalMethods(self.accounts, self.portal, config)
        self.portal_sessions = PortalSessions(store, self.accounts, self.session_ends)
        self.signed_in = SignedIn(
            store, self.keyring, self.portal, self.accounts, self.session_ends
        )
        self.password_change = PasswordChange(
            store,
            self.queue,
            self.accounts,
            self.portal,
            self.password_checks,
            DirectoryPasswords(config, store),
            config,
        )
        self.oidc_keys = OidcKeys(store, config)
        self.oidc_codes = OidcCodes(store, config, self.accounts, self.oidc_keys)
        self.oidc_eam = EntraEam(store, config, self.accounts, self.portal, self.oidc_keys)
        self.radius = (
            RadiusService(
                store,
                config,
                self.queue,
                listen,
                self.password_checks,
                self.push,
                self.push_hub,
                MasterPush(store),
                radius_sock,
            )
            if listen
            else None
        )
        self.components = ComponentBoard(store.data_dir.root, store.node_name)
        self.farm = FarmEndpoints(
            store,
            verify_policy(config).lockout,
            self.components,
            self.push,
            self.push_hub,
            self.radius,
        )
        self.farm_runtime = FarmRuntime(store, config, self.queue, self.farm.journal)
        self.readiness = Readiness(store.ready)
        self.directory = DirectorySchedule(store, config, functools.partial(_is_master, store))
        self.metrics = CollectorRegistry(auto_describe=True)
        self.metrics.register(NodeMetrics(self))
        self.notifier = Notifier(store, config)
        self.metrics.register(NotifyMetrics(self.notifier))

    async def start(self) -> None:
        import asyncio

        await asyncio.to_thread(self.readiness.start)
        loop, hub = asyncio.get_running_loop(), self.push_hub

        def wake(opened: list[Opened]) -> None:
            loop.call_soon_threadsafe(hub.opened, opened)

        self.authenticator.on_push = wake
        self.queue.start()
        try:
            if self.radius is not None:
                await self.radius.start()
            await self.farm_runtime.start()
            self.directory.start()
            self.session_ends.start()
            self.report_folder.start()
            await asyncio.to_thread(self.notifier.start)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        import asyncio

        await asyncio.to_thread(self.notifier.stop)
        await asyncio.to_thread(self.report_folder.stop)
        await self.session_ends.stop()
        await self.directory.stop()
        await self.farm_runtime.stop()
        if self.radius is not None:
            await self.radius.stop()
        self.queue.stop()  # answers what RADIUS read last, then:
        if self.radius is not None:
            self.radius.close()
        self.readiness.stop()

    def client(self, token: str | None, permission: str) -> ApiClient:
        """Check an API key against the data file (in a worker thread: it reads)."""
        with self.store.read() as conn:
            client = self.keyring.check(conn, Store.generation(conn), token, time.time())
        client.require(permission)
        return client

    def operator(self, token: str | None, operator: str, permission: str) -> ApiClient:
        """Check a console key and the operator's token it carries, and the operator's role
        against ``permission`` (``node.roles``; in a worker thread: it reads)."""
        now = time.time()
        with self.store.read() as conn:
            key = self.keyring.check(conn, Store.generation(conn), token, now)
        client = self.roles.operator(key, operator, now)
        client.require(permission)
        return client


def _is_master(store: Store) -> bool:
    """Whether this node is its farm's master now (a node on its own is its own master)."""
    m = membership.load(store)
    return m is None or m.is_master
