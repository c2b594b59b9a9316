import type { Command } from 'commander';
import { isWildcard } from '../server/host-guard.js';
import { CliError, EXIT, serverOption } from './client.js';
import { configOption } from './config.js';

/**
 * The dashboard's address for a server URL: its root. A server bound to every interface is shown
 * by its loopback address (a browser on this machine may use it; 0.0.0.0 is not a Host it answers).
 */
export function dashboardUrl(serverUrl: string): string {
  const url = new URL('/', serverUrl);
  if (isWildcard(url.hostname)) url.hostname = url.hostname === '0.0.0.0' ? '127.0.0.1' : '[::1]';
  return url.href;
}

/** `mediacache dashboard`: prints the URL of the live dashboard of a running server. */
export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description('print the URL of the live dashboard (entries, chunk maps, transfers, players) of a running server')
    .addOption(serverOption())
    .addOption(configOption())
    .action(async (opts: { server: string }) => {
      let url: string;
      try {
        url = dashboardUrl(opts.server);
      } catch {
        throw new CliError(`not a server URL: ${opts.server}`, EXIT.USAGE);
      }
      process.stdout.write(`${url}\n`);
      // The URL is printed either way; a server that does not answer is said so, with its exit code.
      const up = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(3000) }).then(
        (res) => res.ok,
        () => false,
      );
      if (!up) throw new CliError(`no mediacache server answers at ${url} (is 'mediacache serve' running?)`, EXIT.UNREACHABLE);
    });
}
