// whatwg-encoding ships no types and @types/whatwg-encoding is not a
// dependency: this declares the one function src/decode.ts calls.
declare module 'whatwg-encoding' {
  /**
   * Decodes `bytes` as `encodingName` (a WHATWG encoding name such as
   * `windows-1252`), unless a byte order mark names another encoding
   * (Encoding §6, "decode"). Malformed sequences become U+FFFD.
   * @throws RangeError if the name is not one this package can decode.
   */
  export function decode(bytes: Uint8Array, encodingName: string): string;
}
