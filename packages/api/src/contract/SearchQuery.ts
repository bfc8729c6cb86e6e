import { SearchMode } from "@autoembed/core"
import { Schema } from "effect"
import { nestQuery } from "./QueryString.js"
import { SearchRequestBody } from "./Schemas.js"

/**
 * The query-string form of a search (`?q=...&types=atoms,messages&limit=10&filter.chat_id=42`):
 * numbers and lists as strings, each `filter.<key>` parameter one filter. It decodes to core's
 * `SearchRequest` input, whose schema then applies the bounds and defaults, so the rules exist once.
 */

/** Plain decimal digits only: NumberFromString is Number(), which also takes 0x10, +5, " 5", 5.0 and 1e3. */
const digits = (pattern: RegExp, message: string) =>
  Schema.compose(Schema.String.pipe(Schema.pattern(pattern, { message: () => message })), Schema.NumberFromString)

const IntDigits = (name: string) =>
  digits(/^-?\d{1,15}$/, `${name} must be a whole number in decimal digits, such as 10`)

const DecimalDigits = (name: string) =>
  digits(/^-?(\d{1,15}(\.\d{1,15})?|\.\d{1,15})$/, `${name} must be a decimal number such as 0.5`)

const CommaList = Schema.transform(Schema.String, Schema.Array(Schema.String), {
  strict: true,
  decode: (s) => s.split(",").map((t) => t.trim()).filter((t) => t !== ""),
  encode: (a) => a.join(",")
})

export const SearchQueryForm = Schema.Struct({
  q: Schema.String.annotations({ description: "The query text (1 to 1000 characters)" }),
  limit: Schema.optional(IntDigits("limit").annotations({ description: "1 to 100 (default 10)" })),
  mode: Schema.optional(SearchMode.annotations({ description: "hybrid (default), vector or text" })),
  types: Schema.optional(CommaList.annotations({ description: "Comma-separated source names (default: all)" })),
  topic_id: Schema.optional(IntDigits("topic_id").annotations({ description: "Only rows of this topic" })),
  atom_type: Schema.optional(Schema.String.annotations({ description: "Only atoms of this type" })),
  since: Schema.optional(
    Schema.String.annotations({ description: "Only rows created since this ISO 8601 date or date-time" })
  ),
  min_score: Schema.optional(DecimalDigits("min_score").annotations({ description: "-1 to 1" })),
  filter: Schema.optional(
    Schema.Record({ key: Schema.String, value: Schema.String }).annotations({
      description: "Equality (or, for numbers and dates, a range bound) on a column the source declares in `filters`"
    })
  ),
  set: Schema.optional(
    Schema.String.annotations({
      description: "Search this embedding set instead of each source's active one (A/B comparisons), by its name " +
        "(GET /v1/sets lists them); with types= naming the set's source"
    })
  )
})

/**
 * Query parameters (`{ q, limit, "filter.chat_id": "42", ... }`) to core's `SearchRequest`, as
 * `GET /v1/search` reads them: `pnpm cli search` uses it so both accept exactly the same input.
 */
export const decodeSearchQuery = (params: Readonly<Record<string, string>>) =>
  Schema.decodeUnknown(Schema.compose(SearchQueryForm, SearchRequestBody, { strict: false }), { errors: "all" })(
    nestQuery(SearchQueryForm, params)
  )
