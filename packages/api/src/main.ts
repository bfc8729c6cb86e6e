import { runServer } from "./Server.js"

// `pnpm start`: migrations, API, embedding workers and (on an empty database) the sample data, in one process.
await runServer({ workers: true, sampleData: true })
