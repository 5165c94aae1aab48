"""Parsed and validated documents, cached by their text: both paths read a document from here once.

A document is parsed with a token limit, so a huge one is refused while it is read, and a document
not seen before is parsed and validated in a worker thread: however large, it never holds the
event loop (graphql-core is pure Python; the thread gives the loop the GIL every few ms).

Validation is bounded too: graphql-core compares fields of one response name pairwise, so a
document repeating one field spent up to 500,000 comparisons (1.5 s of CPU, 20 s for a batch of
ten) before giving up; here it may spend COMPARISONS_PER_TOKEN per token of MAX_QUERY_TOKENS, and
a document needing more is refused as too complex.

The cache is bounded by weight as well as count: a parse tree costs about 400 bytes a token, so
anonymous clients sending large distinct documents must not hold a gigabyte. Only valid documents
are kept; one that fails to parse or validate is prepared again if it is sent again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OverlappingFieldsCanBeMergedRule,
    ValidationContext,
    parse,
    specified_rules,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.schema.schema import validate_document

from gateway.errors import ErrorCode, GatewayError

if TYPE_CHECKING:
    from gateway.execution.direct import DirectPlan
    from gateway.execution.variables import Coercers
    from gateway.telemetry.tracing import Tracing

__all__ = ["DocumentCache", "Prepared", "max_source_length"]

# Tokens the cache keeps in all, in documents of MAX_QUERY_TOKENS: ~40 MB at the default 5,000,
# while 256 documents of up to 390 tokens (a large app's operations, fragments included) all stay.
BUDGET_DOCUMENTS = 20
# Field comparisons validation may spend per token of MAX_QUERY_TOKENS: 100,000 (0.3 s) at the
# default. Fields of one response name are compared pairwise: an app's operations spend a few
# thousand, a root query spreading 100 fragments that each select `viewer { … }` all of it.
COMPARISONS_PER_TOKEN = 20


def max_source_length(max_tokens: int) -> int:
    """The longest document text read under MAX_QUERY_TOKENS: a document of a few huge tokens
    (strings, comments) is refused as early as one of many small ones."""
    return max_tokens * 40


@dataclass(slots=True)
class Prepared:
    """A document's parse tree and its validation errors; `document` is None when it does not parse."""

    query: str
    document: DocumentNode | None
    errors: Sequence[GraphQLError]
    operations: dict[str | None, OperationDefinitionNode] = field(default_factory=dict)
    fragments: dict[str, FragmentDefinitionNode] = field(default_factory=dict)
    # Per operation, its variables' coercers (set on first use).
    coercers: dict[str | None, Coercers | None] = field(default_factory=dict)
    # Per mutation, how it runs without graphql-core's executor (None: it cannot); set on first use.
    direct: dict[str | None, DirectPlan | None] = field(default_factory=dict)
    weight: int = 0  # what keeping a valid document costs, in tokens (see `_weight`)

    def operation(self, name: str | None) -> OperationDefinitionNode | None:
        """The operation a request names, or its only one; None when there is no such choice."""
        if name is None:
            return next(iter(self.operations.values())) if len(self.operations) == 1 else None
        return self.operations.get(name)


def _weight(query: str, document: DocumentNode) -> int:
    """What a parsed document costs to keep, in tokens: those of its parse tree (comments too, as
    they stay linked in it), or its length over 40 when its text is the larger part."""
    tokens = 0
    token = document.loc.start_token.next if document.loc is not None else None
    while token is not None:
        tokens += 1
        token = token.next
    return max(tokens, len(query) // 40)


class TooLarge(GatewayError):
    """The document has more tokens than MAX_QUERY_TOKENS allows."""

    code = ErrorCode.QUERY_TOO_COMPLEX


class TooComplexToValidate(GatewayError):
    """Validating the document would take more than MAX_QUERY_TOKENS allows."""

    code = ErrorCode.QUERY_TOO_COMPLEX

    def __init__(self, max_tokens: int) -> None:
        super().__init__(
            "the document is too complex: validating its overlapping fields and fragments takes more"
            f" than MAX_QUERY_TOKENS={max_tokens} allows"
        )


def _bounded_rules(max_tokens: int) -> tuple[type[ASTValidationRule], ...]:
    """The specification's rules, the comparison of overlapping fields bounded by `max_tokens`."""
    budget = COMPARISONS_PER_TOKEN * max_tokens

    class BoundedOverlaps(OverlappingFieldsCanBeMergedRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.rule_context.remaining_complexity_budget = budget

    return tuple(BoundedOverlaps if r is OverlappingFieldsCanBeMergedRule else r for r in specified_rules)


def _span(tracing: Tracing | None, name: str) -> AbstractContextManager[Any]:
    return nullcontext() if tracing is None else tracing.span(name)


def _prepare(
    schema: GraphQLSchema,
    query: str,
    max_tokens: int,
    rules: tuple[type[ASTValidationRule], ...],
    tracing: Tracing | None = None,
) -> Prepared:
    try:
        with _span(tracing, "graphql.parse"):
            document = parse(query, max_tokens=max_tokens, max_source_length=max_source_length(max_tokens))
    except GraphQLError as exc:
        if "more than" in exc.message and "Parsing aborted" in exc.message:
            too_large = TooLarge(f"the document is too large: more than MAX_QUERY_TOKENS={max_tokens} tokens")
            exc = GraphQLError(str(too_large), original_error=too_large)
        return Prepared(query, None, [exc])
    with _span(tracing, "graphql.validate"):
        # Strawberry's own rules (oneOf, Maybe) as well as `rules`, the specification's among them.
        errors = validate_document(schema, document, rules)
    if errors and _aborted(errors[-1]):
        too_complex = TooComplexToValidate(max_tokens)
        errors = [*errors[:-1], GraphQLError(str(too_complex), original_error=too_complex)]
    prepared = Prepared(query, document, errors, weight=0 if errors else _weight(query, document))
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            prepared.operations[definition.name.value if definition.name else None] = definition
        elif isinstance(definition, FragmentDefinitionNode):
            prepared.fragments[definition.name.value] = definition
    return prepared


def _aborted(error: GraphQLError) -> bool:
    """Whether validation gave up for the work it would take (not for the number of its errors)."""
    return isinstance(error, ValidationAbortedError) and error.message == "Validation aborted."


class DocumentCache:
    """The last valid documents seen, parsed and validated against one schema: at most `size` of
    them, and at most `BUDGET_DOCUMENTS` times MAX_QUERY_TOKENS tokens in all (see `_weight`)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        max_tokens: int,
        size: int = 256,
        rules: Sequence[type[ASTValidationRule]] = (),
    ) -> None:
        self._schema = schema
        self._max_tokens = max_tokens
        # The specification's rules, and those given (no introspection).
        self._rules = (*_bounded_rules(max_tokens), *rules)
        self._size = size
        self.budget = BUDGET_DOCUMENTS * max_tokens
        self._items: OrderedDict[str, Prepared] = OrderedDict()
        self.retained = 0  # the weight of the documents kept, at most `budget`
        self.prepared = 0  # documents parsed and validated so far, for tests and benchmarks
        self.tracing: Tracing | None = None  # spans around parse and validate, when tracing is on

    def __len__(self) -> int:
        """How many documents it keeps."""
        return len(self._items)

    def cached(self, query: str) -> Prepared | None:
        """The document when it is already prepared (without waiting), else None."""
        prepared = self._items.get(query)
        if prepared is not None:
            self._items.move_to_end(query)
        return prepared

    async def get(self, query: str) -> Prepared:
        prepared = self.cached(query)
        if prepared is not None:
            return prepared
        # to_thread copies the context: the spans made in the thread join the operation's trace.
        prepared = await asyncio.to_thread(
            _prepare, self._schema, query, self._max_tokens, self._rules, self.tracing
        )
        self.prepared += 1
        if prepared.document is not None and not prepared.errors:
            self._keep(query, prepared)
        return prepared

    def _keep(self, query: str, prepared: Prepared) -> None:
        if prepared.weight > self.budget or query in self._items:
            return  # larger than all the rest together; or kept by a request that prepared it meanwhile
        self._items[query] = prepared
        self.retained += prepared.weight
        while len(self._items) > self._size or self.retained > self.budget:
            self.retained -= self._items.popitem(last=False)[1].weight
