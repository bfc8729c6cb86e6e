import * as net from "node:net"

/**
 * A TCP proxy between autoembed and PostgreSQL that can cut every connection, as a database
 * restart or a network blip does: open sockets are reset, and new ones are refused until the
 * outage ends. Tests cannot stop the shared server, so they stop the way to it.
 */
export interface FaultProxy {
  readonly port: number
  /** A connection string like `upstream`, through the proxy. */
  readonly url: string
  /** Resets every open connection and refuses new ones for `ms` milliseconds. */
  readonly cut: (ms: number) => Promise<void>
  /** Connections accepted so far (reconnects show up here). */
  readonly accepted: () => number
  readonly close: () => Promise<void>
}

export const startFaultProxy = async (upstream: string): Promise<FaultProxy> => {
  const target = new URL(upstream)
  const open = new Set<net.Socket>()
  let down = false
  let accepted = 0

  const server = net.createServer((client) => {
    if (down) {
      client.resetAndDestroy()
      return
    }
    accepted++
    const server = net.connect(Number(target.port || 5432), target.hostname)
    open.add(client)
    open.add(server)
    const drop = () => {
      client.destroy()
      server.destroy()
      open.delete(client)
      open.delete(server)
    }
    client.on("error", drop).on("close", drop)
    server.on("error", drop).on("close", drop)
    client.pipe(server)
    server.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as net.AddressInfo).port
  const via = new URL(upstream)
  via.hostname = "127.0.0.1"
  via.port = String(port)

  return {
    port,
    url: via.toString(),
    accepted: () => accepted,
    cut: async (ms) => {
      down = true
      for (const socket of open) socket.resetAndDestroy()
      open.clear()
      await new Promise((resolve) => setTimeout(resolve, ms))
      down = false
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy()
        server.close(() => resolve())
      })
  }
}
