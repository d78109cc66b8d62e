#!/usr/bin/env node
// Conformance test: drives the official TypeScript SDK (@mesadev/sdk 0.38.0) against a freshly
// initialised mesa-server and checks every REST method of whoami, org, repos, bookmarks (incl.
// merge), changes, content and diffs, api keys, webhook targets and SDK-signed access tokens, on
// both happy and unhappy paths; every webhook the server delivers to a local receiver must pass
// the SDK's own `mesa.webhooks.receive(request)` (signature and schema).
//
//   node tests/conformance/sdk_conformance.mjs --server build/server/mesa-server
//
// Prints one line per check and a summary; exits 0 only when every check passes.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { listApiKeys, updateApiKey } from '@mesadev/rest';
import { Mesa, MesaApiError, OrgResolutionError, VIRTUAL_ROOT_CHANGE_ID } from '@mesadev/sdk';

const ROOT = 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz';
const CHANGE_ID_RE = /^[zyxwvutsrqponmlk]{32}$/;
const OID_RE = /^[0-9a-f]{40}$/;
const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------
function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--server') out.server = argv[++i];
    else if (a.startsWith('--server=')) out.server = a.slice('--server='.length);
    else if (a === '--keep') out.keep = true;
    else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (!out.server) {
    console.error('usage: node sdk_conformance.mjs --server PATH/TO/mesa-server [--keep]');
    process.exit(2);
  }
  out.server = path.resolve(out.server);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Check runner
// ---------------------------------------------------------------------------------------------
const results = [];
async function check(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`PASS  ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    results.push({ name, ok: false, err });
    console.log(`FAIL  ${name}`);
    const text = err && err.stack ? err.stack : String(err);
    for (const line of text.split('\n').slice(0, 12)) console.log(`        ${line}`);
    if (err instanceof MesaApiError) {
      console.log(`        (MesaApiError status=${err.status} code=${err.code} body=${JSON.stringify(err.body)})`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers: encoding, git object ids, shape assertions
// ---------------------------------------------------------------------------------------------
const b64 = (s) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s) => Buffer.from(s, 'base64').toString('utf8');

function blobSha(text) {
  const buf = Buffer.from(text, 'utf8');
  return createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}

// tree: { name: {mode:'100644'|'100755', text} | { ...subtree } }
function treeSha(tree) {
  const rows = Object.entries(tree).map(([name, v]) => {
    const isBlob = typeof v.text === 'string';
    return {
      name,
      mode: isBlob ? v.mode : '40000',
      sha: isBlob ? blobSha(v.text) : treeSha(v),
      sortKey: isBlob ? name : `${name}/`,
    };
  });
  rows.sort((a, b) => Buffer.compare(Buffer.from(a.sortKey), Buffer.from(b.sortKey)));
  const body = Buffer.concat(
    rows.map((r) => Buffer.concat([Buffer.from(`${r.mode} ${r.name}\0`), Buffer.from(r.sha, 'hex')])),
  );
  return createHash('sha1').update(`tree ${body.length}\0`).update(body).digest('hex');
}

function assertKeys(obj, required, optional = [], what = 'object') {
  assert.ok(obj && typeof obj === 'object' && !Array.isArray(obj), `${what} must be an object`);
  for (const k of required) assert.ok(k in obj, `${what} lacks required field '${k}': ${JSON.stringify(obj)}`);
  const allowed = new Set([...required, ...optional]);
  for (const k of Object.keys(obj)) assert.ok(allowed.has(k), `${what} has unexpected field '${k}'`);
}

function assertTime(v, what) {
  assert.equal(typeof v, 'string', `${what} must be a string`);
  assert.match(v, RFC3339_RE, `${what} must be RFC 3339`);
  assert.ok(!Number.isNaN(Date.parse(v)), `${what} must parse`);
}

function assertRepoShape(r) {
  assertKeys(r, ['id', 'org', 'name', 'default_bookmark', 'head_change_id', 'upstream', 'created_at', 'tags'], [], 'repo');
  assert.equal(typeof r.id, 'string');
  assert.ok(r.id.length > 0);
  assert.equal(r.org, 'conf');
  assert.equal(typeof r.name, 'string');
  assert.equal(typeof r.default_bookmark, 'string');
  assert.match(r.head_change_id, CHANGE_ID_RE);
  assertTime(r.created_at, 'repo.created_at');
  assert.ok(r.tags && typeof r.tags === 'object' && !Array.isArray(r.tags));
  for (const v of Object.values(r.tags)) assert.equal(typeof v, 'string');
  if (r.upstream !== null) {
    assertKeys(r.upstream, ['url', 'auth_kind', 'latest_sync'], [], 'repo.upstream');
    assert.ok([null, 'token', 'username_password'].includes(r.upstream.auth_kind));
  }
}

function assertPage(page, arrayName) {
  assertKeys(page, ['next_cursor', 'has_more', arrayName], [], `${arrayName} page`);
  assert.ok(Array.isArray(page[arrayName]));
  assert.equal(typeof page.has_more, 'boolean');
  assert.ok(page.next_cursor === null || typeof page.next_cursor === 'string');
  assert.equal(page.has_more, page.next_cursor !== null, 'has_more must agree with next_cursor');
}

function assertBookmarkShape(b, extra = []) {
  assertKeys(b, ['name', 'change_id', 'is_default', ...extra], [], 'bookmark');
  assert.equal(typeof b.name, 'string');
  assert.match(b.change_id, CHANGE_ID_RE);
  assert.equal(typeof b.is_default, 'boolean');
}

function assertSignature(s, what) {
  assertKeys(s, ['name', 'email'], ['date'], what);
  assert.equal(typeof s.name, 'string');
  assert.equal(typeof s.email, 'string');
  if (s.date !== undefined) assertTime(s.date, `${what}.date`);
}

function assertChangeShape(c, { details = false } = {}) {
  const req = ['id', 'current_commit_oid', 'is_conflicted', 'message', 'author', 'committer', 'parents', 'created_at', 'updated_at'];
  assertKeys(c, details ? [...req, 'files', 'conflicts'] : req, [], 'change');
  assert.match(c.id, CHANGE_ID_RE);
  assert.match(c.current_commit_oid, OID_RE);
  assert.equal(typeof c.is_conflicted, 'boolean');
  assert.equal(typeof c.message, 'string');
  assertSignature(c.author, 'change.author');
  assertSignature(c.committer, 'change.committer');
  assert.ok(Array.isArray(c.parents));
  for (const p of c.parents) assert.match(p, CHANGE_ID_RE);
  assertTime(c.created_at, 'change.created_at');
  assertTime(c.updated_at, 'change.updated_at');
  if (details) {
    assert.ok(Array.isArray(c.files) && c.files.every((f) => typeof f === 'string'));
    assert.ok(Array.isArray(c.conflicts) && c.conflicts.every((f) => typeof f === 'string'));
  }
}

function assertFileContentShape(f) {
  assertKeys(f, ['type', 'name', 'path', 'sha', 'size', 'encoding', 'content', 'mode'], ['is_conflicted', 'metadata'], 'file content');
  assert.equal(f.type, 'file');
  assert.equal(f.encoding, 'base64');
  assert.match(f.sha, OID_RE);
  assert.ok(Number.isInteger(f.size) && f.size >= 0);
  assert.ok(['100644', '100755'].includes(f.mode));
  if (f.is_conflicted !== undefined) assert.equal(typeof f.is_conflicted, 'boolean');
}

function assertDirShape(d) {
  assertKeys(d, ['type', 'name', 'path', 'sha', 'child_count', 'entries'], ['metadata'], 'dir content');
  assert.equal(d.type, 'dir');
  assert.match(d.sha, OID_RE);
  assert.ok(Number.isInteger(d.child_count) && d.child_count >= 0);
  assert.ok(Array.isArray(d.entries));
  for (const e of d.entries) {
    if (e.type === 'dir') assertKeys(e, ['type', 'name', 'path', 'sha'], ['metadata'], 'dir entry');
    else {
      assertKeys(e, ['type', 'name', 'path', 'sha', 'size', 'mode'], ['metadata'], `${e.type} entry`);
      assert.ok(['file', 'symlink'].includes(e.type));
      assert.ok(Number.isInteger(e.size));
      assert.ok(e.type === 'file' ? ['100644', '100755'].includes(e.mode) : e.mode === '120000');
    }
    assert.match(e.sha, OID_RE);
    assert.equal(e.name, e.path.split('/').pop());
  }
}

function assertConflictHunkShape(h) {
  assertKeys(h, ['hunk_id', 'old_start', 'old_lines', 'new_start', 'new_lines', 'target', 'base', 'source'], [], 'conflict hunk');
  assert.equal(typeof h.hunk_id, 'string');
  assert.ok(h.hunk_id.length > 0);
  for (const k of ['old_start', 'old_lines', 'new_start', 'new_lines']) assert.ok(Number.isInteger(h[k]) && h[k] >= 0, k);
  for (const side of ['target', 'base', 'source']) {
    if (h[side] !== null) {
      assertKeys(h[side], ['content'], [], `conflict hunk ${side}`);
      assert.equal(typeof h[side].content, 'string');
    }
  }
}

function assertDiffShape(d) {
  assertKeys(d, ['base_change_id', 'head_change_id', 'stats', 'truncated', 'entries', 'conflicted_entries'], [], 'diff');
  assertKeys(d.stats, ['entries', 'additions', 'deletions', 'changes', 'conflicted_entries', 'conflicted_hunks'], [], 'diff.stats');
  for (const v of Object.values(d.stats)) assert.ok(Number.isInteger(v) && v >= 0);
  assert.equal(d.stats.changes, d.stats.additions + d.stats.deletions);
  assert.equal(d.stats.entries, d.entries.length);
  assert.equal(d.stats.conflicted_entries, d.conflicted_entries.length);
  assert.equal(typeof d.truncated, 'boolean');
  for (const e of d.entries) {
    assertKeys(e, ['path', 'status', 'old_path', 'is_conflicted', 'omitted_reason', 'hunks', 'conflict_hunks'], ['size_bytes'], 'diff entry');
    assert.ok(['added', 'modified', 'deleted', 'renamed'].includes(e.status));
    assert.ok([null, 'binary', 'too_large', 'file_limit'].includes(e.omitted_reason));
    if (e.omitted_reason !== null) assert.equal(e.hunks, null);
    if (e.hunks !== null) {
      for (const h of e.hunks) {
        assertKeys(h, ['old_start', 'old_lines', 'new_start', 'new_lines', 'lines'], [], 'diff hunk');
        for (const l of h.lines) {
          assertKeys(l, ['kind', 'text'], [], 'diff line');
          assert.ok(['context', 'added', 'deleted', 'annotation'].includes(l.kind));
        }
      }
    }
    if (e.conflict_hunks !== null) e.conflict_hunks.forEach(assertConflictHunkShape);
  }
  let hunks = 0;
  for (const c of d.conflicted_entries) {
    assertKeys(c, ['path', 'hunks'], ['size_bytes', 'omitted_reason'], 'conflicted entry');
    c.hunks.forEach(assertConflictHunkShape);
    hunks += c.hunks.length;
  }
  assert.equal(d.stats.conflicted_hunks, hunks);
}

// Lines of a hunk as "kind:text" with the line terminator removed (the contract does not say
// whether `text` keeps its trailing newline; everything else must match exactly).
const hunkLines = (h) => h.lines.map((l) => `${l.kind}:${l.text.replace(/\r?\n$/, '')}`);

// Await `fn()` and require a MesaApiError with this HTTP status and error code.
async function expectApiError(fn, status, code) {
  let err;
  try {
    const value = await fn();
    assert.fail(`expected ${status} ${code}, but the call succeeded with ${JSON.stringify(value)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.ok(err instanceof MesaApiError, `expected a MesaApiError, got ${err?.name}: ${err?.message}`);
  assert.equal(err.status, status, `status (${err.message})`);
  assert.equal(err.code, code, `code (${err.message})`);
  assertKeys(err.body, ['error'], [], 'error body');
  assertKeys(err.body.error, ['code', 'message'], ['details', 'trace_id'], 'error');
  assert.equal(err.body.error.code, code);
  assert.equal(typeof err.body.error.message, 'string');
  assert.ok(err.body.error.message.length > 0);
  if (err.body.error.details !== undefined) {
    assert.ok(err.body.error.details && typeof err.body.error.details === 'object');
  }
  return err;
}

// ---------------------------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------------------------
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitForServer(base, apiKey, child, stderr) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`mesa-server exited early (code ${child.exitCode}, signal ${child.signalCode}):\n${stderr()}`);
    }
    try {
      const res = await fetch(`${base}/v1/whoami`, { headers: { Authorization: `Bearer ${apiKey}` } });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`mesa-server did not answer GET /v1/whoami within 20 s:\n${stderr()}`);
}

// Close the idle keep-alive connections of Node's global fetch dispatcher (the SDK uses the global
// fetch): cpp-httplib only notices a stop once an idle keep-alive connection closes or times out.
async function closeFetchConnections() {
  const dispatcher = globalThis[Symbol.for('undici.globalDispatcher.1')];
  if (dispatcher && typeof dispatcher.close === 'function') {
    await dispatcher.close().catch(() => undefined);
  }
}

async function stopServer(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await closeFetchConnections();
  const started = Date.now();
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  const { code, signal } = await exited;
  clearTimeout(timer);
  console.log(`mesa-server stopped (exit ${code}, signal ${signal}) ${Date.now() - started} ms after SIGTERM`);
  return { code, signal };
}

// ---------------------------------------------------------------------------------------------
// Webhook receiver: every POST is handed to the official SDK's `mesa.webhooks.receive(request)`
// (a Mesa client built with the target's secret); 200 when it accepts, 400 when it throws.
// `failFirst` paths answer 500 to the first attempt of each event id (the server must retry).
// ---------------------------------------------------------------------------------------------
const API_EVENTS = [
  'repo.created', 'repo.updated', 'repo.deleted', 'bookmark.created', 'bookmark.deleted',
  'bookmark.moved', 'bookmark.merged', 'change.created', 'change.evolved', 'push',
];
const ALL_EVENTS = [...API_EVENTS, 'sync.queued', 'sync.in_progress', 'sync.completed', 'sync.failed'];
const FLAKY_TYPES = ['repo.created', 'change.created'];

async function startWebhookReceiver({ apiKey, apiUrl }) {
  const hooks = { receivers: new Map(), accepted: [], rejected: [], attempts: new Map(), failFirst: new Set(), requests: 0 };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      hooks.requests++;
      const body = Buffer.concat(chunks).toString('utf8');
      const path = req.url;
      const id = (() => {
        try {
          return JSON.parse(body).id;
        } catch {
          return undefined;
        }
      })();
      const n = (hooks.attempts.get(`${path}#${id}`) ?? 0) + 1;
      hooks.attempts.set(`${path}#${id}`, n);
      if (hooks.failFirst.has(path) && n === 1) {
        res.writeHead(500).end();
        return;
      }
      const receiver = hooks.receivers.get(path);
      if (!receiver) {
        res.writeHead(404).end();
        return;
      }
      const request = new Request(`http://127.0.0.1${path}`, { method: 'POST', headers: req.headers, body });
      try {
        await receiver.mesa.webhooks.receive(request);
        // Accepted: the body passed the SDK's signature check and schema.
        hooks.accepted.push({ path, attempt: n, event: JSON.parse(body) });
        res.writeHead(200).end();
      } catch (err) {
        hooks.rejected.push({ path, body: body.slice(0, 300), error: String(err?.message ?? err) });
        res.writeHead(400).end();
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    hooks,
    url: (path) => `${base}${path}`,
    // Verify requests on `path` with `secret`, as a receiving application would.
    register(path, secret) {
      const mesa = new Mesa({ apiKey, apiUrl, org: 'conf', webhookSecret: secret });
      const receiver = { mesa, dispatched: 0 };
      mesa.webhooks.on(ALL_EVENTS, () => {
        receiver.dispatched++;
      });
      hooks.receivers.set(path, receiver);
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// Decodes a JWS part.
const jwsPart = (token, i) => JSON.parse(Buffer.from(token.split('.')[i], 'base64url').toString('utf8'));

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------
async function runChecks({ apiUrl, apiKey, accessLog }) {
  // No `org`: the SDK must resolve it from GET /whoami.
  const mesa = new Mesa({ apiKey, apiUrl });
  const S = {}; // state shared between checks
  const receiver = await startWebhookReceiver({ apiKey, apiUrl });
  try {
    await runAllChecks({ apiUrl, apiKey, accessLog, mesa, S, receiver });
  } finally {
    await receiver.close();
  }
}

async function runAllChecks({ apiUrl, apiKey, accessLog, mesa, S, receiver }) {
  // ---- identity and org -----------------------------------------------------------------------
  await check('sdk: VIRTUAL_ROOT_CHANGE_ID is 32 z', () => {
    assert.equal(VIRTUAL_ROOT_CHANGE_ID, ROOT);
  });

  await check('whoami: org slug conf, key id, admin scope', async () => {
    const w = await mesa.whoami();
    assertKeys(w, ['org', 'key_id', 'key_name', 'scopes'], [], 'whoami');
    assertKeys(w.org, ['id', 'slug', 'name'], [], 'whoami.org');
    assert.equal(w.org.slug, 'conf');
    assert.equal(typeof w.org.id, 'string');
    assert.equal(typeof w.org.name, 'string');
    assert.equal(typeof w.key_id, 'string');
    assert.ok(w.key_id.length > 0);
    assert.ok(w.key_name === null || typeof w.key_name === 'string');
    assert.ok(Array.isArray(w.scopes));
    assert.ok(w.scopes.includes('admin'), `scopes ${JSON.stringify(w.scopes)}`);
    S.keyId = w.key_id;
  });

  await check('webhookTargets.create: 201 target with a whsec_ secret shown once (receiver for every later event)', async () => {
    const t = await mesa.webhookTargets.create({ url: receiver.url('/hook'), name: 'conformance', events: API_EVENTS });
    assertKeys(t, ['id', 'name', 'url', 'events', 'repo_ids', 'created_at', 'updated_at', 'secret'], [], 'created webhook target');
    assert.equal(typeof t.id, 'string');
    assert.equal(t.name, 'conformance');
    assert.equal(t.url, receiver.url('/hook'));
    assert.deepEqual(t.events, API_EVENTS);
    assert.equal(t.repo_ids, null);
    assertTime(t.created_at, 'target.created_at');
    assertTime(t.updated_at, 'target.updated_at');
    assert.match(t.secret, /^whsec_[A-Za-z0-9_-]{20,}$/);
    receiver.register('/hook', t.secret);
    // A second target answers 500 to each first attempt: every event must come again, re-signed.
    const flaky = await mesa.webhookTargets.create({ url: receiver.url('/flaky'), events: FLAKY_TYPES });
    assert.equal(flaky.name, null);
    receiver.hooks.failFirst.add('/flaky');
    receiver.register('/flaky', flaky.secret);
    assert.notEqual(flaky.secret, t.secret);
    S.hookTarget = t;
  });

  await check('org.get: created_at, num_repos 0 on a fresh store', async () => {
    const o = await mesa.org.get();
    assertKeys(o, ['created_at', 'num_repos'], [], 'org');
    assertTime(o.created_at, 'org.created_at');
    assert.equal(o.num_repos, 0);
  });

  await check('org.get: another org slug is 404 ORG_NOT_FOUND', async () => {
    await expectApiError(() => mesa.org.get({ org: 'someone-else' }), 404, 'ORG_NOT_FOUND');
  });

  await check('auth: a wrong API key is 401 UNAUTHENTICATED', async () => {
    const bad = new Mesa({ apiKey: 'mesa_not_a_real_key', apiUrl, org: 'conf' });
    await expectApiError(() => bad.repos.list(), 401, 'UNAUTHENTICATED');
  });

  await check('auth: org resolution with a wrong key fails with OrgResolutionError(401)', async () => {
    const bad = new Mesa({ apiKey: 'mesa_not_a_real_key', apiUrl });
    let err;
    try {
      await bad.whoami();
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof OrgResolutionError, `got ${err?.name}`);
    assert.ok(err.cause instanceof MesaApiError);
    assert.equal(err.cause.status, 401);
    assert.equal(err.cause.code, 'UNAUTHENTICATED');
    await assert.rejects(() => bad.repos.list(), OrgResolutionError);
  });

  // ---- repos ------------------------------------------------------------------------------------
  await check('repos.create: 201 Repo shape, default bookmark main at the virtual root', async () => {
    const r = await mesa.repos.create({ name: 'alpha', tags: { env: 'prod', team: 'core' } });
    assertRepoShape(r);
    assert.equal(r.name, 'alpha');
    assert.equal(r.default_bookmark, 'main');
    assert.equal(r.head_change_id, ROOT);
    assert.equal(r.upstream, null);
    assert.deepEqual(r.tags, { env: 'prod', team: 'core' });
    S.alpha = r;
  });

  await check('repos.create: more repos (custom default_bookmark, upstream with token auth)', async () => {
    const beta = await mesa.repos.create({ name: 'beta', tags: { env: 'dev' } });
    assertRepoShape(beta);
    const gamma = await mesa.repos.create({ name: 'gamma', tags: { env: 'prod' }, default_bookmark: 'trunk' });
    assertRepoShape(gamma);
    assert.equal(gamma.default_bookmark, 'trunk');
    const delta = await mesa.repos.create({
      name: 'delta',
      upstream: { url: 'https://example.com/upstream.git', auth: { kind: 'token', token: 's3cret-token' } },
    });
    assertRepoShape(delta);
    assert.deepEqual(delta.tags, {});
    assert.deepEqual(delta.upstream, { url: 'https://example.com/upstream.git', auth_kind: 'token', latest_sync: null });
    assert.ok(!JSON.stringify(delta).includes('s3cret-token'), 'upstream secret must never be returned');
    const work = await mesa.repos.create({ name: 'work' });
    assertRepoShape(work);
    Object.assign(S, { beta, gamma, delta, work });
    const ids = new Set([S.alpha.id, beta.id, gamma.id, delta.id, work.id]);
    assert.equal(ids.size, 5, 'repo ids must be unique');
  });

  await check('repos.create: a duplicate name is 409 REPO_ALREADY_EXISTS', async () => {
    await expectApiError(() => mesa.repos.create({ name: 'alpha' }), 409, 'REPO_ALREADY_EXISTS');
  });

  await check('repos.create: an invalid name is 400 VALIDATION_ERROR with details.errors', async () => {
    const err = await expectApiError(() => mesa.repos.create({ name: 'x'.repeat(101) }), 400, 'VALIDATION_ERROR');
    const errors = err.body.error.details?.errors;
    assert.ok(Array.isArray(errors) && errors.length > 0, 'details.errors[]');
    assert.equal(errors[0].field, 'name');
    assert.equal(typeof errors[0].message, 'string');
  });

  await check('org.get: num_repos counts the created repos', async () => {
    const o = await mesa.org.get();
    assert.equal(o.num_repos, 5);
  });

  await check('repos.list: limit+cursor pagination visits every repo once, in a stable order', async () => {
    const seen = [];
    let cursor;
    let pages = 0;
    for (;;) {
      const page = await mesa.repos.list(cursor ? { limit: 2, cursor } : { limit: 2 });
      assertPage(page, 'repos');
      page.repos.forEach(assertRepoShape);
      pages++;
      assert.ok(page.repos.length <= 2);
      seen.push(...page.repos.map((r) => r.name));
      if (!page.has_more) break;
      assert.equal(page.repos.length, 2, 'a page with has_more must be full');
      cursor = page.next_cursor;
      assert.ok(pages < 10, 'pagination does not terminate');
    }
    assert.equal(pages, 3);
    assert.deepEqual([...seen].sort(), ['alpha', 'beta', 'delta', 'gamma', 'work']);
    const all = await mesa.repos.list();
    assertPage(all, 'repos');
    assert.equal(all.has_more, false);
    assert.equal(all.next_cursor, null);
    assert.deepEqual(all.repos.map((r) => r.name), seen, 'paged order equals the unpaged order');
  });

  await check('repos.list: tags filter', async () => {
    const prod = await mesa.repos.list({ tags: 'env:prod' });
    assertPage(prod, 'repos');
    assert.deepEqual(prod.repos.map((r) => r.name).sort(), ['alpha', 'gamma']);
    const core = await mesa.repos.list({ tags: 'env:prod,team:core' });
    assert.deepEqual(core.repos.map((r) => r.name), ['alpha']);
    const none = await mesa.repos.list({ tags: 'env:staging' });
    assert.deepEqual(none.repos, []);
    assert.equal(none.has_more, false);
  });

  await check('repos.list: limit 0 and limit 101 are 400 VALIDATION_ERROR', async () => {
    await expectApiError(() => mesa.repos.list({ limit: 0 }), 400, 'VALIDATION_ERROR');
    await expectApiError(() => mesa.repos.list({ limit: 101 }), 400, 'VALIDATION_ERROR');
  });

  await check('repos.get: returns the created repo; missing repo is 404 REPO_NOT_FOUND', async () => {
    const r = await mesa.repos.get({ repo: 'alpha' });
    assertRepoShape(r);
    assert.deepEqual(r, S.alpha);
    await expectApiError(() => mesa.repos.get({ repo: 'no-such-repo' }), 404, 'REPO_NOT_FOUND');
  });

  await check('repos.update: rename + tag patch (set, delete with null); id stable', async () => {
    const u = await mesa.repos.update({ repo: 'alpha', name: 'alpha-renamed', tags: { team: null, owner: 'qa' } });
    assertRepoShape(u);
    assert.equal(u.id, S.alpha.id);
    assert.equal(u.name, 'alpha-renamed');
    assert.deepEqual(u.tags, { env: 'prod', owner: 'qa' });
    const g = await mesa.repos.get({ repo: 'alpha-renamed' });
    assert.deepEqual(g, u);
    await expectApiError(() => mesa.repos.get({ repo: 'alpha' }), 404, 'REPO_NOT_FOUND');
    const owned = await mesa.repos.list({ tags: 'owner:qa' });
    assert.deepEqual(owned.repos.map((r) => r.id), [S.alpha.id]);
  });

  await check('repos.update: renaming onto an existing name is 409 REPO_ALREADY_EXISTS', async () => {
    await expectApiError(() => mesa.repos.update({ repo: 'alpha-renamed', name: 'beta' }), 409, 'REPO_ALREADY_EXISTS');
  });

  await check('repos.update: upstream null removes the upstream', async () => {
    const u = await mesa.repos.update({ repo: 'delta', upstream: null });
    assertRepoShape(u);
    assert.equal(u.upstream, null);
  });

  await check('repos.listUpstreamSyncs: empty page', async () => {
    const page = await mesa.repos.listUpstreamSyncs({ repo: 'alpha-renamed' });
    assertPage(page, 'syncs');
    assert.deepEqual(page.syncs, []);
    assert.equal(page.has_more, false);
  });

  await check('repos.syncUpstream: 400 without an upstream; getUpstreamSync unknown id is 404', async () => {
    const err = await expectApiError(
      () => mesa.repos.syncUpstream({ repo: 'alpha-renamed', direction: 'pull' }),
      400,
      'UPSTREAM_NOT_CONFIGURED',
    );
    assert.ok(err.body.error.message);
    const nf = await mesa.repos.getUpstreamSync({ repo: 'alpha-renamed', syncId: 'sync_missing' }).catch((e) => e);
    assert.ok(nf instanceof MesaApiError);
    assert.equal(nf.status, 404);
  });

  await check('repos.delete: {success:true}; then 404 and gone from list and org count', async () => {
    const d = await mesa.repos.delete({ repo: 'beta' });
    assert.deepEqual(d, { success: true });
    await expectApiError(() => mesa.repos.get({ repo: 'beta' }), 404, 'REPO_NOT_FOUND');
    await expectApiError(() => mesa.repos.delete({ repo: 'beta' }), 404, 'REPO_NOT_FOUND');
    const all = await mesa.repos.list();
    assert.ok(!all.repos.some((r) => r.name === 'beta'));
    assert.equal(all.repos.length, 4);
    assert.equal((await mesa.org.get()).num_repos, 4);
  });

  // ---- changes ----------------------------------------------------------------------------------
  const repo = 'work';
  const author = { name: 'Ada Lovelace', email: 'ada@example.com' };
  const README1 = 'hello\n';
  const MAIN_SH = '#!/bin/sh\necho hi\n';
  const UTIL = 'util line\n';

  await check('changes.create: on the virtual root with files (one 100755); 201 Change', async () => {
    const c = await mesa.changes.create({
      repo,
      base_change_id: ROOT,
      message: 'initial import',
      author,
      files: [
        { path: 'README.md', content: b64(README1), encoding: 'base64' },
        { path: 'src/main.sh', content: b64(MAIN_SH), mode: '100755', action: 'upsert' },
        { path: 'src/lib/util.txt', content: b64(UTIL) },
      ],
    });
    assertChangeShape(c);
    assert.notEqual(c.id, ROOT);
    assert.equal(c.message, 'initial import');
    assert.equal(c.author.name, author.name);
    assert.equal(c.author.email, author.email);
    assert.equal(c.committer.name, author.name, 'committer falls back to author');
    assert.equal(c.is_conflicted, false);
    assert.deepEqual(c.parents, [ROOT]);
    S.c1 = c;
  });

  await check('changes.get: files list, no conflicts', async () => {
    const c = await mesa.changes.get({ repo, change_id: S.c1.id });
    assertChangeShape(c, { details: true });
    assert.equal(c.id, S.c1.id);
    assert.equal(c.current_commit_oid, S.c1.current_commit_oid);
    assert.deepEqual([...c.files].sort(), ['README.md', 'src/lib/util.txt', 'src/main.sh']);
    assert.deepEqual(c.conflicts, []);
  });

  await check('changes.get: unknown id is 404 CHANGE_NOT_FOUND; malformed id is 400', async () => {
    await expectApiError(() => mesa.changes.get({ repo, change_id: 'k'.repeat(32) }), 404, 'CHANGE_NOT_FOUND');
    await expectApiError(() => mesa.changes.get({ repo, change_id: 'not-a-change-id' }), 400, 'VALIDATION_ERROR');
  });

  await check('changes.create: invalid base64 / unknown base / bad mode are rejected', async () => {
    await expectApiError(
      () => mesa.changes.create({ repo, base_change_id: ROOT, message: 'x', author, files: [{ path: 'a', content: '***' }] }),
      400,
      'VALIDATION_ERROR',
    );
    await expectApiError(
      () => mesa.changes.create({ repo, base_change_id: 'k'.repeat(32), message: 'x', author }),
      404,
      'CHANGE_NOT_FOUND',
    );
    await expectApiError(
      () =>
        mesa.changes.create({
          repo,
          base_change_id: ROOT,
          message: 'x',
          author,
          files: [{ path: 'a', content: b64('a'), mode: '120000' }],
        }),
      400,
      'VALIDATION_ERROR',
    );
  });

  await check('bookmarks.move: main from the virtual root to the first change (from_change_id)', async () => {
    const m = await mesa.bookmarks.move({ repo, bookmark: 'main', change_id: S.c1.id });
    assertBookmarkShape(m, ['from_change_id']);
    assert.deepEqual(m, { name: 'main', change_id: S.c1.id, is_default: true, from_change_id: ROOT });
    const r = await mesa.repos.get({ repo });
    assert.equal(r.head_change_id, S.c1.id);
  });

  await check('changes.patch: base_commit_oid + message + files makes a new commit, same change', async () => {
    const p = await mesa.changes.patch({
      repo,
      change_id: S.c1.id,
      base_commit_oid: S.c1.current_commit_oid,
      message: 'initial import (edited)',
      files: [{ path: 'README.md', content: b64('hello world\n') }],
    });
    assertChangeShape(p);
    assert.equal(p.id, S.c1.id);
    assert.notEqual(p.current_commit_oid, S.c1.current_commit_oid);
    assert.equal(p.message, 'initial import (edited)');
    assert.deepEqual(p.parents, [ROOT]);
    const g = await mesa.changes.get({ repo, change_id: S.c1.id });
    assert.equal(g.current_commit_oid, p.current_commit_oid);
    S.c1old = S.c1;
    S.c1 = p;
  });

  await check('changes.patch: a stale base_commit_oid is 409 STALE_BASE_COMMIT, nothing changes', async () => {
    const err = await expectApiError(
      () =>
        mesa.changes.patch({
          repo,
          change_id: S.c1.id,
          base_commit_oid: S.c1old.current_commit_oid,
          files: [{ path: 'README.md', content: b64('lost update\n') }],
        }),
      409,
      'STALE_BASE_COMMIT',
    );
    assert.equal(err.status, 409);
    const g = await mesa.changes.get({ repo, change_id: S.c1.id });
    assert.equal(g.current_commit_oid, S.c1.current_commit_oid);
  });

  await check('changes.patch: unknown change 404, empty files 400', async () => {
    await expectApiError(() => mesa.changes.patch({ repo, change_id: 'k'.repeat(32), message: 'x' }), 404, 'CHANGE_NOT_FOUND');
    await expectApiError(() => mesa.changes.patch({ repo, change_id: S.c1.id, files: [] }), 400, 'VALIDATION_ERROR');
  });

  await check('bookmarks: main followed the rewritten change (jj semantics)', async () => {
    const b = await mesa.bookmarks.get({ repo, bookmark: 'main' });
    assert.deepEqual(b, { name: 'main', change_id: S.c1.id, is_default: true });
    const f = await mesa.content.get({ repo, path: 'README.md' });
    assert.equal(unb64(f.content), 'hello world\n');
  });

  await check('changes.create: child change (modify, add, delete); parents = [c1]', async () => {
    const c = await mesa.changes.create({
      repo,
      base_change_id: S.c1.id,
      message: 'second',
      author,
      files: [
        { path: 'README.md', content: b64('hello world\nsecond line\n') },
        { path: 'docs/guide.md', content: b64('# Guide\nstep one\n') },
        { path: 'src/lib/util.txt', action: 'delete' },
      ],
    });
    assertChangeShape(c);
    assert.deepEqual(c.parents, [S.c1.id]);
    const g = await mesa.changes.get({ repo, change_id: c.id });
    assert.deepEqual([...g.files].sort(), ['README.md', 'docs/guide.md', 'src/lib/util.txt']);
    S.c2 = c;
    const m = await mesa.bookmarks.move({ repo, bookmark: 'main', change_id: c.id });
    assert.equal(m.from_change_id, S.c1.id);
  });

  await check('changes.list: newest first for a bookmark, with limit+cursor', async () => {
    const all = await mesa.changes.list({ repo, bookmark: 'main' });
    assertPage(all, 'changes');
    all.changes.forEach((c) => assertChangeShape(c));
    assert.deepEqual(all.changes.map((c) => c.id), [S.c2.id, S.c1.id]);
    assert.equal(all.changes[1].current_commit_oid, S.c1.current_commit_oid);
    const dflt = await mesa.changes.list({ repo });
    assert.deepEqual(dflt.changes.map((c) => c.id), [S.c2.id, S.c1.id], 'defaults to the default bookmark');
    const p1 = await mesa.changes.list({ repo, bookmark: 'main', limit: 1 });
    assertPage(p1, 'changes');
    assert.deepEqual(p1.changes.map((c) => c.id), [S.c2.id]);
    assert.equal(p1.has_more, true);
    const p2 = await mesa.changes.list({ repo, bookmark: 'main', limit: 1, cursor: p1.next_cursor });
    assert.deepEqual(p2.changes.map((c) => c.id), [S.c1.id]);
    assert.equal(p2.has_more, false);
    assert.equal(p2.next_cursor, null);
  });

  await check('changes.list: unknown bookmark is 404 BOOKMARK_NOT_FOUND', async () => {
    await expectApiError(() => mesa.changes.list({ repo, bookmark: 'nope' }), 404, 'BOOKMARK_NOT_FOUND');
  });

  // ---- bookmarks --------------------------------------------------------------------------------
  await check('bookmarks.create: feature/auth (201), feature/ui; duplicate 409; bad input 400/404', async () => {
    const b = await mesa.bookmarks.create({ repo, name: 'feature/auth', change_id: S.c1.id });
    assertBookmarkShape(b);
    assert.deepEqual(b, { name: 'feature/auth', change_id: S.c1.id, is_default: false });
    await mesa.bookmarks.create({ repo, name: 'feature/ui', change_id: S.c2.id });
    await mesa.bookmarks.create({ repo, name: 'release', change_id: ROOT });
    await expectApiError(
      () => mesa.bookmarks.create({ repo, name: 'feature/auth', change_id: S.c2.id }),
      409,
      'BOOKMARK_ALREADY_EXISTS',
    );
    await expectApiError(() => mesa.bookmarks.create({ repo, name: 'x', change_id: 'bad' }), 400, 'VALIDATION_ERROR');
    await expectApiError(
      () => mesa.bookmarks.create({ repo, name: 'x', change_id: 'k'.repeat(32) }),
      404,
      'CHANGE_NOT_FOUND',
    );
  });

  await check('bookmarks.get: a name with "/" (sent as %2F)', async () => {
    const b = await mesa.bookmarks.get({ repo, bookmark: 'feature/auth' });
    assertBookmarkShape(b);
    assert.deepEqual(b, { name: 'feature/auth', change_id: S.c1.id, is_default: false });
    const log = fs.readFileSync(accessLog, 'utf8');
    assert.match(log, /bookmarks\/feature%2Fauth/, 'the SDK percent-encodes "/" in the bookmark name');
    await expectApiError(() => mesa.bookmarks.get({ repo, bookmark: 'feature/none' }), 404, 'BOOKMARK_NOT_FOUND');
  });

  await check('bookmarks.list: all (sorted, main is_default) and glob filter', async () => {
    const all = await mesa.bookmarks.list({ repo });
    assertPage(all, 'bookmarks');
    all.bookmarks.forEach((b) => assertBookmarkShape(b));
    const names = all.bookmarks.map((b) => b.name);
    assert.deepEqual([...names].sort(), ['feature/auth', 'feature/ui', 'main', 'release']);
    for (const b of all.bookmarks) assert.equal(b.is_default, b.name === 'main');
    assert.equal(all.bookmarks.find((b) => b.name === 'release').change_id, ROOT);
    const feat = await mesa.bookmarks.list({ repo, glob: 'feature/*' });
    assert.deepEqual(feat.bookmarks.map((b) => b.name).sort(), ['feature/auth', 'feature/ui']);
    const q = await mesa.bookmarks.list({ repo, glob: 'ma?n' });
    assert.deepEqual(q.bookmarks.map((b) => b.name), ['main']);
    const p1 = await mesa.bookmarks.list({ repo, limit: 3 });
    assert.equal(p1.bookmarks.length, 3);
    assert.equal(p1.has_more, true);
    const p2 = await mesa.bookmarks.list({ repo, limit: 3, cursor: p1.next_cursor });
    assert.equal(p2.has_more, false);
    assert.deepEqual([...p1.bookmarks, ...p2.bookmarks].map((b) => b.name), names);
  });

  await check('bookmarks.move: feature/auth to c2 reports from_change_id c1', async () => {
    const m = await mesa.bookmarks.move({ repo, bookmark: 'feature/auth', change_id: S.c2.id });
    assertBookmarkShape(m, ['from_change_id']);
    assert.deepEqual(m, { name: 'feature/auth', change_id: S.c2.id, is_default: false, from_change_id: S.c1.id });
    assert.equal((await mesa.bookmarks.get({ repo, bookmark: 'feature/auth' })).change_id, S.c2.id);
    await expectApiError(() => mesa.bookmarks.move({ repo, bookmark: 'nope', change_id: S.c2.id }), 404, 'BOOKMARK_NOT_FOUND');
  });

  await check('bookmarks.delete: feature/auth; then 404; the default bookmark is 409', async () => {
    const d = await mesa.bookmarks.delete({ repo, bookmark: 'feature/auth' });
    assert.deepEqual(d, { success: true });
    await expectApiError(() => mesa.bookmarks.get({ repo, bookmark: 'feature/auth' }), 404, 'BOOKMARK_NOT_FOUND');
    await expectApiError(() => mesa.bookmarks.delete({ repo, bookmark: 'feature/auth' }), 404, 'BOOKMARK_NOT_FOUND');
    await expectApiError(() => mesa.bookmarks.delete({ repo, bookmark: 'main' }), 409, 'DEFAULT_BOOKMARK');
    await mesa.bookmarks.delete({ repo, bookmark: 'release' });
  });

  // ---- content ----------------------------------------------------------------------------------
  await check('content.get: file (base64 content, sha = git blob id, size, mode 100644)', async () => {
    const f = await mesa.content.get({ repo, change_id: S.c1.id, path: 'README.md' });
    assertFileContentShape(f);
    assert.equal(f.name, 'README.md');
    assert.equal(f.path, 'README.md');
    assert.equal(unb64(f.content), 'hello world\n');
    assert.equal(f.size, Buffer.byteLength('hello world\n'));
    assert.equal(f.sha, blobSha('hello world\n'));
    assert.equal(f.mode, '100644');
    assert.ok(f.is_conflicted === undefined || f.is_conflicted === false);
  });

  await check('content.get: executable file has mode 100755; nested name/path', async () => {
    const f = await mesa.content.get({ repo, change_id: S.c1.id, path: 'src/main.sh' });
    assertFileContentShape(f);
    assert.equal(f.name, 'main.sh');
    assert.equal(f.path, 'src/main.sh');
    assert.equal(f.mode, '100755');
    assert.equal(unb64(f.content), MAIN_SH);
    assert.equal(f.sha, blobSha(MAIN_SH));
  });

  const c1Tree = {
    'README.md': { mode: '100644', text: 'hello world\n' },
    src: { lib: { 'util.txt': { mode: '100644', text: UTIL } }, 'main.sh': { mode: '100755', text: MAIN_SH } },
  };

  await check('content.get: root directory (entries, child_count, sha = git tree id)', async () => {
    const d = await mesa.content.get({ repo, change_id: S.c1.id });
    assertDirShape(d);
    assert.equal(d.path, '');
    assert.equal(d.child_count, 2);
    assert.equal(d.sha, treeSha(c1Tree));
    const rows = d.entries.map((e) => `${e.type}:${e.path}`).sort();
    assert.deepEqual(rows, ['dir:src', 'file:README.md']);
    const readme = d.entries.find((e) => e.path === 'README.md');
    assert.equal(readme.size, 12);
    assert.equal(readme.mode, '100644');
    assert.equal(readme.sha, blobSha('hello world\n'));
    assert.equal(d.entries.find((e) => e.path === 'src').sha, treeSha(c1Tree.src));
  });

  await check('content.get: depth 0 (metadata only) and depth 3 (flattened descendants)', async () => {
    const d0 = await mesa.content.get({ repo, change_id: S.c1.id, path: 'src', depth: 0 });
    assertDirShape(d0);
    assert.equal(d0.name, 'src');
    assert.equal(d0.path, 'src');
    assert.equal(d0.child_count, 2);
    assert.deepEqual(d0.entries, []);
    const d3 = await mesa.content.get({ repo, change_id: S.c1.id, depth: 3 });
    assertDirShape(d3);
    assert.equal(d3.child_count, 2);
    const rows = d3.entries.map((e) => `${e.type}:${e.path}`).sort();
    assert.deepEqual(rows, ['dir:src', 'dir:src/lib', 'file:README.md', 'file:src/lib/util.txt', 'file:src/main.sh']);
    assert.equal(d3.entries.find((e) => e.path === 'src/main.sh').mode, '100755');
    await expectApiError(() => mesa.content.get({ repo, depth: 11 }), 400, 'VALIDATION_ERROR');
  });

  await check('content.get: default change is the default bookmark tip; virtual root is empty', async () => {
    const d = await mesa.content.get({ repo });
    assertDirShape(d);
    assert.deepEqual(d.entries.map((e) => e.path).sort(), ['README.md', 'docs', 'src']);
    const guide = await mesa.content.get({ repo, path: 'docs/guide.md' });
    assert.equal(unb64(guide.content), '# Guide\nstep one\n');
    const empty = await mesa.content.get({ repo, change_id: ROOT });
    assertDirShape(empty);
    assert.equal(empty.child_count, 0);
    assert.deepEqual(empty.entries, []);
  });

  await check('content.get: missing path is 404 PATH_NOT_FOUND (also a path deleted by a change)', async () => {
    await expectApiError(() => mesa.content.get({ repo, change_id: S.c1.id, path: 'nope.txt' }), 404, 'PATH_NOT_FOUND');
    await expectApiError(() => mesa.content.get({ repo, change_id: S.c2.id, path: 'src/lib/util.txt' }), 404, 'PATH_NOT_FOUND');
    await expectApiError(() => mesa.content.get({ repo, change_id: 'k'.repeat(32) }), 404, 'CHANGE_NOT_FOUND');
  });

  // ---- diffs ------------------------------------------------------------------------------------
  await check('diffs.get: c1 -> c2 stats, statuses, hunks and line kinds', async () => {
    const d = await mesa.diffs.get({ repo, base_change_id: S.c1.id, head_change_id: S.c2.id });
    assertDiffShape(d);
    assert.equal(d.base_change_id, S.c1.id);
    assert.equal(d.head_change_id, S.c2.id);
    assert.equal(d.truncated, false);
    assert.deepEqual(d.stats, { entries: 3, additions: 3, deletions: 1, changes: 4, conflicted_entries: 0, conflicted_hunks: 0 });
    const byPath = Object.fromEntries(d.entries.map((e) => [e.path, e]));
    assert.deepEqual(Object.keys(byPath).sort(), ['README.md', 'docs/guide.md', 'src/lib/util.txt']);
    for (const e of d.entries) {
      assert.equal(e.old_path, null);
      assert.equal(e.is_conflicted, false);
      assert.equal(e.omitted_reason, null);
      assert.ok(Array.isArray(e.hunks) && e.hunks.length === 1, `${e.path} has one hunk`);
    }
    assert.equal(byPath['README.md'].status, 'modified');
    assert.deepEqual(hunkLines(byPath['README.md'].hunks[0]), ['context:hello world', 'added:second line']);
    const rh = byPath['README.md'].hunks[0];
    assert.deepEqual([rh.old_start, rh.old_lines, rh.new_start, rh.new_lines], [1, 1, 1, 2]);
    assert.equal(byPath['docs/guide.md'].status, 'added');
    assert.deepEqual(hunkLines(byPath['docs/guide.md'].hunks[0]), ['added:# Guide', 'added:step one']);
    const gh = byPath['docs/guide.md'].hunks[0];
    assert.deepEqual([gh.old_start, gh.old_lines, gh.new_start, gh.new_lines], [0, 0, 1, 2]);
    assert.equal(byPath['src/lib/util.txt'].status, 'deleted');
    assert.deepEqual(hunkLines(byPath['src/lib/util.txt'].hunks[0]), ['deleted:util line']);
    assert.deepEqual(d.conflicted_entries, []);
  });

  await check('diffs.get: from the virtual root everything is added; bad ids 400, unknown 404', async () => {
    const d = await mesa.diffs.get({ repo, base_change_id: ROOT, head_change_id: S.c1.id });
    assertDiffShape(d);
    assert.deepEqual(d.entries.map((e) => `${e.status}:${e.path}`).sort(), [
      'added:README.md',
      'added:src/lib/util.txt',
      'added:src/main.sh',
    ]);
    assert.equal(d.stats.additions, 4);
    assert.equal(d.stats.deletions, 0);
    const same = await mesa.diffs.get({ repo, base_change_id: S.c2.id, head_change_id: S.c2.id });
    assertDiffShape(same);
    assert.deepEqual(same.entries, []);
    await expectApiError(() => mesa.diffs.get({ repo, base_change_id: 'bad', head_change_id: S.c2.id }), 400, 'VALIDATION_ERROR');
    await expectApiError(
      () => mesa.diffs.get({ repo, base_change_id: S.c1.id, head_change_id: 'k'.repeat(32) }),
      404,
      'CHANGE_NOT_FOUND',
    );
  });

  // ---- merge ------------------------------------------------------------------------------------
  const mkChange = async (base, message, files) => {
    const c = await mesa.changes.create({ repo, base_change_id: base, message, author, files });
    assertChangeShape(c);
    return c;
  };
  const mainTip = async () => (await mesa.bookmarks.get({ repo, bookmark: 'main' })).change_id;
  const fileAt = async (p, change_id) => unb64((await mesa.content.get({ repo, path: p, ...(change_id ? { change_id } : {}) })).content);

  await check('bookmarks.merge: same commit is no_op', async () => {
    await mesa.bookmarks.create({ repo, name: 'same', change_id: S.c2.id });
    const m = await mesa.bookmarks.merge({ repo, target: 'main', source: 'same' });
    assertKeys(m, ['merge_type', 'is_conflicted', 'commit_oid', 'change_id', 'target', 'source', 'source_deleted'], [], 'merge');
    assert.equal(m.merge_type, 'no_op');
    assert.equal(m.is_conflicted, false);
    assert.equal(m.change_id, S.c2.id);
    assert.equal(m.commit_oid, S.c2.current_commit_oid);
    assert.equal(m.target, 'main');
    assert.equal(m.source, 'same');
    assert.equal(m.source_deleted, false);
    assert.equal(await mainTip(), S.c2.id);
  });

  await check('bookmarks.merge: divergent clean merge is a two-parent merge_commit; delete_source', async () => {
    const cm = await mkChange(S.c2.id, 'main side', [{ path: 'main-only.txt', content: b64('from main\n') }]);
    const cf = await mkChange(S.c2.id, 'feature side', [
      { path: 'feat-only.txt', content: b64('from feature\n') },
      { path: 'docs/guide.md', content: b64('# Guide\nstep one\nstep two\n') },
    ]);
    await mesa.bookmarks.move({ repo, bookmark: 'main', change_id: cm.id });
    await mesa.bookmarks.create({ repo, name: 'feature/clean', change_id: cf.id });
    const m = await mesa.bookmarks.merge({
      repo,
      target: 'main',
      source: 'feature/clean',
      delete_source: true,
      message: 'merge feature/clean',
    });
    assertKeys(m, ['merge_type', 'is_conflicted', 'commit_oid', 'change_id', 'target', 'source', 'source_deleted'], [], 'merge');
    assert.equal(m.merge_type, 'merge_commit');
    assert.equal(m.is_conflicted, false);
    assert.match(m.commit_oid, OID_RE);
    assert.match(m.change_id, CHANGE_ID_RE);
    assert.ok(![cm.id, cf.id].includes(m.change_id), 'the merge is a new change');
    assert.equal(m.target, 'main');
    assert.equal(m.source, 'feature/clean');
    assert.equal(m.source_deleted, true);
    assert.equal(await mainTip(), m.change_id);
    await expectApiError(() => mesa.bookmarks.get({ repo, bookmark: 'feature/clean' }), 404, 'BOOKMARK_NOT_FOUND');
    const mc = await mesa.changes.get({ repo, change_id: m.change_id });
    assertChangeShape(mc, { details: true });
    assert.equal(mc.current_commit_oid, m.commit_oid);
    assert.equal(mc.message, 'merge feature/clean');
    assert.equal(mc.is_conflicted, false);
    assert.deepEqual([...mc.parents].sort(), [cm.id, cf.id].sort());
    // both sides are in the merged tree
    assert.equal(await fileAt('main-only.txt'), 'from main\n');
    assert.equal(await fileAt('feat-only.txt'), 'from feature\n');
    assert.equal(await fileAt('docs/guide.md'), '# Guide\nstep one\nstep two\n');
    assert.equal(await fileAt('README.md'), 'hello world\nsecond line\n');
    const list = await mesa.changes.list({ repo });
    assert.equal(list.changes[0].id, m.change_id, 'the merge is the newest change on main');
    for (const id of [cm.id, cf.id, S.c2.id, S.c1.id]) assert.ok(list.changes.some((c) => c.id === id), `${id} reachable`);
    S.merge1 = m;
  });

  await check('bookmarks.merge: unknown source bookmark is 404 BOOKMARK_NOT_FOUND', async () => {
    await expectApiError(() => mesa.bookmarks.merge({ repo, target: 'main', source: 'ghost' }), 404, 'BOOKMARK_NOT_FOUND');
  });

  await check('bookmarks.merge: conflicting merge is 409 MERGE_CONFLICT with conflict_paths + hunks; nothing persisted', async () => {
    const base = await mkChange(S.merge1.change_id, 'conflict base', [{ path: 'conflict.txt', content: b64('one\ntwo\nthree\n') }]);
    const cm = await mkChange(base.id, 'main edits two', [{ path: 'conflict.txt', content: b64('one\nTWO-main\nthree\n') }]);
    const cf = await mkChange(base.id, 'feature edits two', [{ path: 'conflict.txt', content: b64('one\nTWO-feature\nthree\n') }]);
    await mesa.bookmarks.move({ repo, bookmark: 'main', change_id: cm.id });
    await mesa.bookmarks.create({ repo, name: 'feature/conflict', change_id: cf.id });
    const err = await expectApiError(
      () => mesa.bookmarks.merge({ repo, target: 'main', source: 'feature/conflict' }),
      409,
      'MERGE_CONFLICT',
    );
    const details = err.body.error.details;
    assert.deepEqual(details.conflict_paths, ['conflict.txt']);
    assert.ok(Array.isArray(details.conflicts) && details.conflicts.length === 1);
    assert.equal(details.conflicts[0].path, 'conflict.txt');
    const hunks = details.conflicts[0].hunks;
    assert.equal(hunks.length, 1);
    hunks.forEach(assertConflictHunkShape);
    assert.equal(unb64(hunks[0].target.content), 'TWO-main\n');
    assert.equal(unb64(hunks[0].base.content), 'two\n');
    assert.equal(unb64(hunks[0].source.content), 'TWO-feature\n');
    assert.equal(await mainTip(), cm.id, 'target bookmark unchanged');
    assert.equal((await mesa.bookmarks.get({ repo, bookmark: 'feature/conflict' })).change_id, cf.id);
    Object.assign(S, { conflictMain: cm, conflictFeature: cf, hunkId: hunks[0].hunk_id });
  });

  await check('bookmarks.merge: retry with per-hunk resolutions (hunk_id from the 409) succeeds', async () => {
    const m = await mesa.bookmarks.merge({
      repo,
      target: 'main',
      source: 'feature/conflict',
      resolutions: [{ path: 'conflict.txt', hunks: [{ hunk_id: S.hunkId, content: b64('TWO-resolved\n'), encoding: 'base64' }] }],
    });
    assert.equal(m.merge_type, 'merge_commit');
    assert.equal(m.is_conflicted, false);
    assert.equal(m.source_deleted, false);
    assert.equal(await mainTip(), m.change_id);
    assert.equal(await fileAt('conflict.txt'), 'one\nTWO-resolved\nthree\n');
    const mc = await mesa.changes.get({ repo, change_id: m.change_id });
    assert.equal(mc.is_conflicted, false);
    assert.deepEqual(mc.conflicts, []);
    assert.deepEqual([...mc.parents].sort(), [S.conflictMain.id, S.conflictFeature.id].sort());
    S.merge2 = m;
  });

  await check('bookmarks.merge: allow_conflicted records a conflicted change (content, diff, change)', async () => {
    const cm = await mkChange(S.merge2.change_id, 'main edits three', [
      { path: 'conflict.txt', content: b64('one\nTWO-resolved\nTHREE-main\n') },
    ]);
    const cf = await mkChange(S.merge2.change_id, 'feature edits three', [
      { path: 'conflict.txt', content: b64('one\nTWO-resolved\nTHREE-feature\n') },
    ]);
    await mesa.bookmarks.move({ repo, bookmark: 'main', change_id: cm.id });
    await mesa.bookmarks.move({ repo, bookmark: 'feature/conflict', change_id: cf.id });
    const m = await mesa.bookmarks.merge({ repo, target: 'main', source: 'feature/conflict', allow_conflicted: true });
    assert.equal(m.merge_type, 'merge_commit');
    assert.equal(m.is_conflicted, true);
    assert.equal(await mainTip(), m.change_id);
    const mc = await mesa.changes.get({ repo, change_id: m.change_id });
    assert.equal(mc.is_conflicted, true);
    assert.deepEqual(mc.conflicts, ['conflict.txt']);
    const f = await mesa.content.get({ repo, change_id: m.change_id, path: 'conflict.txt' });
    assertFileContentShape(f);
    assert.equal(f.is_conflicted, true);
    assert.match(unb64(f.content), /<<<<<<< [\s\S]*THREE-main[\s\S]*THREE-feature[\s\S]*>>>>>>>/);
    const d = await mesa.diffs.get({ repo, base_change_id: cm.id, head_change_id: m.change_id });
    assertDiffShape(d);
    assert.ok(!d.entries.some((e) => e.path === 'conflict.txt'), 'conflicted paths appear only in conflicted_entries');
    assert.deepEqual(d.conflicted_entries.map((e) => e.path), ['conflict.txt']);
    assert.equal(d.stats.conflicted_hunks, 1);
    assert.equal(unb64(d.conflicted_entries[0].hunks[0].target.content), 'THREE-main\n');
    assert.equal(unb64(d.conflicted_entries[0].hunks[0].source.content), 'THREE-feature\n');
    const only = await mesa.diffs.get({ repo, base_change_id: cm.id, head_change_id: m.change_id, conflicts: 'only' });
    assertDiffShape(only);
    assert.deepEqual(only.entries, []);
    assert.equal(only.conflicted_entries.length, 1);
    const excl = await mesa.diffs.get({ repo, base_change_id: cm.id, head_change_id: m.change_id, conflicts: 'exclude' });
    assertDiffShape(excl);
    assert.deepEqual(excl.conflicted_entries, []);
    S.merge3 = m;
  });

  await check('changes.patch: files on a conflicted change is 409 MERGE_CONFLICT; resolutions fix it', async () => {
    const err = await expectApiError(
      () => mesa.changes.patch({ repo, change_id: S.merge3.change_id, files: [{ path: 'x.txt', content: b64('x\n') }] }),
      409,
      'MERGE_CONFLICT',
    );
    assert.deepEqual(err.body.error.details.conflict_paths, ['conflict.txt']);
    const p = await mesa.changes.patch({
      repo,
      change_id: S.merge3.change_id,
      resolutions: [{ path: 'conflict.txt', take: 'source' }],
    });
    assertChangeShape(p);
    assert.equal(p.id, S.merge3.change_id);
    assert.equal(p.is_conflicted, false);
    assert.equal(await fileAt('conflict.txt'), 'one\nTWO-resolved\nTHREE-feature\n');
    const g = await mesa.changes.get({ repo, change_id: p.id });
    assert.deepEqual(g.conflicts, []);
  });

  // ---- API keys and scopes ----------------------------------------------------------------------
  await check('apiKeys.create/list/revoke: a read-only key reads, cannot write (403), 401 once revoked', async () => {
    const k = await mesa.apiKeys.create({ name: 'read-only', scopes: ['read'] });
    assertKeys(k, ['id', 'key', 'name', 'scopes', 'repo_ids', 'tags', 'created_at'], [], 'created api key');
    assert.equal(k.name, 'read-only');
    assert.deepEqual(k.scopes, ['read']);
    assert.equal(k.repo_ids, null);
    const list = await mesa.apiKeys.list();
    assertPage(list, 'api_keys');
    const ids = list.api_keys.map((x) => x.id);
    assert.ok(ids.includes(k.id) && ids.includes(S.keyId));
    assert.ok(!JSON.stringify(list).includes(k.key), 'secrets are never listed');
    const ro = new Mesa({ apiKey: k.key, apiUrl });
    assert.deepEqual((await ro.whoami()).scopes, ['read']);
    const repos = await ro.repos.list();
    assert.equal(repos.repos.length, 4);
    assert.equal((await ro.bookmarks.get({ repo, bookmark: 'main' })).name, 'main');
    await expectApiError(() => ro.repos.create({ name: 'nope' }), 403, 'FORBIDDEN');
    await expectApiError(() => ro.bookmarks.create({ repo, name: 'ro', change_id: ROOT }), 403, 'FORBIDDEN');
    await expectApiError(() => ro.apiKeys.list(), 403, 'FORBIDDEN');
    assert.deepEqual(await mesa.apiKeys.revoke({ id: k.id }), { success: true });
    await expectApiError(() => ro.repos.list(), 401, 'UNAUTHENTICATED');
  });

  await check('apiKeys: create with repo_ids/expiry/tags; list filters (status, scope, query); PATCH tags', async () => {
    const k = await mesa.apiKeys.create({
      name: 'scoped-ci', scopes: ['read', 'write'], repo_ids: [S.work.id], expires_in_seconds: 3600, tags: { team: 'qa', env: 'ci' },
    });
    assertKeys(k, ['id', 'key', 'name', 'scopes', 'repo_ids', 'tags', 'created_at'], [], 'created api key');
    assert.ok(k.key.startsWith('mesa_'));
    assert.deepEqual(k.repo_ids, [S.work.id]);
    assert.deepEqual(k.tags, { team: 'qa', env: 'ci' });
    const org = 'conf';
    const rest = mesa.restClient;
    const byQuery = await rest.request(listApiKeys, { path: { org }, query: { query: 'scoped' } });
    assertPage(byQuery, 'api_keys');
    assert.deepEqual(byQuery.api_keys.map((x) => x.id), [k.id]);
    const item = byQuery.api_keys[0];
    assertKeys(item, ['id', 'name', 'scopes', 'repo_ids', 'metadata', 'tags', 'last_used_at', 'expires_at', 'revoked_at', 'created_at'], [], 'api key');
    assertTime(item.expires_at, 'expires_at');
    assert.equal(item.revoked_at, null);
    assert.ok(!JSON.stringify(byQuery).includes(k.key));
    const admins = await rest.request(listApiKeys, { path: { org }, query: { scope: 'admin' } });
    assert.ok(admins.api_keys.every((x) => x.scopes.includes('admin')));
    assert.ok(admins.api_keys.some((x) => x.id === S.keyId));
    const byRepo = await rest.request(listApiKeys, { path: { org }, query: { repo_id: S.work.id } });
    assert.deepEqual(byRepo.api_keys.map((x) => x.id), [k.id]);
    const revoked = await rest.request(listApiKeys, { path: { org }, query: { status: 'revoked' } });
    assert.ok(revoked.api_keys.length >= 1 && revoked.api_keys.every((x) => typeof x.revoked_at === 'string'));
    const page = await rest.request(listApiKeys, { path: { org }, query: { status: 'all', limit: 1 } });
    assert.equal(page.api_keys.length, 1);
    assert.equal(page.has_more, true);
    const tags = await rest.request(updateApiKey, { path: { org, id: k.id }, body: { tags: { team: null, owner: 'me' } } });
    assert.deepEqual(tags, { tags: { env: 'ci', owner: 'me' } });
    await expectApiError(() => mesa.apiKeys.create({ scopes: ['root'] }), 400, 'VALIDATION_ERROR');
    await expectApiError(() => mesa.apiKeys.create({ expires_in_seconds: 99 }), 400, 'VALIDATION_ERROR');
    await expectApiError(() => mesa.apiKeys.revoke({ id: 'key_missing' }), 404, 'API_KEY_NOT_FOUND');
    // The repo-restricted key sees one repo; others are 404.
    const scoped = new Mesa({ apiKey: k.key, apiUrl });
    assert.deepEqual((await scoped.repos.list()).repos.map((r) => r.name), ['work']);
    await expectApiError(() => scoped.repos.get({ repo: 'gamma' }), 404, 'REPO_NOT_FOUND');
    await expectApiError(() => scoped.apiKeys.list(), 403, 'FORBIDDEN');
    S.scopedKey = k;
  });

  await check('tokens.create: the SDK-signed HS256 token (typ mesa-at+jwt, kid <key>.v1) reads within scope and repos', async () => {
    const t = await mesa.tokens.create({ scopes: ['read'], repos: ['conf/gamma'], ttl_seconds: 600 });
    assert.deepEqual(t.scopes, ['read']);
    const header = jwsPart(t.token, 0);
    assert.deepEqual(header, { alg: 'HS256', typ: 'mesa-at+jwt', kid: `${S.keyId}.v1` });
    assert.equal(jwsPart(t.token, 1).aud, 'mesa-api');
    // No org given: the SDK resolves it with /whoami, which accepts the token.
    const tm = new Mesa({ apiKey: t.token, apiUrl });
    const w = await tm.whoami();
    assert.equal(w.org.slug, 'conf');
    assert.equal(w.key_id, S.keyId);
    assert.deepEqual(w.scopes, ['read']);
    assert.equal((await tm.repos.get({ repo: 'gamma' })).id, S.gamma.id);
    assert.deepEqual((await tm.repos.list()).repos.map((r) => r.name), ['gamma']);
    assert.equal((await tm.bookmarks.list({ repo: 'gamma' })).bookmarks[0].name, 'trunk');
    await expectApiError(() => tm.repos.get({ repo: 'work' }), 404, 'REPO_NOT_FOUND');
    await expectApiError(() => tm.bookmarks.create({ repo: 'gamma', name: 'nope', change_id: ROOT }), 403, 'FORBIDDEN');
    await expectApiError(() => tm.repos.create({ name: 'nope' }), 403, 'FORBIDDEN');
    await expectApiError(() => tm.apiKeys.list(), 403, 'FORBIDDEN');
  });

  await check('tokens.create: a write token writes in its repo only; default scopes never reach admin', async () => {
    const { token } = await mesa.tokens.create({ scopes: ['read', 'write'], repos: ['conf/work'] });
    const tm = new Mesa({ apiKey: token, apiUrl, org: 'conf' });
    const b = await tm.bookmarks.create({ repo: 'work', name: 'from-token', change_id: ROOT });
    assertBookmarkShape(b);
    assert.deepEqual(await tm.bookmarks.delete({ repo: 'work', bookmark: 'from-token' }), { success: true });
    await expectApiError(() => tm.bookmarks.create({ repo: 'gamma', name: 'x', change_id: ROOT }), 404, 'REPO_NOT_FOUND');
    const all = new Mesa({ apiKey: (await mesa.tokens.create()).token, apiUrl, org: 'conf' });
    assert.deepEqual((await all.whoami()).scopes, ['read', 'write']);
    assert.equal((await all.repos.list()).repos.length, 4);
    await expectApiError(() => all.webhookTargets.list(), 403, 'FORBIDDEN');
  });

  await check('tokens.create: scopes and repos are clamped to the signing key (repo-restricted read/write key)', async () => {
    const km = new Mesa({ apiKey: S.scopedKey.key, apiUrl });
    const { token } = await km.tokens.create({ scopes: ['read', 'write', 'admin'], repos: ['conf/work', 'conf/gamma'] });
    const tm = new Mesa({ apiKey: token, apiUrl, org: 'conf' });
    assert.deepEqual((await tm.whoami()).scopes, ['read', 'write']);
    assert.deepEqual((await tm.repos.list()).repos.map((r) => r.name), ['work']);
    await expectApiError(() => tm.repos.get({ repo: 'gamma' }), 404, 'REPO_NOT_FOUND');
    await expectApiError(() => tm.apiKeys.list(), 403, 'FORBIDDEN');
  });

  await check('tokens: expired, tampered and revoked-key tokens are 401 UNAUTHENTICATED', async () => {
    const short = await mesa.tokens.create({ scopes: ['read'], ttl_seconds: 2 });
    const sm = new Mesa({ apiKey: short.token, apiUrl, org: 'conf' });
    assert.equal((await sm.repos.list()).repos.length, 4);
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(short.expires_at) - Date.now()) + 1100));
    await expectApiError(() => sm.repos.list(), 401, 'UNAUTHENTICATED');

    const { token } = await mesa.tokens.create({ scopes: ['read'] });
    const [h, p, sig] = token.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    payload.scopes = ['admin'];
    const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${sig}`;
    await expectApiError(() => new Mesa({ apiKey: forged, apiUrl, org: 'conf' }).apiKeys.list(), 401, 'UNAUTHENTICATED');
    const flipped = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
    await expectApiError(() => new Mesa({ apiKey: flipped, apiUrl, org: 'conf' }).repos.list(), 401, 'UNAUTHENTICATED');

    const k = await mesa.apiKeys.create({ name: 'to-revoke', scopes: ['read'] });
    const km = new Mesa({ apiKey: k.key, apiUrl });
    const kt = new Mesa({ apiKey: (await km.tokens.create({ scopes: ['read'] })).token, apiUrl, org: 'conf' });
    assert.equal((await kt.repos.list()).repos.length, 4);
    await mesa.apiKeys.revoke({ id: k.id });
    await expectApiError(() => kt.repos.list(), 401, 'UNAUTHENTICATED');
  });

  await check('webhookTargets.list/update/delete: shapes (no secret), partial updates, repo_ids null = org-wide', async () => {
    const extra = await mesa.webhookTargets.create({ url: receiver.url('/extra') });
    assert.deepEqual(extra.events, ['push']);
    const list = await mesa.webhookTargets.list();
    assertPage(list, 'webhook_targets');
    const ids = list.webhook_targets.map((t) => t.id);
    assert.ok(ids.includes(extra.id) && ids.includes(S.hookTarget.id));
    for (const t of list.webhook_targets) {
      assertKeys(t, ['id', 'name', 'url', 'events', 'repo_ids', 'created_at', 'updated_at'], [], 'webhook target');
    }
    assert.ok(!JSON.stringify(list).includes(extra.secret), 'secrets are never listed');
    const page = await mesa.webhookTargets.list({ limit: 1 });
    assert.equal(page.webhook_targets.length, 1);
    assert.equal(page.has_more, true);
    const u = await mesa.webhookTargets.update({
      webhookTargetId: extra.id, name: 'renamed', events: ['change.created', 'push'], repo_ids: [S.work.id],
    });
    assertKeys(u, ['id', 'name', 'url', 'events', 'repo_ids', 'created_at', 'updated_at'], [], 'updated webhook target');
    assert.equal(u.name, 'renamed');
    assert.deepEqual(u.events, ['change.created', 'push']);
    assert.deepEqual(u.repo_ids, [S.work.id]);
    assert.equal(u.url, receiver.url('/extra'));
    const wide = await mesa.webhookTargets.update({ webhookTargetId: extra.id, repo_ids: null, name: null });
    assert.equal(wide.repo_ids, null);
    assert.equal(wide.name, null);
    assert.deepEqual(wide.events, ['change.created', 'push']);
    await expectApiError(() => mesa.webhookTargets.create({ url: 'ftp://example.com/hook' }), 400, 'VALIDATION_ERROR');
    await expectApiError(() => mesa.webhookTargets.create({ url: receiver.url('/x'), events: [] }), 400, 'VALIDATION_ERROR');
    assert.deepEqual(await mesa.webhookTargets.delete({ webhookTargetId: extra.id }), { success: true });
    await expectApiError(() => mesa.webhookTargets.delete({ webhookTargetId: extra.id }), 404, 'WEBHOOK_TARGET_NOT_FOUND');
    await expectApiError(() => mesa.webhookTargets.update({ webhookTargetId: extra.id, name: 'x' }), 404, 'WEBHOOK_TARGET_NOT_FOUND');
    assert.ok(!(await mesa.webhookTargets.list()).webhook_targets.some((t) => t.id === extra.id));
    const ro = await mesa.apiKeys.create({ scopes: ['write'] });
    await expectApiError(() => new Mesa({ apiKey: ro.key, apiUrl, org: 'conf' }).webhookTargets.list(), 403, 'FORBIDDEN');
  });

  await check('webhooks.receive: every delivered event passes the official SDK (signature + schema), all 10 API types', async () => {
    const { hooks } = receiver;
    // Wait until every API event type arrived and deliveries went quiet.
    const deadline = Date.now() + 30000;
    let last = -1;
    let quietSince = Date.now();
    while (Date.now() < deadline) {
      const types = new Set(hooks.accepted.filter((a) => a.path === '/hook').map((a) => a.event?.type));
      if (hooks.requests !== last) {
        last = hooks.requests;
        quietSince = Date.now();
      }
      const flakyWanted = hooks.accepted.filter((a) => a.path === '/hook' && FLAKY_TYPES.includes(a.event.type)).length;
      const flakyDone = hooks.accepted.filter((a) => a.path === '/flaky').length >= flakyWanted;
      if (API_EVENTS.every((t) => types.has(t)) && flakyDone && Date.now() - quietSince > 1500) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(hooks.rejected, [], 'the SDK rejected deliveries');
    const main = hooks.accepted.filter((a) => a.path === '/hook').map((a) => a.event);
    const types = new Set(main.map((e) => e.type));
    for (const t of API_EVENTS) assert.ok(types.has(t), `no ${t} event was delivered (got ${[...types].join(', ')})`);
    const ids = main.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, 'each event is delivered once to a healthy receiver');
    for (const e of main) {
      assert.equal(e.organization.slug, 'conf');
      assert.ok(e.repository && typeof e.repository.id === 'string');
      assertTime(e.occurred_at, 'occurred_at');
    }
    // Ground truth: the five repos this run created, the one it deleted.
    const created = main.filter((e) => e.type === 'repo.created').map((e) => e.data.repo.id).sort();
    assert.deepEqual(created, [S.alpha.id, S.beta.id, S.gamma.id, S.delta.id, S.work.id].sort());
    const deleted = main.filter((e) => e.type === 'repo.deleted').map((e) => e.data.repo.name);
    assert.deepEqual(deleted, ['beta']);
    const renamed = main.find((e) => e.type === 'repo.updated' && e.data.after.name === 'alpha-renamed');
    assert.ok(renamed && renamed.data.before.name === 'alpha');
    // The flaky target answered 500 to every first attempt; each event then passed on a retry,
    // with the event id the healthy target got (one id per event, whatever the target).
    const flaky = hooks.accepted.filter((a) => a.path === '/flaky');
    assert.ok(flaky.every((a) => a.attempt >= 2));
    const wanted = main.filter((e) => FLAKY_TYPES.includes(e.type)).map((e) => e.id).sort();
    assert.ok(wanted.length >= 6);
    assert.deepEqual(flaky.map((a) => a.event.id).sort(), wanted);
    assert.equal(receiver.hooks.receivers.get('/hook').dispatched, main.length, 'handlers ran for every event');
    console.log(`        ${main.length} events (${types.size} types) and ${flaky.length} retried deliveries accepted by mesa.webhooks.receive`);
  });

  await check('access log: records SDK requests with method, path and status', async () => {
    const log = fs.readFileSync(accessLog, 'utf8');
    assert.match(log, /method=GET path=\/v1\/whoami status=200/);
    assert.match(log, /method=POST path=\/v1\/conf\/work\/bookmarks\/merge status=409/);
    assert.ok(!log.includes(apiKey), 'the access log never contains the API key');
    assert.ok(!log.includes('whsec_'), 'nor webhook secrets');
    assert.match(log, /method=POST path=\/v1\/conf\/webhook-targets status=201/);
  });
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------
async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(args.server)) {
    console.error(`mesa-server binary not found: ${args.server}`);
    process.exit(2);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesa-conformance-'));
  let child = null;
  let serverStderr = '';
  const cleanup = async () => {
    await stopServer(child);
    if (!args.keep) fs.rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (sig) => {
    cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let setupError = null;
  try {
    const store = path.join(dir, 'store');
    const accessLog = path.join(dir, 'access.log');
    const out = execFileSync(args.server, ['init', '--data', store, '--org', 'conf'], { encoding: 'utf8' });
    const apiKey = out.trim().split('\n').pop().trim();
    assert.ok(apiKey.length > 0, 'init printed no API key');
    const port = await freePort();
    child = spawn(args.server, ['serve', '--data', store, '--listen', `127.0.0.1:${port}`, '--access-log', accessLog], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      serverStderr += d;
    });
    const base = `http://127.0.0.1:${port}`;
    await waitForServer(base, apiKey, child, () => serverStderr);
    console.log(`mesa-server up at ${base} (data ${store})`);
    await runChecks({ apiUrl: `${base}/v1`, apiKey, accessLog });
    await check('mesa-server: stayed up, and SIGTERM stops it cleanly (exit 0)', async () => {
      assert.equal(child.exitCode, null, `server exited during the run: ${child.exitCode}`);
      assert.equal(child.signalCode, null, `server died during the run: ${child.signalCode}`);
      const { code, signal } = await stopServer(child);
      assert.equal(signal, null, 'needed SIGKILL or died from a signal');
      assert.equal(code, 0);
    });
  } catch (err) {
    setupError = err;
    console.log(`ERROR ${err && err.stack ? err.stack : err}`);
  } finally {
    await cleanup();
  }

  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0 || setupError) {
    if (serverStderr.trim()) {
      console.log('--- mesa-server stderr ---');
      console.log(serverStderr.trimEnd());
    }
  }
  console.log(
    `\n${results.length - failed.length}/${results.length} checks passed` +
      (failed.length ? `; failed: ${failed.map((f) => f.name).join(' | ')}` : '') +
      (setupError ? '; setup failed' : ''),
  );
  process.exitCode = failed.length === 0 && !setupError && results.length > 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
