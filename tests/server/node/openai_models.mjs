// The official `openai` npm client against a running pagekeeperd: models.list() returns every
// served model and alias, models.retrieve() one of them, an unknown id is a NotFoundError, and
// embeddings.create() works through the same client.
// Usage: node openai_models.mjs BASE_URL REPO_ROOT EXPECTED_ID... Exits 1 on any failure.
import { createRequire } from "node:module";
import path from "node:path";

const [base, repo, ...expected] = process.argv.slice(2);
const require = createRequire(path.join(repo, "third_party/node/package.json"));
const OpenAI = require("openai").default;

const client = new OpenAI({ baseURL: base + "/v1", apiKey: "unused", maxRetries: 0 });
const failures = [];
const listed = [];
for await (const model of client.models.list()) listed.push(model);
const ids = listed.map((m) => m.id);
for (const id of expected) if (!ids.includes(id)) failures.push(`models.list() lacks ${id}: ${ids.join(", ")}`);
for (const m of listed)
  if (m.object !== "model" || typeof m.created !== "number" || typeof m.owned_by !== "string")
    failures.push(`not an OpenAI model object: ${JSON.stringify(m)}`);
const one = await client.models.retrieve(expected[0]);
if (one.id !== expected[0]) failures.push(`models.retrieve(${expected[0]}) gave ${JSON.stringify(one)}`);
try {
  await client.models.retrieve("no-such-model");
  failures.push("models.retrieve(no-such-model) did not fail");
} catch (e) {
  if (!(e instanceof OpenAI.NotFoundError)) failures.push(`models.retrieve(no-such-model) threw ${e}`);
  else if (!String(e.message).includes("no-such-model")) failures.push(`the 404 does not name the model: ${e.message}`);
}
const embedded = await client.embeddings.create({ model: expected[0], input: ["hello", "world"] });
if (embedded.data.length !== 2 || embedded.data[0].embedding.length === 0)
  failures.push(`embeddings.create: ${JSON.stringify(embedded).slice(0, 200)}`);

console.log(`openai_models: listed ${ids.join(", ")}`);
if (failures.length) {
  console.log(failures.map((f) => "FAIL " + f).join("\n"));
  process.exit(1);
}
