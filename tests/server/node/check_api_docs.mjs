// Checks docs/API.md against web/openapi.json and a running pagekeeperd:
//   1. every curl example's request body is valid for its operation's request schema (unless
//      the example shows a refusal), and the
//      JSON answer shown after it is valid for the operation's response at the expected status
//      ("# status: N" in the example, 200 otherwise);
//   2. the example, sent to the daemon, gets that status and an answer valid for the schema;
//   3. every path of the description has an example, and every command the daemon knows
//      (the knownCommands of a 404) is described.
// Usage: node check_api_docs.mjs BASE_URL REPO_ROOT. Exits 1 listing every failure.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [base, repo] = process.argv.slice(2);
const require = createRequire(path.join(repo, "third_party/node/package.json"));
const Ajv2020 = require("ajv/dist/2020").default;

const spec = JSON.parse(readFileSync(path.join(repo, "web/openapi.json"), "utf8"));
const markdown = readFileSync(path.join(repo, "docs/API.md"), "utf8");
const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema({ $id: "openapi", components: spec.components });
const failures = [];
const fail = (what) => failures.push(what);

function validator(schema) {
  // Rewrite local references so they resolve inside the registered "openapi" document.
  const text = JSON.stringify(schema).replaceAll('"#/components/', '"openapi#/components/');
  return ajv.compile(JSON.parse(text));
}
function check(schema, value, what) {
  const validate = validator(schema);
  if (!validate(value)) fail(`${what}: ${ajv.errorsText(validate.errors)}\n  value: ${JSON.stringify(value).slice(0, 300)}`);
}

// Fenced blocks in order: {lang, text}.
const blocks = [];
for (const m of markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)) blocks.push({ lang: m[1], text: m[2] });

// A shell command line split into words (single and double quotes; stops at a pipe).
function words(line) {
  const out = [];
  let cur = null;
  for (let i = 0; i < line.length; ++i) {
    const c = line[i];
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      cur = (cur ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (c === " ") {
      if (cur !== null) out.push(cur);
      cur = null;
    } else if (c === "|" && cur === null) {
      break;
    } else {
      cur = (cur ?? "") + c;
    }
  }
  if (cur !== null) out.push(cur);
  return out;
}

function parseCurl(text) {
  const status = Number((text.match(/^# status: (\d+)/m) || [null, "200"])[1]);
  const line = text.split("\n").find((l) => l.startsWith("curl "));
  const w = words(line);
  const req = { method: null, headers: {}, body: null, url: null, status };
  for (let i = 1; i < w.length; ++i) {
    const a = w[i];
    if (a === "-X") req.method = w[++i];
    else if (a === "-H") {
      const h = w[++i];
      const colon = h.indexOf(":");
      req.headers[h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    } else if (a === "--json") {
      req.body = w[++i];
      req.headers["Content-Type"] = "application/json";
      req.headers["Accept"] = "application/json";
    } else if (a === "-d" || a === "--data-binary") req.body = w[++i];
    else if (a === "-o" || a === "-D") ++i;
    else if (a.startsWith("http")) req.url = a;
  }
  req.method ??= req.body !== null ? "POST" : "GET";
  req.path = new URL(req.url).pathname;
  return req;
}

function operation(method, p) {
  for (const [template, item] of Object.entries(spec.paths)) {
    const re = new RegExp("^" + template.replace(/\{[^}]+\}/g, "[^/]+") + "$");
    if (re.test(p) && item[method.toLowerCase()]) return { template, op: item[method.toLowerCase()] };
  }
  return null;
}

function responseSchema(op, status, type = "application/json") {
  const r = op.responses[String(status)];
  return r && r.content && r.content[type] ? r.content[type].schema : null;
}

const covered = new Set();
let examples = 0;
for (let b = 0; b < blocks.length; ++b) {
  if (blocks[b].lang !== "sh" || !blocks[b].text.includes("curl ")) continue;
  ++examples;
  const req = parseCurl(blocks[b].text);
  const where = `API.md example ${req.method} ${req.path}`;
  const found = operation(req.method, req.path);
  if (!found) {
    fail(`${where}: no such operation in openapi.json`);
    continue;
  }
  covered.add(found.template);
  const { op } = found;
  if (req.body !== null && req.status < 300) {  // examples of refusals send invalid requests on purpose
    const schema = op.requestBody?.content?.["application/json"]?.schema;
    if (!schema) fail(`${where}: the operation takes no JSON body`);
    else check(schema, JSON.parse(req.body), `${where}: request`);
  }
  const shown = blocks[b + 1] && blocks[b + 1].lang === "json" ? JSON.parse(blocks[b + 1].text) : null;
  if (shown !== null) {
    const schema = responseSchema(op, req.status);
    if (!schema) fail(`${where}: no JSON response ${req.status} in openapi.json`);
    else check(schema, shown, `${where}: answer shown`);
  }
  // The example against the daemon.
  const res = await fetch(base + req.path, { method: req.method, headers: req.headers, body: req.body ?? undefined });
  const type = (res.headers.get("content-type") || "").split(";")[0];
  const body = await res.text();
  if (res.status !== req.status) {
    fail(`${where}: the daemon answered ${res.status}, the example says ${req.status}: ${body.slice(0, 300)}`);
    continue;
  }
  if (type === "application/json") {
    const schema = responseSchema(op, res.status);
    if (!schema) fail(`${where}: the daemon's ${res.status} answer is not described`);
    else check(schema, JSON.parse(body), `${where}: the daemon's answer`);
    if (shown !== null) {
      const live = JSON.parse(body);
      for (const key of Object.keys(shown))
        if (!(key in live)) fail(`${where}: the example shows "${key}", the daemon's answer has none`);
    }
  } else if (!responseSchema(op, res.status, type) && !(type === "text/plain" && responseSchema(op, res.status, "text/plain"))) {
    fail(`${where}: the daemon answered ${type}, not described for ${res.status}`);
  }
}

for (const template of Object.keys(spec.paths))
  if (!covered.has(template)) fail(`openapi.json path ${template} has no example in docs/API.md`);

const unknown = await (await fetch(base + "/api/no/such/command",
                                  { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).json();
if (!Array.isArray(unknown.knownCommands)) fail("the 404 of an unknown command lists no knownCommands");
for (const command of unknown.knownCommands ?? [])
  if (!spec.paths["/api/" + command]) fail(`the daemon's command ${command} is not in openapi.json`);

console.log(`check_api_docs: ${examples} examples, ${covered.size} of ${Object.keys(spec.paths).length} paths covered`);
if (failures.length) {
  console.log(failures.map((f) => "FAIL " + f).join("\n"));
  process.exit(1);
}
