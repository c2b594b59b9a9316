/**
 * The runs of a property test: a fixed seed (the same sequences every time) and a random one,
 * printed so a failure can be replayed; or only `<PREFIX>_SEED` (and `<PREFIX>_RUNS`) when set.
 */
export function seedRuns(prefix: string, fixedSeed: number, numRuns: number): Array<{ seed: number; numRuns: number }> {
  const env = process.env[`${prefix}_SEED`];
  if (env !== undefined) return [{ seed: Number(env), numRuns: Number(process.env[`${prefix}_RUNS`] ?? numRuns) }];
  return [
    { seed: fixedSeed, numRuns },
    { seed: (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0, numRuns },
  ];
}
