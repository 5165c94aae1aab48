"""Persisted operations: Apollo's automatic persisted queries, and trusted documents from a manifest.

APQ, as Apollo Client's persisted-queries link and Apollo Server speak it: a request carrying only
`extensions.persistedQuery.sha256Hash` runs the document registered under that hash, or is answered
PERSISTED_QUERY_NOT_FOUND (the link then sends the hash with the document, which is registered
after its hash is checked). The store is an LRU, per instance, of APQ_CACHE_SIZE documents and
APQ_CACHE_SIZE x `AVERAGE_DOCUMENT` characters of them in all. With PERSISTED_OPERATIONS=only the
gateway runs nothing but the documents of PERSISTED_OPERATIONS_MANIFEST (the JSON of hash ->
document that graphql-codegen's client preset and Relay's compiler write), named by
`extensions.persistedQuery.sha256Hash` or `documentId`; any other document is refused.
A persisted document is parsed and validated once: later requests find it in the executor's cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.errors import BadUserInput, ErrorCode, GatewayError
from gateway.execution.documents import max_source_length
from gateway.execution.operation import Operation
from gateway.settings import Settings

__all__ = ["ManifestError", "PersistedOperations", "PersistedQueryNotFound"]

# An operation's name where it is defined; read without parsing every document of a manifest.
_DEFINED_NAME = re.compile(r"\b(?:query|mutation|subscription)\s+([_A-Za-z][_0-9A-Za-z]*)")
# Characters the APQ store keeps per APQ_CACHE_SIZE: ~4 MB at the default 1,000, where documents of
# up to 200 KB (MAX_QUERY_TOKENS' 40 characters a token) would hold 200 MB.
AVERAGE_DOCUMENT = 4000


class PersistedQueryNotFound(GatewayError):
    """Apollo's link retries with the document on exactly this message and code."""

    code = ErrorCode.PERSISTED_QUERY_NOT_FOUND

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


class PersistedOperationRefused(GatewayError):
    """PERSISTED_OPERATIONS=only, and the request names no document of the manifest."""

    code = ErrorCode.PERSISTED_QUERY_REQUIRED


class ManifestError(ValueError):
    """PERSISTED_OPERATIONS_MANIFEST cannot be used; the message says why (a settings error)."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_manifest(path: Path) -> dict[str, str]:
    """hash -> document, from graphql-codegen's or Relay's persisted-documents JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ManifestError(f"PERSISTED_OPERATIONS_MANIFEST={path}: cannot be read ({reason})") from None
    except ValueError as exc:
        raise ManifestError(f"PERSISTED_OPERATIONS_MANIFEST={path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ManifestError(f"PERSISTED_OPERATIONS_MANIFEST={path}: not an object of id -> document text")
    return data


def _requested_hash(operation: Operation) -> str | None:
    persisted = (operation.extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise BadUserInput("extensions.persistedQuery", "only version 1 is supported")
    value: Any = persisted.get("sha256Hash")
    if not isinstance(value, str) or len(value) != 64:
        raise BadUserInput("extensions.persistedQuery.sha256Hash", "is not a SHA-256 hex digest")
    return value.lower()


class PersistedOperations:
    """Turns a request naming a persisted document into the document it names."""

    def __init__(self, settings: Settings) -> None:
        self.only = settings.persisted_operations == "only"
        self.enabled = settings.persisted_operations != "off"
        path = settings.persisted_operations_manifest
        self._manifest = load_manifest(path) if path is not None else {}
        self._trusted = frozenset(self._manifest.values())
        self._size = settings.apq_cache_size
        self.budget = settings.apq_cache_size * AVERAGE_DOCUMENT
        self.retained = 0  # characters of the registered documents, at most `budget`
        self._longest = max_source_length(settings.max_query_tokens)
        self._registered: OrderedDict[str, str] = OrderedDict()

    def operation_names(self) -> frozenset[str]:
        """The names of the manifest's operations: known names, for the metrics' labels."""
        return frozenset(name for text in self._manifest.values() for name in _DEFINED_NAME.findall(text))

    def resolve(self, operation: Operation) -> Operation:
        """`operation` with the document its hash names; raises a coded GatewayError otherwise."""
        if not self.enabled:
            return operation
        wanted = operation.document_id or _requested_hash(operation)
        if wanted is None:
            if self.only and operation.query is not None and operation.query not in self._trusted:
                raise PersistedOperationRefused(
                    "this gateway runs only persisted operations (PERSISTED_OPERATIONS=only)"
                )
            return operation
        known = self._manifest.get(wanted) or self._lookup(wanted)
        if operation.query is None:
            if known is None:
                if self.only:
                    raise PersistedOperationRefused(f"no persisted operation {wanted}")
                raise PersistedQueryNotFound()
            return replace(operation, query=known)
        if self.only:
            if known != operation.query:
                raise PersistedOperationRefused(f"no persisted operation {wanted} with this document")
            return operation
        if sha256(operation.query) != wanted:
            raise BadUserInput("extensions.persistedQuery.sha256Hash", "provided sha does not match query")
        if len(operation.query) <= min(self._longest, self.budget):
            # A longer one is refused unread (QUERY_TOO_COMPLEX), or would push out all the others.
            self._register(wanted, operation.query)
        return operation

    def _lookup(self, digest: str) -> str | None:
        text = self._registered.get(digest)
        if text is not None:
            self._registered.move_to_end(digest)
        return text

    def _register(self, digest: str, text: str) -> None:
        if digest in self._registered:
            self._registered.move_to_end(digest)
            return
        self._registered[digest] = text
        self.retained += len(text)
        while len(self._registered) > self._size or self.retained > self.budget:
            self.retained -= len(self._registered.popitem(last=False)[1])
