// Baseline (a) for the bench: the minimal node:http + fs.createReadStream file server (1 MiB reads),
// with single-range support so concurrent range readers can be compared. Usage: node static-server.mjs FILE
import { createReadStream, statSync } from 'node:fs';
import http from 'node:http';

const file = process.argv[2];
const size = statSync(file).size;
const READ = 1024 * 1024;

const server = http.createServer((req, res) => {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = size - 1;
  if (m) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    if (start > end) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
  } else {
    res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' });
  }
  const stream = createReadStream(file, { start, end, highWaterMark: READ });
  stream.pipe(res);
  res.on('close', () => stream.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`static server on http://127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
