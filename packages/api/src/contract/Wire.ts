import { Schema, SchemaAST } from "effect"

/** `"last_5_minutes_per_second"` → `"last5MinutesPerSecond"`, as `camel` does at run time. */
export type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S
type CamelKeys<T> = { [K in keyof T as K extends string ? Camel<K> : K]: T[K] }
type Renamed<T, M> = { [K in keyof T as K extends keyof M ? Extract<M[K], string> : K]: T[K] }

const camel = (key: string) => key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())

const renameObject = (names: ReadonlyMap<string, string>) => (input: unknown) => {
  const value = input as Readonly<Record<string, unknown>>
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[names.get(k) ?? k] = v
  return out
}

/**
 * `wire` (snake_case keys, the JSON) decoded to the same struct under other keys (`names`: wire key →
 * Type key). A whole-struct transformation rather than per-field `fromKey`: the JSON Schema of the
 * wire side is then exactly the snake_case struct's, annotations and all.
 */
const renameStruct = (wire: Schema.Schema.AnyNoContext, names: ReadonlyMap<string, string>): any => {
  const typeAst = SchemaAST.typeAST(wire.ast)
  if (!SchemaAST.isTypeLiteral(typeAst)) throw new Error("renameStruct: a struct is required")
  const to = Schema.make(
    new SchemaAST.TypeLiteral(
      typeAst.propertySignatures.map((ps) =>
        new SchemaAST.PropertySignature(
          names.get(String(ps.name)) ?? ps.name,
          ps.type,
          ps.isOptional,
          ps.isReadonly,
          ps.annotations
        )
      ),
      typeAst.indexSignatures
    )
  )
  const back = new Map([...names].map(([w, t]) => [t, w]))
  return Schema.transform(wire, to, { strict: false, decode: renameObject(names), encode: renameObject(back) })
}

/**
 * The wire form of core's fields: the same schemas (bounds, defaults, messages, annotations) under
 * their camelCase Type keys, with the keys in `mapping` read from and written to their snake_case
 * JSON names. Core's domain types are camelCase; the HTTP contract owns the wire's spelling.
 */
export const wireStruct = <
  F extends Schema.Struct.Fields,
  const M extends { readonly [K in keyof F]?: string }
>(
  fields: F,
  mapping: M
): Schema.Schema<
  Schema.Simplify<Schema.Struct.Type<F>>,
  Schema.Simplify<Renamed<Schema.Struct.Encoded<F>, M>>,
  never
> => {
  const wireFields: Record<string, Schema.Struct.Field> = {}
  const names = new Map<string, string>()
  for (const [key, field] of Object.entries(fields)) {
    const wire = (mapping as Record<string, string | undefined>)[key] ?? key
    wireFields[wire] = field
    if (wire !== key) names.set(wire, key)
  }
  return renameStruct(Schema.Struct(wireFields) as unknown as Schema.Schema.AnyNoContext, names)
}

/** A contract-owned snake_case struct whose Type has the camelCase keys of core's domain types. */
export const camelKeys = <S extends Schema.Schema.AnyNoContext>(
  wire: S
): Schema.Schema<Schema.Simplify<CamelKeys<Schema.Schema.Type<S>>>, Schema.Schema.Encoded<S>, never> => {
  const typeAst = SchemaAST.typeAST(wire.ast)
  const names = new Map<string, string>()
  if (SchemaAST.isTypeLiteral(typeAst)) {
    for (const ps of typeAst.propertySignatures) {
      const name = String(ps.name)
      if (camel(name) !== name) names.set(name, camel(name))
    }
  }
  return renameStruct(wire, names)
}
