import { Schema } from "effect"

/**
 * Schemas the HTTP layer adds to core's: the retry-failed body, and response shapes that exist in
 * core only as TypeScript interfaces, so the OpenAPI document can describe them.
 */

export const RetryFailedRequest = Schema.Struct({
  entity_types: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(63))).pipe(
      Schema.minItems(1),
      Schema.maxItems(50)
    )
  )
})

export const ErrorResponse = Schema.Struct({
  error: Schema.Struct({
    code: Schema.String.annotations({
      description: "Stable machine-readable code, e.g. validation_failed, unauthorized, not_found"
    }),
    message: Schema.String,
    details: Schema.Unknown,
    request_id: Schema.String.annotations({ description: "Also in the x-request-id header and the server log" })
  })
}).annotations({ identifier: "Error" })

export const IngestResponse = Schema.Struct({ ids: Schema.Array(Schema.Int) }).annotations({
  identifier: "IngestResponse"
})

export const ExtractionResponse = Schema.Struct({
  topic_ids: Schema.Array(Schema.Int),
  atom_ids: Schema.Array(Schema.Int),
  message_ids: Schema.Array(Schema.Int)
}).annotations({ identifier: "ExtractionResponse" })

const Counts = Schema.Struct({ missing: Schema.Int, stale: Schema.Int, failed: Schema.Int })

export const DryRunResponse = Schema.Struct({
  dry_run: Schema.Literal(true),
  entity_types: Schema.Record({ key: Schema.String, value: Counts }),
  total: Schema.Int
}).annotations({ identifier: "BackfillDryRun" })

export const BackfillJobSchema = Schema.Struct({
  id: Schema.String,
  state: Schema.Literal("running", "succeeded", "failed", "cancelled"),
  entity_types: Schema.Array(Schema.String),
  total: Schema.Int,
  processed: Schema.Int,
  succeeded: Schema.Int,
  failed: Schema.Int,
  skipped: Schema.Int,
  rate_per_second: Schema.Number,
  eta_seconds: Schema.NullOr(Schema.Number),
  elapsed_seconds: Schema.Number,
  started_at: Schema.String,
  finished_at: Schema.NullOr(Schema.String),
  error: Schema.NullOr(Schema.String)
}).annotations({ identifier: "BackfillJob" })

export const BackfillStarted = Schema.Struct({ job: BackfillJobSchema }).annotations({ identifier: "BackfillStarted" })

export const RetryFailedResponse = Schema.Struct({ requeued: Schema.Int }).annotations({
  identifier: "RetryFailedResponse"
})

const SourceStatus = Schema.Struct({
  total: Schema.Int,
  embedded: Schema.Int,
  pending: Schema.Int,
  missing: Schema.Int,
  stale: Schema.Int,
  failed: Schema.Int,
  in_flight: Schema.Int,
  oldest_pending_seconds: Schema.NullOr(Schema.Number),
  index: Schema.Struct({
    name: Schema.String,
    state: Schema.Literal("valid", "building", "missing"),
    definition: Schema.NullOr(Schema.String)
  })
})

export const StatusResponse = Schema.Struct({
  sources: Schema.Record({ key: Schema.String, value: SourceStatus }),
  queue: Schema.Struct({
    running: Schema.Boolean,
    worker_id: Schema.NullOr(Schema.String),
    depth: Schema.Int,
    capacity: Schema.Int,
    in_flight: Schema.Int,
    concurrency: Schema.Int,
    batch_size: Schema.Int,
    paused_for_ms: Schema.Number,
    last_error: Schema.NullOr(Schema.String),
    listening: Schema.Boolean
  }),
  throughput: Schema.Struct({
    last_minute_per_second: Schema.Number,
    last_5_minutes_per_second: Schema.Number,
    series: Schema.Array(Schema.Struct({ at: Schema.String, embedded: Schema.Int }))
  }),
  totals: Schema.Struct({
    embedded: Schema.Int,
    failed: Schema.Int,
    skipped: Schema.Int,
    batches: Schema.Int,
    provider_errors: Schema.Record({ key: Schema.String, value: Schema.Int })
  }),
  provider: Schema.Struct({
    provider: Schema.String,
    model: Schema.String,
    dimensions: Schema.Int,
    model_key: Schema.String
  }),
  database: Schema.Struct({ kind: Schema.String, description: Schema.String }),
  index_settings: Schema.Struct({
    kind: Schema.String,
    m: Schema.Int,
    ef_construction: Schema.Int,
    ef_search: Schema.Int
  }),
  recent_errors: Schema.Array(Schema.Struct({
    type: Schema.String,
    id: Schema.String,
    error: Schema.String,
    at: Schema.String,
    attempts: Schema.Int,
    failed: Schema.Boolean
  })),
  notes: Schema.Array(Schema.String),
  generated_at: Schema.String
}).annotations({ identifier: "StatusReport" })

export const HealthResponse = Schema.Struct({ status: Schema.Literal("ok") }).annotations({ identifier: "Health" })

const Check = Schema.Struct({ ok: Schema.Boolean, ms: Schema.Number, error: Schema.optional(Schema.String) })

export const ReadyResponse = Schema.Struct({
  status: Schema.Literal("ready"),
  database: Schema.extend(Check, Schema.Struct({ kind: Schema.String })),
  provider: Schema.extend(Check, Schema.Struct({ provider: Schema.String, model: Schema.String }))
}).annotations({ identifier: "Ready" })
