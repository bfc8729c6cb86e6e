/**
 * How vectors travel to the database. Parsing text is the server's biggest cost in a write
 * (1,024 `float4in` calls a row), so on PostgreSQL a batch goes as one binary `vector[]`
 * parameter (array_recv → pgvector's vector_recv); PGlite, which takes text parameters, gets
 * the text form.
 */

/**
 * pgvector's text form. 9 significant digits round-trip a float4 exactly, but only digits of the
 * float4 itself: printing the double and letting the server round again can land one ulp off.
 */
export const vectorLiteral = (v: ReadonlyArray<number>): string => {
  let s = "["
  for (let i = 0; i < v.length; i++) {
    const x = Math.fround(v[i])
    s += (i ? "," : "") + (Number.isInteger(x) ? String(x) : x.toPrecision(9))
  }
  return s + "]"
}
const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1
const ARRAY_HEADER_BYTES = 20
const VECTOR_HEADER_BYTES = 4

/**
 * PostgreSQL's binary array format holding pgvector's binary `vector` values:
 * array header (ndim 1, no nulls, element type, length, lower bound 1), then per element its
 * byte length, `int16 dim, int16 unused` and `dim` big-endian float4s.
 * `elementOid` is the `vector` type's oid in the target database (it differs per database).
 */
export const vectorArrayBinary = (elementOid: number, vectors: ReadonlyArray<ReadonlyArray<number>>): Buffer => {
  let size = ARRAY_HEADER_BYTES
  for (const v of vectors) size += 4 + VECTOR_HEADER_BYTES + 4 * v.length
  const out = Buffer.allocUnsafe(size)
  out.writeInt32BE(1, 0)
  out.writeInt32BE(0, 4)
  out.writeUInt32BE(elementOid, 8)
  out.writeInt32BE(vectors.length, 12)
  out.writeInt32BE(1, 16)
  let offset = ARRAY_HEADER_BYTES
  for (const v of vectors) {
    if (v.length > 16_000) throw new RangeError(`A vector of ${v.length} dimensions exceeds pgvector's limit of 16,000`)
    out.writeInt32BE(VECTOR_HEADER_BYTES + 4 * v.length, offset)
    out.writeInt16BE(v.length, offset + 4)
    out.writeInt16BE(0, offset + 6)
    const floats = offset + 8
    // Native float32 bytes, then one swap to network order: much faster than a writeFloatBE per value.
    const start = out.byteOffset + floats
    if (start % 4 === 0) new Float32Array(out.buffer, start, v.length).set(v)
    else Buffer.from(Float32Array.from(v).buffer).copy(out, floats)
    if (littleEndian) out.subarray(floats, floats + 4 * v.length).swap32()
    offset = floats + 4 * v.length
  }
  return out
}
