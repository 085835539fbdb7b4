// Drives the console of a live Tessera server in headless Chromium, as a person would: read a
// text, see its triples in the table and the graph, run a query, expand a node, look at the
// schema, drop the source. Screenshots of each step go to OUT_DIR. Exits non-zero (with what
// failed) if any step fails.
//
//   node browser.mjs http://127.0.0.1:7881 OUT_DIR
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';
import path from 'node:path';

const [base, outDir] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
fs.mkdirSync(outDir, { recursive: true });
const failures = [];
const check = (name, ok, detail = '') => {
  console.log((ok ? 'ok   ' : 'FAIL ') + name + (ok ? '' : ': ' + detail));
  if (!ok) failures.push(name);
};

const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const page = await browser.newPage();
await page.setViewport({ width: 1400, height: 1000 });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
// The malformed query's 400 is expected; any other failed load or script error is not.
page.on('console', (m) => {
  if (m.type() === 'error' && !/status of 400/.test(m.text())) pageErrors.push(m.text());
});
page.on('dialog', (d) => d.accept());
// Nothing may come from anywhere but the server: the console works offline.
const foreign = [];
page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) foreign.push(r.url()); });

const shot = (name) => page.screenshot({ path: path.join(outDir, name + '.png'), fullPage: true });
const text = (sel) => page.$eval(sel, (e) => e.textContent);
const waitText = (sel, pattern, timeout = 30000) =>
  page.waitForFunction((s, p) => {
    const e = document.querySelector(s);
    return e && new RegExp(p).test(e.textContent);
  }, { timeout }, sel, pattern);

async function step(name, f) {
  try {
    await f();
  } catch (e) {
    check(name, false, e.message.split('\n')[0]);
    await shot('failed-' + name.replace(/\W+/g, '-')).catch(() => {});
  }
}

await page.goto(base + '/', { waitUntil: 'networkidle0' });

await step('the console loads with its models', async () => {
  await waitText('#models', 'smollm2', 60000);
  check('the console loads with its models', true);
  const keyword = await page.$$eval('.CodeMirror .cm-keyword', (es) => es.map((e) => e.textContent));
  check('the editor highlights SPARQL', keyword.some((k) => /select/i.test(k)), JSON.stringify(keyword));
  await shot('1-console');
});

let source = '';
await step('read a text', async () => {
  await page.click('#tab-read');
  await page.type('#read-text', 'Marie Curie was born in Warsaw.');
  await page.click('#read-run');
  await page.waitForFunction(() => document.querySelector('#written') || document.querySelector('#read-status.error'), { timeout: 240000 });
  const status = await text('#read-status');
  check('the text is read', !(await page.$('#read-status.error')), status);
  const written = await page.$$eval('#written tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  check('the report lists the written triples with their sentence',
    written.length >= 1 && written.every((r) => r[3] === 'Marie Curie was born in Warsaw.'), JSON.stringify(written));
  source = await page.$eval('#show-triples', (b) => b.dataset.source);
  await shot('2-read-report');
});

await step('see its triples in the table and the graph', async () => {
  await page.click('#show-triples');
  await waitText('#status', 'rows in');
  const rows = await page.$$eval('#results tbody tr', (r) => r.length);
  const written = Number(await text('#written-count'));
  // The source's graph: the written triples and the labels of their entities.
  check('its triples in the table', rows >= written && written >= 1, `${rows} rows, ${written} written`);
  const graph = await page.evaluate(() => ({ nodes: tessera.cy.nodes().length, edges: tessera.cy.edges().length }));
  check('its triples in the graph', graph.edges === written && graph.nodes >= 2, JSON.stringify(graph));
  await shot('3-graph');
});

await step('run a query and expand a node', async () => {
  await page.evaluate(() => tessera.editor.setValue('SELECT ?s ?p ?o WHERE { ?s ?p ?o } ORDER BY ?s ?p ?o'));
  await page.click('#run-query');
  await waitText('#status', 'rows in');
  await page.click('#view-table');
  const rows = await page.$$eval('#results tbody tr', (r) => r.length);
  const status = await text('#status');
  const total = Number(status.match(/^(\d+) rows/)[1]);
  check('the query answers, paged', rows === Math.min(total, 50) && total > 50 ? !(await page.$eval('#pager', (p) => p.hidden)) : rows === total, `${rows} of ${total}`);
  if (total > 50) {
    await page.click('#next');
    check('the next page', (await text('#page')).startsWith('page 2 of'), await text('#page'));
  }
  await shot('4-query-table');
  // Clicking an entity adds it to the graph and expands it.
  await page.evaluate(() => tessera.cy.elements().remove());
  const entity = await page.$$eval('#results .iri', (es) => (es.find((e) => e.dataset.iri.includes('/entity/')) || es[0]).dataset.iri);
  await page.$$eval('#results .iri', (es, iri) => es.find((e) => e.dataset.iri === iri).click(), entity);
  await waitText('#status', 'expanded');
  const edges = await page.evaluate(() => tessera.cy.edges().length);
  check('a clicked IRI is expanded in the graph', edges >= 1, `${edges} edges for ${entity}`);
  await shot('5-expanded');
});

await step('a malformed query says what is wrong', async () => {
  await page.evaluate(() => tessera.editor.setValue('SELECT ?s WHERE { ?s ?p }'));
  await page.click('#run-query');
  await page.waitForSelector('#status.error');
  const status = await text('#status');
  check('a malformed query says what is wrong', /^400: .*syntax/i.test(status), status);
});

await step('the schema view', async () => {
  await page.click('#tab-schema');
  await waitText('#schema-status', 'relations');
  const rows = await page.$$eval('#schema tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  const birthPlace = rows.find((r) => r[1] === 'birthPlace');
  check('the schema view lists the relations with definitions and use', rows.length >= 8 && birthPlace && /born/.test(birthPlace[2]), JSON.stringify(rows.slice(0, 3)));
  await shot('6-schema');
});

await step('drop the source', async () => {
  await page.click('#tab-sources');
  await waitText('#sources-status', 'sources');
  const listed = await page.$$eval('.source', (s) => s.map((e) => e.dataset.source));
  check('the sources view lists the text', listed.length === 1 && listed[0] === source, JSON.stringify(listed));
  await shot('7-sources');
  await page.click(`.drop-source[data-source="${source}"]`);
  await waitText('#sources-status', 'dropped');
  const left = await page.$$eval('.source', (s) => s.length);
  check('the dropped source is gone from the list', left === 0, `${left} left`);
  const response = await fetch(base + '/query?query=' + encodeURIComponent(`ASK { GRAPH <${source}> { ?s ?p ?o } }`), { headers: { accept: 'application/sparql-results+json' } });
  check('its triples are gone from the store', (await response.json()).boolean === false);
  await shot('8-dropped');
});

check('no script errors on the page', pageErrors.length === 0, JSON.stringify(pageErrors));
check('nothing fetched from elsewhere', foreign.length === 0, JSON.stringify(foreign));
await browser.close();
console.log(JSON.stringify({ client: 'console', failed: failures.length, screenshots: outDir }));
process.exit(failures.length ? 1 : 0);
