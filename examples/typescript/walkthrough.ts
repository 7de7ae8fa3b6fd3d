// Cairn's first backup from TypeScript (docs/api.md): create a source and a store, a backup
// task, run it, follow the job live with WatchJob until it ends, and list the snapshot it made.
// connect-es over gRPC-web (Cairn's servers accept it through tonic-web), with an API token.
//
//   npm ci && npm run generate
//   CAIRN_CATALOG_URL=http://127.0.0.1:50051 CAIRN_SCHEDULER_URL=http://127.0.0.1:50052 \
//   CAIRN_TOKEN=... CAIRN_SOURCE_PATH=/srv/data CAIRN_REPOSITORY_PATH=/srv/repo \
//   CAIRN_REPOSITORY_PASSWORD=... npm run walkthrough
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { CatalogService } from "./gen/cairn/v1/catalog_service_pb.js";
import { ConnectorRole } from "./gen/cairn/v1/connector_pb.js";
import { JobService } from "./gen/cairn/v1/job_service_pb.js";
import { JobState } from "./gen/cairn/v1/job_pb.js";
import { TaskType } from "./gen/cairn/v1/task_pb.js";

function env(name: string): string {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return v;
}

const project = process.env.CAIRN_PROJECT ?? "projects/default";
const prefix = process.env.CAIRN_NAME_PREFIX ?? "ts";
const token = env("CAIRN_TOKEN");
// Every call carries the API token (use https:// URLs off the machine: a token is a password).
const bearer: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};
const transport = (baseUrl: string) =>
  createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer] });
const catalog = createClient(CatalogService, transport(env("CAIRN_CATALOG_URL")));
const jobs = createClient(JobService, transport(env("CAIRN_SCHEDULER_URL")));

// Creates, or finds what an earlier run created: the walkthrough can be run again.
async function ensure<T>(create: () => Promise<T>, get: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (e) {
    if (ConnectError.from(e).code === Code.AlreadyExists) return get();
    throw e;
  }
}

const sourceName = `${prefix}-data`;
const source = await ensure(
  () =>
    catalog.createConnector({
      parent: project,
      requestId: randomUUID(),
      connector: {
        displayName: sourceName,
        role: ConnectorRole.SOURCE,
        config: { case: "localPathSource", value: { paths: [env("CAIRN_SOURCE_PATH")] } },
      },
    }),
  () => catalog.getConnector({ name: `${project}/connectors/${sourceName}` }),
);
const storeName = `${prefix}-repo`;
const store = await ensure(
  () =>
    catalog.createConnector({
      parent: project,
      requestId: randomUUID(),
      connector: {
        displayName: storeName,
        role: ConnectorRole.STORE,
        config: { case: "localStore", value: { path: env("CAIRN_REPOSITORY_PATH") } },
        repositoryPassword: env("CAIRN_REPOSITORY_PASSWORD"),
        createIfMissing: true,
      },
    }),
  () => catalog.getConnector({ name: `${project}/connectors/${storeName}` }),
);
console.log(`connectors ${source.name} and ${store.name}`);
const taskName = `${prefix}-backup`;
const task = await ensure(
  () =>
    catalog.createTask({
      parent: project,
      requestId: randomUUID(),
      task: { displayName: taskName, type: TaskType.BACKUP, source: source.name, store: store.name },
    }),
  () => catalog.getTask({ name: `${project}/tasks/${taskName}` }),
);
console.log(`task ${task.name}`);

const job = await jobs.runTask({ task: task.name, requestId: randomUUID() });
console.log(`job ${job.name} queued`);
let last = job;
for await (const event of jobs.watchJob({ name: job.name })) {
  switch (event.event.case) {
    case "job":
      last = event.event.value;
      console.log(`job ${JobState[last.state]}`);
      break;
    case "logLine":
      console.log(`  | ${event.event.value.message}`);
      break;
  }
}
if (last.state !== JobState.SUCCEEDED) {
  console.error(`the backup ended ${JobState[last.state]}: ${last.error}`);
  process.exit(1);
}

const listed = await jobs.listSnapshots({ parent: project, store: store.name, task: task.name });
const made = last.snapshot ? listed.snapshots.find((s) => s.id.startsWith(last.snapshot)) : undefined;
if (!made) {
  console.error(`snapshot ${last.snapshot} is not listed`);
  process.exit(1);
}
console.log(`snapshot ${made.shortId} of ${made.paths.join(", ")} (${listed.snapshots.length} in the store)`);
