import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressKind, isPrivateAddress } from '../../src/private-address';

const cases: Array<[string, string | null]> = [
  // IPv4
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.1.2.3', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', null],
  ['172.15.255.255', null],
  ['192.168.1.1', 'private'],
  ['169.254.169.254', 'link-local'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['100.64.0.1', 'carrier-grade NAT'],
  ['100.127.255.255', 'carrier-grade NAT'],
  ['100.128.0.1', null],
  ['224.0.0.251', 'multicast'],
  ['255.255.255.255', 'broadcast'],
  ['240.0.0.1', 'reserved'],
  ['192.0.2.10', 'documentation'],
  ['198.18.0.1', 'benchmarking'],
  ['8.8.8.8', null],
  ['93.184.216.34', null],
  // IPv6
  ['::1', 'loopback'],
  ['::', 'unspecified'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['fe80::1', 'link-local'],
  ['febf::1', 'link-local'],
  ['fc00::1', 'unique-local'],
  ['fd12:3456::1', 'unique-local'],
  ['ff02::1', 'multicast'],
  ['2001:db8::1', 'documentation'],
  ['2606:4700:4700::1111', null],
  ['2001:4860:4860::8888', null],
];

for (const [ip, kind] of cases) {
  test(`addressKind(${ip}) is ${kind}`, () => {
    assert.equal(addressKind(ip), kind);
    assert.equal(isPrivateAddress(ip), kind !== null);
  });
}

test('IPv4-mapped IPv6 is judged by the embedded IPv4, in dotted or hex form', () => {
  assert.equal(addressKind('::ffff:127.0.0.1'), 'loopback');
  assert.equal(addressKind('::ffff:7f00:1'), 'loopback'); // how new URL() spells [::ffff:127.0.0.1]
  assert.equal(addressKind('0:0:0:0:0:FFFF:a9fe:a9fe'), 'link-local');
  assert.equal(addressKind('::ffff:10.0.0.1'), 'private');
  assert.equal(addressKind('::ffff:8.8.8.8'), null);
  assert.equal(addressKind('::ffff:0808:0808'), null);
});

test('IPv4-mapped IPv6 in every spelling getaddrinfo or a URL can produce', () => {
  assert.equal(addressKind('0:0:0:0:0:ffff:127.0.0.1'), 'loopback');
  assert.equal(addressKind('::FFFF:7F00:0001'), 'loopback');
  assert.equal(addressKind('::ffff:0.0.0.0'), 'unspecified');
  assert.equal(addressKind('::ffff:169.254.169.254'), 'link-local');
  assert.equal(addressKind('::ffff:c0a8:101'), 'private'); // 192.168.1.1
});

test('NAT64 addresses are judged by the embedded IPv4', () => {
  assert.equal(addressKind('64:ff9b::10.0.0.1'), 'private');
  assert.equal(addressKind('64:ff9b::7f00:1'), 'loopback');
  assert.equal(addressKind('64:ff9b::8.8.8.8'), null);
});

test('deprecated IPv4-compatible addresses are reserved', () => {
  assert.equal(addressKind('::127.0.0.1'), 'reserved');
});

test('URL-style brackets and zone ids are accepted', () => {
  assert.equal(addressKind('[::1]'), 'loopback');
  assert.equal(addressKind('[::ffff:7f00:1]'), 'loopback');
  assert.equal(addressKind('fe80::1%eth0'), 'link-local');
});

test('a hostname is a caller bug, not a public address', () => {
  assert.throws(() => isPrivateAddress('localhost'), TypeError);
  // Numeric IPv4 forms are URL syntax, not addresses: the URL parser turns them into 127.0.0.1 first.
  assert.throws(() => isPrivateAddress('2130706433'), TypeError);
  assert.throws(() => isPrivateAddress('0x7f.1'), TypeError);
  assert.throws(() => isPrivateAddress('example.com'), TypeError);
  assert.throws(() => isPrivateAddress(''), TypeError);
});
