"""Every error OpenMFA raises on purpose, in one tree. Each class has a stable ``code`` (what
the SDK sends as ``{"code", "message", "request_id"}``) and an HTTP status; ``message`` says
what was wrong and what to do. The SDK's clients raise the very same classes for the codes a
node sends (``openmfa.sdk.errors``).

    OpenMfaError                     -- base (500 internal_error when nothing more is known)
    ├── ConfigError                  -- server.toml is unreadable or has a wrong value (local)
    ├── KeyFileError                 -- the key file is missing, corrupt or not this data file's
    ├── StoreError                   -- the data file cannot be used as it is (503)
    │   ├── DataFileMissing          -- no data file yet: run ``openmfa init``
    │   ├── DataFileExists           -- ``init`` would overwrite an existing data file
    │   ├── FormatTooNew             -- written by a newer release; this one must not touch it
    │   ├── NeedsMigration           -- written by an older release; migrate first
    │   ├── NodeBusy                 -- another openmfa process holds the data directory
    │   ├── NodeControlError         -- a node could not be stopped or started as it ran
    │   ├── BackupFailed             -- a backup could not be taken, verified or restored
    │   ├── NotReady                 -- the node cannot serve yet (``/readyz``)
    │   └── StaleState               -- a batch's state writes did not all apply (retried)
    ├── InstallFailed                -- install, upgrade or rollback could not go on
    ├── FarmError                    -- farm operations (local)
    │   ├── BalancerError            -- the load balancer's admin interface failed
    │   ├── RollingUpgradeFailed     -- ``farm upgrade``/``rollback`` stopped; rerun to resume
    │   ├── Fenced                   -- the node polled is not the master of this epoch
    │   ├── PeerError                -- another node did not answer or refused (502)
    │   └── SnapshotMismatch         -- a master's snapshot does not fit this node
    ├── PrimaryUnavailable           -- a first-factor backend did not answer
    ├── Unavailable                  -- the node did not answer or failed (client side)
    │   └── NodeTooOld               -- it does not serve this client's SDK version
    └── RequestError                 -- a caller asked for something wrong (remote fault)
        ├── Unauthorized             -- no API key, or a wrong, expired or revoked one
        ├── Forbidden                -- the API key's scope does not allow this call
        ├── MalformedRequest         -- the body is not JSON, or a header is broken
        │   └── MalformedPacket      -- a RADIUS datagram that does not decode
        ├── PayloadTooLarge          -- the body is larger than [server] max_body_bytes
        ├── NotFound                 -- no such user / method / API key
        │   └── NoSuchRoute          -- no such path
        ├── MethodNotAllowed         -- the path exists, the HTTP method does not
        ├── Conflict                 -- it exists already
        │   ├── NotMaster            -- a write sent to a farm subordinate: use the master
        │   ├── Diverged             -- this node holds changes its master does not have
        │   ├── PushClosed           -- a push answer for a request no longer waiting
        │   └── UnlockRequired       -- an activation without the screen-lock credential it needs
        ├── DeviceRefused            -- a device's signed message is not accepted (403)
        │   ├── UnlockRefused        -- a screen-lock credential or proof that does not verify
        │   └── DeviceClockOff       -- a device's clock is too far from the node's
        ├── ActivationRefused        -- an activation code is wrong, used or expired (403)
        ├── SnapshotNeeded           -- a subordinate asked for changes the master no longer keeps
        ├── OAuthRefused             -- an OpenID Connect request refused (invalid_request)
        │   ├── InvalidClient        -- an unknown client, or a wrong client secret (401)
        │   ├── InvalidGrant         -- a code used, expired, of another client or redirect URI
        │   ├── UnauthorizedClient   -- the client may not use this flow (an Entra client's code)
        │   └── AccessDenied         -- no second factor to vouch for, or a person not known (403)
        └── InvalidInput             -- a value is out of range or has the wrong shape

Expected authentication denials (wrong code, locked, replay) are not errors: they are
``core.verification.Decision`` values.
"""

from __future__ import annotations


class OpenMfaError(Exception):
    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, *, request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        """Set on errors a node sent (the client side): the id its log and audit use."""


class ConfigError(OpenMfaError):
    code = "config_error"


class KeyFileError(OpenMfaError):
    code = "key_file_error"


class StoreError(OpenMfaError):
    code = "store_error"
    http_status = 503


class DataFileMissing(StoreError):
    code = "data_file_missing"


class DataFileExists(StoreError):
    code = "data_file_exists"


class FormatTooNew(StoreError):
    code = "format_too_new"


class NeedsMigration(StoreError):
    code = "needs_migration"


class NodeBusy(StoreError):
    code = "node_busy"


class NodeControlError(StoreError):
    code = "node_control"


class BackupFailed(StoreError):
    code = "backup_failed"


class NotReady(StoreError):
    code = "not_ready"


class StaleState(StoreError):
    """A batch's state writes did not all apply: someone wrote behind the cache's back."""

    code = "stale_state"


class InstallFailed(OpenMfaError):
    code = "install_failed"


class FarmError(OpenMfaError):
    code = "farm_error"


class BalancerError(FarmError):
    code = "balancer"


class RollingUpgradeFailed(FarmError):
    code = "rolling_upgrade_failed"


class Fenced(FarmError):
    """The node polled is not the master of this node's epoch."""

    code = "fenced"


class PeerError(FarmError):
    """Another node of the farm did not answer, or refused what was asked of it."""

    code = "peer_error"
    http_status = 502


class SnapshotMismatch(FarmError):
    """A master's snapshot does not fit this node (another data key, another schema)."""

    code = "snapshot_mismatch"
    http_status = 409


class PrimaryUnavailable(OpenMfaError):
    """The first-factor backend did not answer (or is not configured)."""

    code = "primary_unavailable"
    http_status = 503


class DirectoryError(OpenMfaError):
    """A directory source could not be read (unreachable, refused bind, bad filter or base
    DN); the synchronisation changed nothing."""

    code = "directory_error"
    http_status = 503


class Unavailable(OpenMfaError):
    """Client side: no node answered, or the answer was not the SDK's."""

    code = "unavailable"
    http_status = 503


class NodeTooOld(Unavailable):
    """Client side: the node does not serve the SDK version this client speaks."""

    code = "node_too_old"


class RequestError(OpenMfaError):
    code = "bad_request"
    http_status = 400


class Unauthorized(RequestError):
    code = "unauthorized"
    http_status = 401


class Forbidden(RequestError):
    code = "forbidden"
    http_status = 403


class Reauthenticate(Forbidden):
    """A change of sign-in methods needs a recent second factor: sign in again first."""

    code = "reauthenticate"


class MalformedRequest(RequestError):
    code = "malformed_request"
    http_status = 400


class MalformedPacket(MalformedRequest, ValueError):
    """A RADIUS datagram that does not decode (RFC 2865 §3: silently discarded)."""

    code = "malformed_packet"


class PayloadTooLarge(RequestError):
    code = "body_too_large"
    http_status = 413


class NotFound(RequestError):
    code = "not_found"
    http_status = 404


class NoSuchRoute(NotFound):
    code = "no_such_route"


class MethodNotAllowed(RequestError):
    code = "method_not_allowed"
    http_status = 405


class Conflict(RequestError):
    code = "conflict"
    http_status = 409


class NotMaster(Conflict):
    """A write sent to a node that does not take writes; ``master_url`` is where they go
    ("" when the node does not know, e.g. during a handover)."""

    code = "not_master"

    def __init__(self, message: str, *, master_url: str = "", request_id: str = "") -> None:
        super().__init__(message, request_id=request_id)
        self.master_url = master_url


class Diverged(Conflict):
    """This node holds change records its master does not have."""

    code = "diverged"


class PushClosed(Conflict):
    """The push request was answered already, expired or ended."""

    code = "push_closed"


class UnlockRequired(Conflict):
    """A device's activation without an ``unlock`` credential while ``[mobile] require_unlock``
    is on: the code is not used up, the app registers a credential and activates again."""

    code = "unlock_required"


class DeviceRefused(Forbidden):
    """A device's signed poll or answer is refused: unknown or revoked device, bad signature,
    a replayed counter or nonce, a clock too far off, or a request of another user."""

    code = "device_refused"


class UnlockRefused(DeviceRefused):
    """A screen-lock credential (at activation) or proof (with an approval) that does not
    verify, where ``[mobile] require_unlock`` asks for one: nothing is used up or decided."""

    code = "unlock_refused"


class DeviceClockOff(DeviceRefused):
    """A device's message whose time is too far from the node's clock (the phone's clock is
    wrong): nothing else is wrong with the device."""

    code = "device_clock"


class ActivationRefused(Forbidden):
    """An activation code that does not exist, was used, or expired."""

    code = "activation_refused"


class SnapshotNeeded(RequestError):
    code = "snapshot_needed"
    http_status = 410


class OAuthRefused(RequestError):
    """An OpenID Connect request refused; ``code`` is the OAuth 2.0 error code (RFC 6749
    §4.1.2.1, §5.2) the portal answers the relying party with. Nothing is issued."""

    code = "invalid_request"
    http_status = 400


class InvalidClient(OAuthRefused):
    code = "invalid_client"
    http_status = 401


class InvalidGrant(OAuthRefused):
    code = "invalid_grant"


class UnauthorizedClient(OAuthRefused):
    code = "unauthorized_client"


class AccessDenied(OAuthRefused):
    code = "access_denied"
    http_status = 403


class InvalidInput(RequestError):
    code = "invalid_input"
    http_status = 422


def _tree(cls: type[OpenMfaError]) -> list[type[OpenMfaError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _tree(sub))]


def by_code() -> dict[str, type[OpenMfaError]]:
    """Every error class by its code (each class that names a code of its own)."""
    return {cls.code: cls for cls in _tree(OpenMfaError) if "code" in vars(cls)}
