import { BlockList, isIP } from 'node:net';

/**
 * Special-purpose addresses a crawler must not be tricked into fetching
 * (a public page linking to http://169.254.169.254/ or a host that resolves
 * to 127.0.0.1), unless the user passes `allowPrivate`. Ranges are from the
 * IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890).
 */

/** Why an address is not a public unicast one, in words fit for an error message. */
export type AddressKind =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'carrier-grade NAT'
  | 'link-local'
  | 'unique-local'
  | 'site-local'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'benchmarking'
  | 'reserved';

type Range = [network: string, prefix: number, kind: AddressKind];

// First match wins, so narrower ranges come before the ranges holding them.
const IPV4_RANGES: Range[] = [
  ['0.0.0.0', 8, 'unspecified'], // "this network"
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'], // RFC 6598
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'], // includes cloud metadata, 169.254.169.254
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'], // IETF protocol assignments
  ['192.0.2.0', 24, 'documentation'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['255.255.255.255', 32, 'broadcast'],
  ['240.0.0.0', 4, 'reserved'],
];

const IPV6_RANGES: Range[] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::', 96, 'reserved'], // deprecated IPv4-compatible addresses, RFC 4291 §2.5.5.1
  ['64:ff9b:1::', 48, 'private'], // local-use NAT64, RFC 8215
  ['100::', 64, 'reserved'], // discard-only, RFC 6666
  ['2001:db8::', 32, 'documentation'],
  ['fc00::', 7, 'unique-local'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'], // deprecated, but still routed privately where used
  ['ff00::', 8, 'multicast'],
];

/**
 * IPv6 prefixes (first six 16-bit groups) whose last 32 bits are an IPv4
 * address the packet ends up at: such an address is judged by that IPv4.
 */
const IPV4_EMBEDDING_PREFIXES = [
  [0, 0, 0, 0, 0, 0xffff], // IPv4-mapped ::ffff:0:0/96, RFC 4291 §2.5.5.2
  [0x64, 0xff9b, 0, 0, 0, 0], // NAT64 well-known prefix 64:ff9b::/96, RFC 6052
];

const ipv4Lists = IPV4_RANGES.map((range) => toBlockList(range, 'ipv4'));
const ipv6Lists = IPV6_RANGES.map((range) => toBlockList(range, 'ipv6'));

/**
 * What kind of special-purpose address `ip` is, or null for a public unicast
 * address. Accepts IPv4, IPv6, bracketed IPv6 (`[::1]`, as in URL hostnames)
 * and IPv6 with a zone (`fe80::1%eth0`).
 * @throws TypeError if `ip` is not an IP address (a hostname was passed by mistake).
 */
export function addressKind(ip: string): AddressKind | null {
  const address = ip.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const family = isIP(address);
  if (family === 4) return kindIn(ipv4Lists, address, 'ipv4');
  if (family === 6) {
    const embedded = embeddedIpv4(address);
    return embedded === null ? kindIn(ipv6Lists, address, 'ipv6') : kindIn(ipv4Lists, embedded, 'ipv4');
  }
  throw new TypeError(`"${ip}" is not an IP address`);
}

/** True for loopback, private, link-local, unspecified, multicast and other non-public addresses. */
export function isPrivateAddress(ip: string): boolean {
  return addressKind(ip) !== null;
}

function toBlockList([network, prefix, kind]: Range, family: 'ipv4' | 'ipv6') {
  const list = new BlockList();
  list.addSubnet(network, prefix, family);
  return { list, kind };
}

function kindIn(lists: Array<{ list: BlockList; kind: AddressKind }>, address: string, family: 'ipv4' | 'ipv6') {
  return lists.find(({ list }) => list.check(address, family))?.kind ?? null;
}

function embeddedIpv4(ipv6: string): string | null {
  const groups = ipv6Groups(ipv6);
  const embeds = IPV4_EMBEDDING_PREFIXES.some((prefix) => prefix.every((group, i) => groups[i] === group));
  if (!embeds) return null;
  const high = groups[6] ?? 0;
  const low = groups[7] ?? 0;
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail converted). */
function ipv6Groups(ipv6: string): number[] {
  const text = ipv6.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a, b, c, d) =>
    [(Number(a) << 8) | Number(b), (Number(c) << 8) | Number(d)].map((n) => n.toString(16)).join(':'),
  );
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((group) => parseInt(group, 16));
}
