// Interop: a non-C++ gRPC client (Node.js, @grpc/grpc-js + @grpc/proto-loader loading the
// .proto files at run time) calls mesad over its Unix socket.
//   node node_interop.mjs --mesad PATH/TO/mesad --protos PROTO_DIR
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(path.dirname(new URL(import.meta.url).pathname), '../conformance/package.json'));
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
assert.ok(args.mesad && args.protos, 'usage: --mesad PATH --protos DIR');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesad-interop-'));
const socket = path.join(dir, 'mesad.sock');
const log = fs.openSync(path.join(dir, 'mesad.log'), 'w');
const mesad = spawn(args.mesad, ['--socket', socket, '--state-dir', path.join(dir, 'state'),
                                 '--cache-dir', path.join(dir, 'cache')], { stdio: ['ignore', log, log] });
let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

const opts = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
               includeDirs: [args.protos, path.dirname(new URL(import.meta.url).pathname)] };
const pkg = grpc.loadPackageDefinition(loader.loadSync(['mesa/daemon/v1/api.proto', 'health.proto', 'reflection.proto'], opts));
const protobuf = require('protobufjs');
const root = new protobuf.Root();
root.resolvePath = (origin, target) => {
  for (const d of [args.protos]) if (fs.existsSync(path.join(d, target))) return path.join(d, target);
  return protobuf.util.path.resolve(origin, target);
};
root.loadSync(['google/rpc/status.proto', 'mesa/daemon/v1/api.proto'], { keepCase: true });

const dv1 = pkg.mesa.daemon.v1;
const addr = `unix:${socket}`;
const creds = grpc.credentials.createInsecure();
const call = (client, method, req) => new Promise((resolve, reject) =>
  client[method](req, { deadline: Date.now() + 30000 }, (err, res) => (err ? reject(err) : resolve(res))));

try {
  for (let i = 0; i < 200 && !fs.existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25));
  const health = new pkg.grpc.health.v1.Health(addr, creds);
  const sessions = new dv1.Sessions(addr, creds);
  const repos = new dv1.Repos(addr, creds);
  const changes = new dv1.Changes(addr, creds);
  const content = new dv1.Content(addr, creds);

  await check('grpc.health.v1 reports SERVING', async () => {
    let last;
    for (let i = 0; i < 100; i++) {
      try { last = await call(health, 'Check', { service: '' }); break; } catch (e) { last = e; await new Promise((r) => setTimeout(r, 50)); }
    }
    assert.equal(last.status, 'SERVING');
  });
  await check('server reflection lists every mesad service', async () => {
    const refl = new pkg.grpc.reflection.v1alpha.ServerReflection(addr, creds);
    const stream = refl.ServerReflectionInfo();
    const names = await new Promise((resolve, reject) => {
      stream.on('data', (r) => { resolve(r.list_services_response.service.map((s) => s.name)); stream.end(); });
      stream.on('error', reject);
      stream.write({ list_services: '*' });
    });
    for (const s of ['mesa.daemon.v1.Sessions', 'mesa.daemon.v1.Repos', 'mesa.daemon.v1.Bookmarks', 'mesa.daemon.v1.Changes',
                     'mesa.daemon.v1.Content', 'mesa.daemon.v1.Diffs', 'mesa.daemon.v1.ApiKeys',
                     'mesa.daemon.v1.WebhookTargets', 'mesa.daemon.v1.Webhooks', 'grpc.health.v1.Health']) {
      assert.ok(names.includes(s), `${s} listed (got ${names.join(', ')})`);
    }
    refl.close();
  });
  await check('Sessions.Whoami from Node (embedded org named after the user)', async () => {
    const who = await call(sessions, 'Whoami', { call: {} });
    assert.equal(who.org.slug, os.userInfo().username === 'root' ? 'root' : who.org.slug);
    assert.ok(who.key_id.startsWith('key_'));
  });
  await check('Repos.CreateRepo + Changes.CreateChange + Content.GetContent (raw bytes)', async () => {
    const repo = await call(repos, 'CreateRepo', { call: {}, name: 'from-node' });
    assert.equal(repo.name, 'from-node');
    const bytes = Buffer.from([0, 1, 2, 255, 254, 10]);
    const change = await call(changes, 'CreateChange', {
      call: {}, repo: 'from-node', base_change_id: 'z'.repeat(32), message: 'node',
      files: [{ path: 'bin.dat', content: bytes }] });
    assert.match(change.id, /^[k-z]{32}$/);
    const got = await call(content, 'GetContent', { call: {}, repo: 'from-node', path: 'bin.dat', change_id: change.id, raw: true });
    assert.deepEqual(Buffer.from(got.content), bytes);
  });
  await check('errors: NOT_FOUND with a decodable ErrorDetail in grpc-status-details-bin', async () => {
    const err = await call(repos, 'GetRepo', { call: {}, repo: 'missing' }).then(() => null, (e) => e);
    assert.ok(err, 'expected an error');
    assert.equal(err.code, grpc.status.NOT_FOUND);
    const raw = err.metadata.get('grpc-status-details-bin')[0];
    assert.ok(raw, 'grpc-status-details-bin present');
    const Status = root.lookupType('google.rpc.Status');
    const Detail = root.lookupType('mesa.daemon.v1.ErrorDetail');
    const status = Status.decode(raw);
    assert.equal(status.details[0].type_url, 'type.googleapis.com/mesa.daemon.v1.ErrorDetail');
    const detail = Detail.decode(status.details[0].value);
    assert.equal(detail.http_status, 404);
    assert.equal(detail.code, 'REPO_NOT_FOUND');
  });
  await check('errors: INVALID_ARGUMENT for a bad repo name', async () => {
    const err = await call(repos, 'CreateRepo', { call: {}, name: 'bad/name' }).then(() => null, (e) => e);
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  });
  for (const c of [health, sessions, repos, changes, content]) c.close();
} finally {
  mesad.kill('SIGTERM');
  await new Promise((r) => mesad.once('exit', r));
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(failures ? `${failures} check(s) failed` : 'all interop checks passed');
process.exit(failures ? 1 : 0);
