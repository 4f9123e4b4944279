// Loads every scenario under tests/scenarios (Node).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SCENARIOS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../tests/scenarios');

export function loadScenarios() {
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
