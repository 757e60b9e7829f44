/**
 * How workflow code changes without breaking running crawls (the rule is in
 * the README, "Changing workflow code"). Every change to `workflows/` that
 * lands is a new `workflowVersion`, with recorded histories in
 * test/fixtures/histories/v<version>-*.json that every later version must
 * replay. A change that can make the workflow issue different commands for a
 * history recorded before it goes behind `patched(id)` with an id from
 * `patches`; the old branch stays until no execution that started before the
 * patch can still be running, then `deprecatePatch(id)`, then removal.
 */
export const workflowVersion = 6;

export const patches = {
  /**
   * v1: a batch that fails for good reports what it did (its counts are kept),
   * its host is paused with a growing back-off, and the failure is kept for
   * `tcrawl status`.
   */
  batchFailures: 'v1-batch-failures',
  /**
   * v1: at most `maxTrackedHosts` hosts in the workflow's state (the rest wait
   * in Postgres for a reconcile), and hosts with nothing queued and nothing to
   * remember are dropped at each reconcile — so a link flood over many hosts
   * cannot outgrow a continue-as-new payload.
   */
  boundedHosts: 'v1-bounded-hosts',
  /**
   * v2: the operating surface — search attributes upserted as the crawl
   * progresses (when it was started with them), and a cancel that waits for
   * its cancelled batches, releases their leases and leaves the final
   * figures in the memo. Pause, resume and retry-failed are new updates:
   * histories from before never hold them, so they need no patch.
   */
  operating: 'v2-operating',
  /**
   * v3: windowed batches — one batch (activity `crawlHosts`) carries up to
   * `maxHostsPerBatch` hosts, each paced on its own for up to `windowMs`,
   * leasing what its pages find as it goes; set-rate, pause, cancel and
   * continue-as-new reach batches in flight through the crawl's steering
   * count (activity `markSteered`), and a run continues as new before its
   * history reaches 3 MB.
   */
  hostWindows: 'v3-host-windows',
  /**
   * v4: a window splits the budget its batches in flight have not reserved
   * over the hosts waiting for a grant, not over every host with work (which
   * counted the hosts in flight twice).
   */
  waitingShare: 'v4-waiting-share',
  // v5 added sharded crawls (spec `shards`: workflows/sharded-crawl.ts and crawlShardWorkflow) with no
  // patch: only an input with `shards` > 1 or a `shard` takes the new code, and no earlier history has one.
  /**
   * v6: a re-run (resume after a cancel, retry-failed after the end) starts
   * from the steering count its crawl's earlier executions left in the
   * database, not from 0: from 0, every window it granted was halted within
   * half a second as steered, and the crawl went on in bursts.
   */
  rerunSteeredSeq: 'v6-rerun-steered-seq',
  /**
   * v6: the main loop sleeps until a host comes due only when it could grant
   * one then; draining or with every batch slot taken it waits for a batch
   * to settle (and for progress to publish).
   */
  wakeToGrant: 'v6-wake-to-grant',
} as const;
