// Loads every scenario under tests/scenarios (Node).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SCENARIOS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../tests/scenarios');

/** Scenario areas the npm package cannot play yet, with the reason (none now). */
export const NOT_YET = Object.freeze({});

/** Whether the package plays scenario `rel` (see NOT_YET). */
export const playable = (rel) => !Object.keys(NOT_YET).some((prefix) => rel.startsWith(prefix));

/** Every scenario the package plays (all but the NOT_YET areas). */
export function loadScenarios() {
  return loadAllScenarios().filter((s) => playable(s.rel));
}

/** Every scenario, NOT_YET areas included. */
export function loadAllScenarios() {
  const out = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.json')) out.push(p);
    }
  };
  walk(SCENARIOS_DIR);
  out.sort();
  return out.map((p) => ({
    rel: path.relative(SCENARIOS_DIR, p).replace(/\\/g, '/').replace(/\.json$/, ''),
    scenario: JSON.parse(fs.readFileSync(p, 'utf8')),
  }));
}
