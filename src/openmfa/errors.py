"""Every error OpenMFA raises on purpose, in one place.

    OpenMfaError                     -- base; ``code`` is stable, ``message`` says what to do
    ├── ConfigError                  -- server.toml is unreadable or has a wrong value (local)
    ├── KeyFileError                 -- the key file is missing, corrupt or not this data file's
    ├── StoreError                   -- the data file cannot be used as it is
    │   ├── DataFileMissing          -- no data file yet: run ``openmfa init``
    │   ├── DataFileExists           -- ``init`` would overwrite an existing data file
    │   ├── FormatTooNew             -- written by a newer release; this one must not touch it
    │   └── NeedsMigration           -- written by an older release; migrate first
    └── RequestError                 -- a caller asked for something wrong (remote fault)
        ├── Unauthorized             -- no API key, or a wrong, expired or revoked one
        ├── Forbidden                -- the API key's scope does not allow this call
        ├── MalformedRequest         -- the body is not JSON, or a header is broken
        ├── PayloadTooLarge          -- the body is larger than [server] max_body_bytes
        ├── NotFound                 -- no such user / method / API key
        ├── Conflict                 -- it exists already
        │   └── NotMaster            -- a write sent to a farm subordinate: use the master
        ├── SnapshotNeeded           -- a subordinate asked for changes the master no longer keeps
        └── InvalidInput             -- a value is out of range or has the wrong shape

Expected authentication denials (wrong code, locked, replay) are not errors: they are
``core.verification.Decision`` values.
"""

from __future__ import annotations


class OpenMfaError(Exception):
    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class RequestError(OpenMfaError):
    code = "bad_request"
    http_status = 400


class Unauthorized(RequestError):
    code = "unauthorized"
    http_status = 401


class Forbidden(RequestError):
    code = "forbidden"
    http_status = 403


class MalformedRequest(RequestError):
    code = "malformed_request"
    http_status = 400


class PayloadTooLarge(RequestError):
    code = "body_too_large"
    http_status = 413


class NotFound(RequestError):
    code = "not_found"
    http_status = 404


class Conflict(RequestError):
    code = "conflict"
    http_status = 409


class NotMaster(Conflict):
    code = "not_master"


class SnapshotNeeded(RequestError):
    code = "snapshot_needed"
    http_status = 410


class InvalidInput(RequestError):
    code = "invalid_input"
    http_status = 422
