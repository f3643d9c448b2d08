/** The code examples of a README section, so tests can run them exactly as written. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './gateway.js';

/** Fenced blocks of `lang` in the README section whose heading is `heading` (up to the next heading of that level). */
export function readmeBlocks(heading: string, lang: string): string[] {
  const text = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const level = heading.match(/^#+/)![0];
  const start = text.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`README has no section "${heading}"`);
  const rest = text.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`\\n${level} `));
  const section = end < 0 ? rest : rest.slice(0, end);
  const blocks: string[] = [];
  const fence = new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g');
  for (let m = fence.exec(section); m; m = fence.exec(section)) blocks.push(m[1]!);
  return blocks;
}
