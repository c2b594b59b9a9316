import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULTS } from '../cache.js';
import { CliError, EXIT } from './client.js';

export function configOption(): Option {
  return new Option('--config <file>', 'JSON config file (default: <data-dir>/config.json when present)').env('MEDIACACHE_CONFIG');
}

/**
 * Fills options nobody set on the command line or in the environment from the config file, so
 * the precedence is flags > MEDIACACHE_* env > config file > defaults. Keys are option names in
 * camelCase or kebab-case (`maxSize` or `max-size`); values are JSON strings, numbers or booleans.
 * A key that no command knows is a usage error: a typo must not pass silently.
 */
export function applyConfigFile(program: Command, command: Command): void {
  const explicit = command.getOptionValue('config') as string | undefined;
  const dataDir = (command.getOptionValue('dataDir') as string | undefined) ?? DEFAULTS.dataDir;
  const file = explicit ?? path.join(dataDir, 'config.json');
  if (!explicit && !existsSync(file)) return;
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read config file ${file}: ${(err as Error).message}`, EXIT.USAGE);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new CliError(`config file ${file} must hold a JSON object`, EXIT.USAGE);
  }
  const known = new Set<string>();
  for (const c of program.commands) for (const o of c.options) known.add(o.attributeName());
  for (const [rawKey, value] of Object.entries(config)) {
    const key = rawKey.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase());
    if (!known.has(key) || key === 'config') throw new CliError(`config file ${file}: unknown option "${rawKey}"`, EXIT.USAGE);
    const option = command.options.find((o) => o.attributeName() === key);
    if (!option) continue; // for another command
    const source = command.getOptionValueSource(key);
    if (source !== undefined && source !== 'default' && source !== 'implied') continue;
    command.setOptionValueWithSource(key, parseValue(file, rawKey, option, value), 'config');
  }
}

function parseValue(file: string, key: string, option: Option, value: unknown): unknown {
  if (option.negate || option.isBoolean()) {
    if (typeof value !== 'boolean') throw new CliError(`config file ${file}: "${key}" must be true or false`, EXIT.USAGE);
    return value;
  }
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new CliError(`config file ${file}: "${key}" must be a string or a number`, EXIT.USAGE);
  }
  const text = String(value);
  if (option.argChoices && !option.argChoices.includes(text)) {
    throw new CliError(`config file ${file}: "${key}" must be one of ${option.argChoices.join(', ')}`, EXIT.USAGE);
  }
  if (!option.parseArg) return text;
  try {
    return option.parseArg(text, undefined);
  } catch (err) {
    const message = err instanceof InvalidArgumentError ? err.message : String(err);
    throw new CliError(`config file ${file}: "${key}": ${message}`, EXIT.USAGE);
  }
}
