/**
 * Loaded into the proxy by `bench/cold-trace.ts` (`node --import`): timestamps of the steps of a
 * cold request, read back with `GET /__trace`. Diagnostics channels where Node has them; else
 * wrappers around a few methods of the built modules (a bench tool, not part of the proxy).
 */
import dc from 'node:diagnostics_channel';
import http from 'node:http';
import net from 'node:net';

const DIST = new URL('../dist/', import.meta.url);
const now = () => performance.timeOrigin + performance.now();
let marks = {};
const mark = (step) => void (marks[step] ??= now());
const isStream = (url) => url?.startsWith('/stream/');

dc.subscribe('http.server.request.start', ({ request }) => {
  if (!isStream(request.url)) return;
  marks = {};
  mark('request parsed');
});
// Published once the request has been written to its socket (ClientRequest#_finish).
dc.subscribe('http.client.request.start', ({ request }) => {
  mark('upstream request sent');
  request.once('response', () => mark('upstream headers in'));
});

const wrap = async (module, cls, method, before, after) => {
  const proto = (await import(new URL(module, DIST).href))[cls].prototype;
  const original = proto[method];
  proto[method] = function (...args) {
    if (before) mark(before);
    const result = original.apply(this, args);
    if (after) mark(after);
    return result;
  };
};
await wrap('cache.js', 'MediaCache', 'openReader', null, 'entry looked up');
await wrap('download/downloader.js', 'Downloader', 'fetchRange', 'transfer started', null);
await wrap('download/scheduler.js', 'Scheduler', 'acceptMetadata', null, 'size recorded');
await wrap('download/scheduler.js', 'Scheduler', 'onProgress', 'first body piece in', null);

const write = http.ServerResponse.prototype.write;
http.ServerResponse.prototype.write = function (chunk, ...rest) {
  if (!isStream(this.req?.url)) return write.call(this, chunk, ...rest);
  mark('first body byte written');
  return write.call(this, chunk, ...rest);
};
// When the response's bytes really go to the kernel (node:http may hold them corked until later).
for (const method of ['_writeGeneric']) {
  const original = net.Socket.prototype[method];
  net.Socket.prototype[method] = function (...args) {
    if (isStream(this._httpMessage?.req?.url)) mark('first bytes to the kernel');
    return original.apply(this, args);
  };
}
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, res) {
  if (event === 'request' && req.url === '/__trace') {
    res.end(JSON.stringify(marks));
    return true;
  }
  return emit.call(this, event, req, res);
};
