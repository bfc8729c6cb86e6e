import { runServerMain } from "./Server.js"

// `pnpm start`: migrations, API, embedding workers and (on an empty database) the sample data, in one process.
runServerMain({ workers: true, sampleData: true })
