/**
 * Every error tcrawl raises on purpose carries a stable `code` users can match
 * on, and a message that says what to do about it.
 */
export class TcrawlError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad input from the user: CLI options, spec files, seeds. The CLI exits with 2. */
export class InvalidInputError extends TcrawlError {
  constructor(message: string, code = 'TCRAWL_INVALID_INPUT') {
    super(code, message);
  }
}

/** A service tcrawl needs (Temporal, Postgres, the Temporal CLI) is missing or failed to start. */
export class DependencyError extends TcrawlError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
