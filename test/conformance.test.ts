/**
 * Differential conformance: the same requests to nginx serving a file from disk and to the proxy
 * serving the same bytes from a real upstream, on a cold entry (a fresh one per case, from the test
 * upstream and from nginx itself as the upstream) and on a complete one. Status, Content-Range, Content-Length, Content-Type, validators' presence,
 * Last-Modified, multipart parts and body bytes must agree, except where a case names the RFC 9110
 * section that allows the proxy's (then exactly asserted) answer. Cases, and what nginx does
 * where it is surprising: helpers/conformance-cases.ts.
 *
 * Needs nginx (Debian: `apt-get install nginx`, as .ci/run does). Skipped locally without it; in CI
 * (`CI` set) a missing nginx fails the suite.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startProxy, tempDir, waitComplete, type FetchResult, type Proxy } from './helpers/harness.js';
import { makeData, startUpstream, type Upstream } from './helpers/upstream.js';
import { findNginx, startNginx, type Nginx } from './helpers/nginx.js';
import {
  expectedAnswer,
  headersOf,
  headShape,
  needsOwnEtag,
  send,
  summarize,
  type Answer,
  type Case,
  type Method,
} from './helpers/conformance.js';
import { CASES, CHUNK, CONTENT_TYPE, LAST_MODIFIED, MTIME, SIZE } from './helpers/conformance-cases.js';

const NGINX = findNginx();
const skip = NGINX === undefined && !process.env.CI ? 'nginx is not installed (apt-get install nginx; CI installs it)' : false;
const DATA = makeData(SIZE, 10);
const UPSTREAM_ETAG = '"some-strong-etag"';

/** The server's own ETag, from a HEAD (each server has its own). */
async function ownEtag(url: string): Promise<string> {
  const res = await send(url, 'HEAD', {});
  const etag = res.headers['etag'];
  assert.equal(typeof etag, 'string', `HEAD ${url} sent no ETag (status ${res.status}): conditional cases need one`);
  return etag as string;
}

/** Sends a case to one server; a HEAD is also checked against the GET of the same request. */
async function ask(url: string, c: Case, server: string): Promise<Answer> {
  const method: Method = c.method ?? 'GET';
  const own = needsOwnEtag(c) ? await ownEtag(url) : undefined;
  const headers = headersOf(c, { etag: own ?? '"unused"' });
  const res: FetchResult = await send(url, method, headers);
  if (own !== undefined && [200, 206, 304].includes(res.status)) {
    assert.equal(res.headers['etag'], own, `${server}: the ETag changed between the HEAD and the request`);
  }
  if (method === 'HEAD') {
    const get = await send(url, 'GET', headers);
    assert.equal(res.body.length, 0, `${server}: HEAD has a body`);
    assert.deepEqual(headShape(res), headShape(get), `${server}: HEAD and GET headers differ for ${JSON.stringify(headers)}`);
  }
  return summarize(res, method);
}

describe('conformance with nginx (RFC 9110 ranges and conditional requests)', { skip }, () => {
  let nginx: Nginx | undefined;
  let upstream: Upstream | undefined;
  let proxy: Proxy | undefined;
  let root: string | undefined;
  let completeUrl = '';
  const nginxAnswers = new Map<Case, Promise<Answer>>();

  const nginxAnswer = (c: Case): Promise<Answer> => {
    let answer = nginxAnswers.get(c);
    if (answer === undefined) {
      answer = ask(nginx!.url('/file.mp4'), c, 'nginx');
      nginxAnswers.set(c, answer);
    }
    return answer;
  };

  async function check(c: Case, proxyUrl: string): Promise<void> {
    const reference = await nginxAnswer(c);
    const actual = await ask(proxyUrl, c, 'proxy');
    const allowed = c.allowedDifference;
    if (allowed === undefined) {
      assert.deepEqual(actual, reference, 'the proxy answered differently from nginx (actual: proxy, expected: nginx)');
    } else {
      const expected = expectedAnswer(allowed.expect, c.method ?? 'GET', DATA, CONTENT_TYPE, LAST_MODIFIED);
      assert.deepEqual(actual, expected, `the proxy must answer as allowed by RFC 9110 ${allowed.rfc} (${allowed.why})`);
    }
  }

  before(async () => {
    if (NGINX === undefined) throw new Error('nginx is required when CI is set (.ci/run installs the Debian package)');
    root = tempDir('mediacache-conformance-');
    chmodSync(root, 0o755);
    const file = path.join(root, 'file.mp4');
    writeFileSync(file, DATA);
    utimesSync(file, MTIME, MTIME);
    // `before`: If-Modified-Since later than the mtime is a 304 as in RFC 9110 §13.1.3 (nginx's default, `exact`, says 200).
    nginx = await startNginx(NGINX, { root, serverDirectives: '    if_modified_since before;' });
    upstream = await startUpstream();
    upstream.setFile('/file.mp4', DATA, { contentType: CONTENT_TYPE, etag: UPSTREAM_ETAG, lastModified: LAST_MODIFIED });
    proxy = await startProxy({ chunkSize: CHUNK, backgroundFill: false });

    // Both servers must describe the same file, or every comparison below is meaningless.
    const head = await send(nginx.url('/file.mp4'), 'HEAD', {});
    assert.equal(head.status, 200, nginx.errorLog());
    assert.equal(head.headers['last-modified'], LAST_MODIFIED);
    assert.equal(head.headers['content-length'], String(SIZE));
    assert.equal(head.headers['content-type'], CONTENT_TYPE);

    const { id, streamUrl } = await proxy.add(upstream.url('/file.mp4?entry=complete'));
    proxy.cache.prefetch(id);
    await waitComplete(proxy, id);
    completeUrl = streamUrl;
  });

  after(async () => {
    await proxy?.close();
    await upstream?.close();
    await nginx?.stop();
    if (root !== undefined) rmSync(root, { recursive: true, force: true });
  });

  test('the table has at least 40 cases, each named once', () => {
    assert.ok(CASES.length >= 40);
    assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length);
  });

  describe('cold entry (a fresh entry per case)', () => {
    CASES.forEach((c, i) => {
      test(c.name, { timeout: 10_000 }, async () => {
        const { streamUrl } = await proxy!.add(upstream!.url(`/file.mp4?entry=cold-${i}`));
        await check(c, streamUrl);
      });
    });
  });

  // nginx itself as the upstream: a real server's replies (its 416 is an HTML error page without
  // validators, its 206 carries no Accept-Ranges) must not leak into what the proxy serves.
  describe('cold entry, nginx as the upstream', () => {
    CASES.forEach((c, i) => {
      test(c.name, { timeout: 10_000 }, async () => {
        const { streamUrl } = await proxy!.add(nginx!.url(`/file.mp4?entry=cold-${i}`));
        await check(c, streamUrl);
      });
    });
  });

  describe('complete entry', () => {
    for (const c of CASES) test(c.name, { timeout: 10_000 }, () => check(c, completeUrl));
  });
});
