/** Reading back what `tcrawl output` wrote: a mirror's files, a tar.gz's entries. */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';

/** Every file below `dir` by its path relative to `dir`: its contents and inode (hard links share one). */
export async function filesBelow(dir: string): Promise<Map<string, { body: Buffer; ino: number }>> {
  const found = new Map<string, { body: Buffer; ino: number }>();
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    found.set(path.relative(dir, file), { body: await fs.readFile(file), ino: (await fs.stat(file)).ino });
  }
  return found;
}

export interface TarEntry {
  name: string;
  /** `file`, `link` (a hard link to `linkname`), … */
  type: string;
  linkname: string | null;
  body: Buffer;
}

/** The entries of a .tar.gz, in archive order. */
export async function tarGzEntries(file: string): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const extractor = tarExtract();
  extractor.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    stream.on('end', () => {
      entries.push({ name: header.name, type: header.type ?? 'file', linkname: header.linkname ?? null, body: Buffer.concat(chunks) });
      next();
    });
  });
  await pipeline(Readable.from(await fs.readFile(file)), createGunzip(), extractor);
  return entries;
}
