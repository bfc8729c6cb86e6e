import type { Schema } from "effect"

/**
 * Query parameters into a query form's input: the `<field>.<key>` parameters of a Record-valued
 * field (filter.chat_id=42) are collected into that field; parameters the form does not know are
 * dropped (links may carry tracking or cache-busting ones).
 */
export const nestQuery = (
  form: { readonly fields: Schema.Struct.Fields },
  params: Readonly<Record<string, string>>
) => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(params)) {
    const dot = key.indexOf(".")
    const field = dot === -1 ? key : key.slice(0, dot)
    if (!(field in form.fields)) continue
    if (dot === -1) out[key] = value
    else out[field] = { ...(out[field] as Record<string, string> | undefined), [key.slice(dot + 1)]: value }
  }
  return out
}

/** The inverse, for clients: an encoded form (strings, and records of strings) as query parameters. */
export const flattenQuery = (encoded: Readonly<Record<string, unknown>>): URLSearchParams => {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(encoded)) {
    if (value === undefined) continue
    if (typeof value === "object" && value !== null) {
      for (const [k, v] of Object.entries(value)) params.append(`${key}.${k}`, String(v))
    } else params.append(key, String(value))
  }
  return params
}
