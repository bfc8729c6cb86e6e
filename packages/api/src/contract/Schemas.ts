import {
  AddSetRequest,
  type BackfillJob,
  BackfillRequest,
  CompareReport,
  CompareRequest,
  CompareSide,
  type DryRunReport,
  type EmbeddingSets,
  ExtractionRequest,
  type ExtractionResult,
  messageBatch,
  MessageInput,
  SearchRequest,
  SearchResponse,
  SearchResult,
  SetReport,
  type SetsReport,
  type StatusReport
} from "@autoembed/core"
import { type Effect, Schema } from "effect"
import { camelKeys, wireStruct } from "./Wire.js"

/**
 * Response shapes of the HTTP API. Each is checked against core's type at compile time
 * (`conforms`): a field core adds or drops without the wire following is a type error here, and
 * the server encodes every answer through these schemas refusing unknown fields, so a field the
 * schema lacks fails the request in the tests instead of reaching clients undocumented.
 */
const conforms = <A>() => <S extends Schema.Schema<A, any, never>>(schema: S): S => schema

const Count = Schema.Int.pipe(Schema.nonNegative())

/*
 * Requests and search answers are core's schemas (bounds, defaults and messages live there, once),
 * with the camelCase fields read from and written to their snake_case JSON names.
 */

/** `GET /v1/search`'s request as core's `SearchRequest`, once its query string is decoded. */
export const SearchRequestBody = wireStruct(SearchRequest.fields, {
  topicId: "topic_id",
  atomType: "atom_type",
  minScore: "min_score"
})

export const SearchResponseBody = wireStruct({
  ...SearchResponse.fields,
  results: Schema.Array(wireStruct(SearchResult.fields, { topicId: "topic_id", createdAt: "created_at" }))
}, {})

export const BackfillRequestBody = wireStruct(BackfillRequest.fields, {
  dryRun: "dry_run",
  entityTypes: "entity_types",
  batchSize: "batch_size",
  includeFailed: "include_failed"
})

export const AddSetRequestBody = wireStruct(AddSetRequest.fields, { baseUrl: "base_url" })

export const ExtractionRequestBody = wireStruct(ExtractionRequest.fields, { messageIds: "message_ids" })

export const IngestMessagesBody = Schema.Struct({
  messages: messageBatch(
    wireStruct(MessageInput.fields, { chatId: "chat_id", sentAt: "sent_at", externalId: "external_id" })
  )
})

export const ErrorResponse = Schema.Struct({
  error: Schema.Struct({
    code: Schema.String.annotations({
      description: "Stable machine-readable code, e.g. validation_failed, unauthorized, not_found"
    }),
    message: Schema.String,
    details: Schema.Unknown.annotations({
      description: "validation_failed: a list of {path, message}; other codes: an object or null"
    }),
    request_id: Schema.String.annotations({ description: "Also in the x-request-id header and the server log" })
  })
}).annotations({ identifier: "Error" })
export type ErrorResponse = typeof ErrorResponse.Type

export const IngestResponse = Schema.Struct({ ids: Schema.Array(Schema.Int) }).annotations({
  identifier: "IngestResponse"
})

export const ExtractionResponse = conforms<ExtractionResult>()(
  camelKeys(
    Schema.Struct({
      topic_ids: Schema.Array(Schema.Int),
      atom_ids: Schema.Array(Schema.Int),
      message_ids: Schema.Array(Schema.Int)
    }).annotations({ identifier: "ExtractionResponse" })
  )
)

const Usd = Schema.Number.pipe(Schema.nonNegative()).annotations({ description: "US dollars" })

export const DryRunResponse = conforms<DryRunReport>()(
  camelKeys(
    Schema.Struct({
      dry_run: Schema.Literal(true),
      entity_types: Schema.Record({
        key: Schema.String,
        value: camelKeys(Schema.Struct({
          missing: Count,
          stale: Count,
          failed: Count,
          model: Schema.String.annotations({ description: "provider/model the set embeds with" }),
          tokens: Count.annotations({ description: "Estimated input tokens of this set's rows" }),
          cost_usd: Usd,
          calibration: Schema.Number.annotations({
            description: "Factor from the ledger: what the provider reported over autoembed's count; 1 until known"
          })
        }))
      }),
      total: Count,
      tokens: Count.annotations({
        description: "Estimated input tokens of what a run would embed: the texts counted in the database " +
          "(ceil(UTF-8 bytes / 3) with the model's prefix, capped at its context) times the calibration"
      }),
      cost_usd: Usd.annotations({ description: "The estimate at each model's price (the configuration's prices)" })
    }).annotations({ identifier: "BackfillDryRun" })
  )
)

export const BackfillJobSchema = conforms<BackfillJob>()(
  camelKeys(
    Schema.Struct({
      id: Schema.String,
      state: Schema.Literal("running", "succeeded", "failed", "cancelled"),
      phase: Schema.Literal("queueing", "embedding", "indexing", "done"),
      bulk_types: Schema.Array(Schema.String).annotations({
        description: "Types loaded on the bulk path (index dropped during the load, built once at the end)"
      }),
      entity_types: Schema.Array(Schema.String),
      total: Count,
      processed: Count,
      succeeded: Count,
      failed: Count,
      skipped: Count,
      rate_per_second: Schema.Number,
      eta_seconds: Schema.NullOr(Schema.Number),
      elapsed_seconds: Schema.Number,
      started_at: Schema.String,
      finished_at: Schema.NullOr(Schema.String),
      error: Schema.NullOr(Schema.String)
    }).annotations({ identifier: "BackfillJob" })
  )
)

export const BackfillStarted = Schema.Struct({ job: BackfillJobSchema }).annotations({
  identifier: "BackfillStarted"
})

export const RetryFailedRequest = Schema.Struct({
  entity_types: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(63))).pipe(
      Schema.minItems(1),
      Schema.maxItems(50)
    )
  )
}).annotations({ identifier: "RetryFailedRequest" })

export const RetryFailedResponse = Schema.Struct({ requeued: Count }).annotations({
  identifier: "RetryFailedResponse"
})

/** One embedding set as `GET /v1/sets`, the lifecycle routes and the status report show it. */
export const SetReportBody = wireStruct({
  ...SetReport.fields,
  index: wireStruct(SetReport.fields.index.fields, { bulkMark: "bulk_mark", sizeBytes: "size_bytes" })
}, {
  baseUrl: "base_url",
  vectorColumn: "vector_column",
  storageBytes: "storage_bytes",
  tableBytes: "table_bytes",
  createdAt: "created_at",
  activatedAt: "activated_at"
}).annotations({ identifier: "SetReport" })

export const SetsResponse = conforms<SetsReport>()(
  Schema.Struct({ sets: Schema.Array(SetReportBody) }).annotations({ identifier: "SetsResponse" })
)

/** `POST /v1/sets/{source}/{set}/activate`'s optional body. */
export const ActivateSetRequest = Schema.Struct({
  force: Schema.optional(Schema.Boolean.annotations({
    description: "Activate even though rows have no vector in the set yet (search misses them until they do)"
  }))
}).annotations({ identifier: "ActivateSetRequest" })

export const DropSetResponse = conforms<Effect.Effect.Success<ReturnType<EmbeddingSets["drop"]>>>()(
  Schema.Struct({
    dropped: Schema.String.annotations({ description: "The set's name" }),
    key: Schema.String.annotations({ description: "What the queue and bookkeeping knew the set by" })
  }).annotations({ identifier: "DropSetResponse" })
)

/** `POST /v1/sets/compare`'s body: core's CompareRequest (its keys are already the wire's). */
export const CompareRequestBody = wireStruct(CompareRequest.fields, {})

const CompareSideBody = wireStruct(CompareSide.fields, {
  latencyP50Ms: "latency_p50_ms",
  latencyP95Ms: "latency_p95_ms",
  storageBytes: "storage_bytes",
  indexBytes: "index_bytes",
  ndcgAt10: "ndcg_at_10",
  recallAt10: "recall_at_10"
})

export const CompareReportBody = wireStruct({ ...CompareReport.fields, a: CompareSideBody, b: CompareSideBody }, {
  querySource: "query_source",
  overlapAt10: "overlap_at_10"
}).annotations({ identifier: "CompareReport" })

const IndexState = camelKeys(Schema.Struct({
  name: Schema.String,
  state: Schema.Literal("valid", "building", "missing").annotations({
    description: "building: not yet valid (e.g. a bulk rebuild); missing: search scans exactly"
  }),
  definition: Schema.NullOr(Schema.String),
  matches_config: Schema.Boolean.annotations({
    description: "Built with the configured kind, m and ef_construction"
  }),
  bulk: Schema.NullOr(Schema.String).annotations({ description: "Set while a bulk load holds the index dropped" })
}))

const SourceStatus = camelKeys(Schema.Struct({
  total: Count,
  embedded: Count,
  pending: Count,
  missing: Count,
  stale: Count,
  failed: Count,
  in_flight: Count,
  oldest_pending_seconds: Schema.NullOr(Schema.Number),
  index: IndexState
}))

const UsageFigures = camelKeys(Schema.Struct({ tokens: Count, cost_usd: Usd }))

const LedgerLine = camelKeys(Schema.Struct({
  source: Schema.String,
  set: Schema.String.annotations({ description: "The embedding set's key: <source>, or <source>@<n>" }),
  model: Schema.String,
  kind: Schema.Literal("document", "query").annotations({
    description: "document: rows embedded by the workers; query: search queries embedded"
  }),
  usd_per_million_tokens: Schema.NullOr(Schema.Number).annotations({
    description: "The price used; null when none is known (the cost counts as 0)"
  }),
  hour: UsageFigures,
  day: UsageFigures,
  total: UsageFigures,
  estimated_tokens: Count.annotations({
    description: "Of the total, tokens autoembed counted because the provider reported no usage"
  }),
  requests: Count,
  inputs: Count
}))

const Usage = Schema.Struct({
  hour: UsageFigures.annotations({ description: "The current clock hour (UTC) so far" }),
  day: UsageFigures.annotations({ description: "The current clock hour and the 23 before it" }),
  total: UsageFigures,
  lines: Schema.Array(LedgerLine)
}).annotations({
  identifier: "TokenUsage",
  description: "Input tokens sent to the providers and their cost, from the ledger (every process's calls)"
})

export const StatusResponse = conforms<StatusReport>()(
  camelKeys(
    Schema.Struct({
      sources: Schema.Record({ key: Schema.String, value: SourceStatus }),
      sets: Schema.Array(SetReportBody).annotations({
        description: "Every embedding set of every source; `sources` describes each source's configured set"
      }),
      queue: camelKeys(Schema.Struct({
        running: Schema.Boolean,
        worker_id: Schema.NullOr(Schema.String),
        depth: Count,
        capacity: Count,
        in_flight: Count,
        concurrency: Count,
        batch_size: Count,
        paused_for_ms: Schema.Number,
        last_error: Schema.NullOr(Schema.String),
        listening: Schema.Boolean.annotations({
          description: "Notifications wake the workers at once; false while LISTEN reconnects or without workers"
        })
      })),
      throughput: camelKeys(Schema.Struct({
        last_minute_per_second: Schema.Number,
        last_5_minutes_per_second: Schema.Number,
        series: Schema.Array(Schema.Struct({ at: Schema.String, embedded: Count }))
      })).annotations({ description: "Rows embedded by every worker on the database, per 10 s over 5 minutes" }),
      workers: Schema.Array(camelKeys(Schema.Struct({
        worker_id: Schema.String,
        host: Schema.String,
        pid: Schema.Int,
        started_at: Schema.String,
        heartbeat_at: Schema.String,
        sets: Schema.Array(Schema.String).annotations({ description: "The set keys it embeds" }),
        in_flight: Count,
        queue_depth: Count,
        embedded: Count.annotations({ description: "Rows it embedded since it started" }),
        last_batch_at: Schema.NullOr(Schema.String),
        paused_for_ms: Schema.Number,
        last_error: Schema.NullOr(Schema.String)
      }))).annotations({ description: "Live worker processes on the database (heartbeat in the last 15 s)" }),
      freshness: Schema.Record({
        key: Schema.String,
        value: camelKeys(Schema.Struct({
          p50_seconds: Schema.NullOr(Schema.Number),
          p95_seconds: Schema.NullOr(Schema.Number),
          samples: Count
        }))
      }).annotations({
        description:
          "Per set key: seconds from a row's change to its vector, over the rows written in the last 5 minutes"
      }),
      circuits: Schema.Array(camelKeys(Schema.Struct({
        model: Schema.String,
        opened_at: Schema.String,
        probe_at: Schema.String.annotations({ description: "When one worker next probes the model" }),
        last_error: Schema.String
      }))).annotations({
        description:
          "Models whose circuit is open (a bad key, an unknown model): no worker calls them until a probe succeeds"
      }),
      totals: camelKeys(Schema.Struct({
        embedded: Count,
        failed: Count,
        skipped: Count,
        batches: Count,
        provider_errors: Schema.Record({ key: Schema.String, value: Count })
      })),
      usage: Usage,
      provider: camelKeys(Schema.Struct({
        provider: Schema.String,
        model: Schema.String,
        dimensions: Schema.Int,
        model_key: Schema.String
      })),
      database: Schema.Struct({ kind: Schema.String, description: Schema.String }),
      index_settings: camelKeys(Schema.Struct({
        kind: Schema.String,
        m: Schema.Int,
        ef_construction: Schema.Int,
        ef_search: Schema.Int
      })),
      recent_errors: Schema.Array(Schema.Struct({
        type: Schema.String,
        id: Schema.String,
        error: Schema.String,
        at: Schema.String,
        attempts: Count,
        failed: Schema.Boolean
      })),
      notes: Schema.Array(Schema.String),
      generated_at: Schema.String
    }).annotations({ identifier: "StatusReport" })
  )
)

export const HealthResponse = Schema.Struct({ status: Schema.Literal("ok") }).annotations({ identifier: "Health" })

const Check = Schema.Struct({ ok: Schema.Boolean, ms: Schema.Number, error: Schema.optional(Schema.String) })

export const ReadyResponse = Schema.Struct({
  status: Schema.Literal("ready"),
  database: Schema.extend(Check, Schema.Struct({ kind: Schema.String })),
  provider: Schema.extend(Check, Schema.Struct({ provider: Schema.String, model: Schema.String }))
}).annotations({ identifier: "Ready" })
export type ReadyResponse = typeof ReadyResponse.Type
