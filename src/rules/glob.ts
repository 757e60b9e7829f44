/**
 * A URL glob as a regex: `**` is any run of characters, `*` any run without
 * `/`. Everything else is literal, `?` included — it starts every query
 * string, so a glob over URLs cannot use it as a wildcard.
 */
export function globToRegExp(glob: string): RegExp {
  const pattern = glob
    .split('**')
    .map((part) => part.split('*').map(escapeRegex).join('[^/]*'))
    .join('.*');
  return new RegExp(`^${pattern}$`);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
