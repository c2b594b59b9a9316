// Builds the dashboard (web/ → dist/dashboard/): one bundled script and one stylesheet, named by the
// hash of their content so the proxy can let browsers cache them for good; index.html names them.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, '..', 'dist', 'dashboard');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: { app: path.join(here, 'main.ts'), style: path.join(here, 'style.css'), icon: path.join(here, 'icon.svg') },
  loader: { '.svg': 'copy' },
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: false,
  entryNames: '[name]-[hash]',
  outdir: out,
  metafile: true,
  logLevel: 'warning',
});
const names = {};
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  if (meta.entryPoint) names[path.basename(meta.entryPoint).replace(/\.[a-z]+$/, '')] = path.basename(file);
}
const html = readFileSync(path.join(here, 'index.html'), 'utf8').replace(/\{\{(\w+)\}\}/g, (_m, key) => {
  const name = { app: names.main, style: names.style, icon: names.icon }[key];
  if (!name) throw new Error(`index.html names an unknown asset ${key}`);
  return `/dashboard/${name}`;
});
writeFileSync(path.join(out, 'index.html'), html);
