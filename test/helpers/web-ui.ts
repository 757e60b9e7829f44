/**
 * The Temporal Web UI (v2.42, as served by `temporal server start-dev`) driven
 * in headless Chromium with playwright-core: what a user sees of a crawl, for
 * the Web UI test and the README's screenshots.
 */
import * as fs from 'node:fs';
import type { ConnectionLike } from '@temporalio/client';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium; TCRAWL_CHROMIUM names another Chromium binary. */
export const chromiumPath = process.env.TCRAWL_CHROMIUM || '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(chromiumPath)) {
    throw new Error(`No Chromium at ${chromiumPath}: install it (Debian: apt-get install chromium) or set TCRAWL_CHROMIUM to a Chromium binary.`);
  }
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
}

/**
 * The Web UI of the suite's Temporal server, as test/run.ts passes it. A
 * missing one is a failure that says how to give it, never a skip.
 */
export function testWebUiUrl(): string {
  const url = process.env.TCRAWL_TEST_WEB_UI;
  if (!url) {
    throw new Error(
      `TCRAWL_TEST_WEB_UI is not set: test/run.ts sets it to the Web UI of the dev server it starts, or of TEMPORAL_ADDRESS=${process.env.TEMPORAL_ADDRESS ?? '(unset)'} when one on that port + 1000 shows the same cluster, and found none. ` +
        'Set TCRAWL_TEST_WEB_UI to that server\'s Web UI (e.g. TCRAWL_TEST_WEB_UI=http://127.0.0.1:8233), or unset TEMPORAL_ADDRESS so that `npm test` runs its own dev server and UI.',
    );
  }
  return url.replace(/\/+$/, '');
}

/** The cluster id the Web UI at `url` shows, or undefined when no Temporal Web UI answers there. */
export async function webUiClusterId(url: string, timeoutMs = 3_000): Promise<string | undefined> {
  try {
    const response = await fetch(`${url}/api/v1/cluster-info`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) return undefined;
    const { clusterId } = (await response.json()) as { clusterId?: unknown };
    return typeof clusterId === 'string' ? clusterId : undefined;
  } catch {
    return undefined;
  }
}

/** Fails, naming both, unless the Web UI at `url` shows the cluster `connection` talks to. */
export async function assertWebUiOf(url: string, connection: Pick<ConnectionLike, 'workflowService'>): Promise<void> {
  const [uiCluster, { clusterId }] = await Promise.all([webUiClusterId(url), connection.workflowService.getClusterInfo({})]);
  if (uiCluster === undefined) throw new Error(`No Temporal Web UI answers at ${url} (GET ${url}/api/v1/cluster-info). Start it, or point TCRAWL_TEST_WEB_UI at the Web UI of TEMPORAL_ADDRESS's server.`);
  if (uiCluster !== clusterId) throw new Error(`The Web UI at ${url} shows cluster ${uiCluster}, but TEMPORAL_ADDRESS is cluster ${clusterId}: point TCRAWL_TEST_WEB_UI at that server's Web UI.`);
}

/**
 * What went wrong in the page: uncaught exceptions and console errors. The
 * UI's warnings are not collected: v2.42 warns "Could not parse payload" on
 * a workflow's page whatever the workflow, for empty values of its own (it
 * JSON-parses '' and undefined), not for a payload of ours.
 */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console.error: ${message.text()}`);
  });
  return errors;
}

/** One browser tab on the Web UI, in a namespace. Every wait has a timeout and says what it waited for. */
export class TemporalWebUi {
  constructor(
    readonly page: Page,
    readonly baseUrl: string,
    readonly namespace = 'default',
    private readonly timeoutMs = 15_000,
  ) {}

  /** The workflow list filtered by a visibility query, as a link or bookmark gives it: `?query=…`. */
  async openList(query: string): Promise<void> {
    await this.page.goto(`${this.baseUrl}/namespaces/${this.namespace}/workflows?query=${encodeURIComponent(query)}`);
    await this.waitForListLoaded();
  }

  /** Types `query` into the list's filter box (the raw query, behind the `</>` toggle) and runs it. */
  async typeQuery(query: string): Promise<void> {
    const input = this.page.getByTestId('manual-search-input');
    if (!(await input.isVisible())) await this.page.getByTestId('toggle-manual-query').click();
    await input.fill(query);
    await input.press('Enter');
    await this.page.waitForURL((url) => url.searchParams.get('query') === query, { timeout: this.timeoutMs });
    await this.waitForListLoaded();
  }

  private async waitForListLoaded(): Promise<void> {
    await this.page
      .locator('table tbody tr')
      .first()
      .or(this.page.getByText('No Results'))
      .first()
      .waitFor({ timeout: this.timeoutMs });
  }

  /** Workflow ids in the list as shown now (from the rows' links). */
  async listedWorkflowIds(): Promise<string[]> {
    const prefix = `/namespaces/${this.namespace}/workflows/`;
    const hrefs = await this.page.locator('table tbody tr a[href]').evaluateAll((links) => links.map((a) => a.getAttribute('href') ?? ''));
    const ids = hrefs.filter((href) => href.startsWith(prefix)).map((href) => decodeURIComponent(href.slice(prefix.length).split('/')[0]));
    return [...new Set(ids)].sort();
  }

  /** Waits until the list shows exactly these workflows (the table may still show the previous query's rows for a moment). */
  async waitForListed(expected: string[]): Promise<void> {
    const want = [...expected].sort();
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = await this.listedWorkflowIds();
      if (JSON.stringify(seen) === JSON.stringify(want)) return;
      if (Date.now() > deadline) throw new Error(`The list (${this.page.url()}) shows ${JSON.stringify(seen)}, expected exactly ${JSON.stringify(want)}`);
      await this.page.waitForTimeout(200);
    }
  }

  /**
   * The table configuration drawer (the gear under the list): adds columns
   * (a search attribute's name, e.g. TcrawlSaved) and removes others. The
   * UI keeps the choice per namespace in the browser's localStorage.
   */
  async configureColumns({ add = [], remove = [] }: { add?: string[]; remove?: string[] }): Promise<void> {
    await this.page.getByTestId('workflows-summary-table-configuration-button').click();
    for (const column of remove) await this.page.getByRole('button', { name: `Remove ${column} column`, exact: true }).click({ timeout: this.timeoutMs });
    for (const column of add) await this.page.getByRole('button', { name: `Add ${column} column`, exact: true }).click({ timeout: this.timeoutMs });
    await this.page.getByRole('button', { name: 'Close Workflows Table configuration' }).click();
    await this.page.getByText('Configure Workflows Table').waitFor({ state: 'hidden', timeout: this.timeoutMs });
    for (const column of add) await this.page.locator('table thead th', { hasText: column }).first().waitFor({ timeout: this.timeoutMs });
  }

  /** The cells of one workflow's row, by column heading. */
  async row(workflowId: string): Promise<Record<string, string>> {
    const headings = await this.page.locator('table thead th').allInnerTexts();
    const row = this.page.locator('table tbody tr').filter({ has: this.page.getByRole('link', { name: workflowId, exact: true }) });
    const cells = await row.first().locator('td').allInnerTexts();
    if (cells.length !== headings.length) throw new Error(`Row of ${workflowId} has ${cells.length} cells under ${headings.length} headings: ${JSON.stringify(cells)}`);
    return Object.fromEntries(headings.map((heading, i) => [heading.trim(), cells[i].trim()]));
  }

  /** Opens a workflow from the list (its id's link). */
  async openFromList(workflowId: string): Promise<void> {
    await this.page.getByRole('link', { name: workflowId, exact: true }).first().click();
    await this.page.waitForURL(`**/workflows/${encodeURIComponent(workflowId)}/**`, { timeout: this.timeoutMs });
  }

  /** A tab of the workflow's page: "User Metadata", "Search Attributes", "History"… */
  async openTab(name: string): Promise<void> {
    await this.page.getByRole('tab', { name, exact: false }).first().click();
    await this.page.getByRole('tab', { name, selected: true }).first().waitFor({ timeout: this.timeoutMs });
  }

  /**
   * The rendered markdown of a pane of the User Metadata tab ("Summary",
   * "Details", "Current Details"), once it contains `expected`. The UI
   * renders each in an iframe; current details come from a query the UI
   * sends when the page loads, which a running worker answers.
   */
  async markdownPane(title: string, expected: string | RegExp): Promise<string> {
    const frame = this.page.frameLocator(`xpath=//h3[normalize-space()="${title}"]/ancestor::div[.//iframe][1]//iframe`);
    const body = frame.locator('body');
    try {
      await body.filter({ hasText: expected }).waitFor({ timeout: this.timeoutMs });
    } catch (error) {
      const shown = await body.innerText({ timeout: 1_000 }).catch(() => '(nothing rendered)');
      throw new Error(`The "${title}" pane shows ${JSON.stringify(shown)}, expected it to contain ${String(expected)}`, { cause: error });
    }
    return body.innerText();
  }

  /** The workflow's custom search attributes as its Search Attributes tab shows them (name → text of the value). */
  async shownSearchAttributes(): Promise<Record<string, string>> {
    const block = this.page.locator('main').getByText('"indexedFields"').first();
    await block.waitFor({ timeout: this.timeoutMs });
    const text = await this.page.locator('main').innerText();
    return Object.fromEntries([...text.matchAll(/"(\w+)":\s*("?)([^"\n,]*)\2,?$/gm)].map(([, key, , value]) => [key, value]));
  }
}
