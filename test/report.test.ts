import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { fmtTick, lineChart, niceStep } from '../src/report/charts.js';
import {
  fmtNumber,
  type GrayMap,
  type LabelMap,
  type ReportRun,
  type RgbMap,
  renderReport,
} from '../src/report/html.js';
import { classColor, heatMapTile, labelMapTile } from '../src/report/images.js';

const CHROMIUM = '/usr/bin/chromium';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
// the file key of the photo folder, by the documented rule: folder-<name>-<6 hex of sha256(root)>
const PHOTOS = `folder-photos-${createHash('sha256').update('/data/photos').digest('hex').slice(0, 6)}`;
const dir = mkdtempSync(join(tmpdir(), 'locus-report-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Deterministic pseudo-random numbers for synthetic data.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const CLASS_NAMES = [
  'background',
  'T-shirt',
  'trouser',
  'pullover',
  'dress',
  'coat',
  'sandal',
  'shirt',
  'sneaker',
  'bag',
  'boot',
];

function picture(seed: number): NonNullable<ReportRun['pictures']>['images'][number] {
  const r = rng(seed);
  const S = 32;
  const G = 8;
  const input: RgbMap = { width: S, height: S, data: new Float32Array(S * S * 3) };
  const gt: LabelMap = { width: S, height: S, data: new Uint8Array(S * S), classes: CLASS_NAMES.length };
  const cx = 8 + r() * 16;
  const cy = 8 + r() * 16;
  const cls = 1 + Math.floor(r() * 10);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const inside = Math.hypot(x - cx, y - cy) < 9;
      const i = y * S + x;
      input.data.set(inside ? [0.9, 0.6 + 0.3 * r(), 0.2] : [0.15 + 0.1 * r(), 0.2, 0.35], i * 3);
      gt.data[i] = inside ? cls : 0;
      if (x === 0 && y < 4) gt.data[i] = 255; // an "ignore" strip
    }
  }
  const pred: LabelMap = { ...gt, data: gt.data.map((v, i) => (i % 97 === 0 ? 3 : v)) };
  const attention: GrayMap[] = [0, 1, 2].map((h) => {
    const d = new Float32Array(G * G);
    for (let y = 0; y < G; y++)
      for (let x = 0; x < G; x++) d[y * G + x] = Math.exp(-Math.hypot(x * 4 - cx + h * 3, y * 4 - cy) / 6) * 0.02;
    return { width: G, height: G, data: d };
  });
  const pca: RgbMap = {
    width: G,
    height: G,
    data: new Float32Array(G * G * 3).map((_, i) => (i % 3 === 0 ? i / 3 / (G * G) : r())),
  };
  return { input, attention, pca, segPred: pred, segGt: gt };
}

function syntheticRun(name: string, method: string, seed: number): ReportRun {
  const r = rng(seed);
  const metrics = Array.from({ length: 50 }, (_, i) => {
    const step = i * 20;
    const t = i / 49;
    const row: Record<string, number> = {
      step,
      loss: 9 * Math.exp(-3 * t) + 1.5 + 0.2 * r(),
      loss_dino: 8 * Math.exp(-3 * t) + 1 + 0.2 * r(),
      lr: i < 10 ? (5e-4 * i) / 10 : 5e-4 * 0.5 * (1 + Math.cos((Math.PI * (i - 10)) / 39)),
      wd: 0.04 + (0.4 - 0.04) * 0.5 * (1 - Math.cos(Math.PI * t)),
      momentum: 1 - (1 - 0.996) * 0.5 * (1 + Math.cos(Math.PI * t)),
      teacher_entropy: 5.5 - 2 * t + 0.1 * r(),
      images_per_s: 180 + 20 * r(),
    };
    if (method === 'loca') {
      row.loss_loc = 4 * Math.exp(-2 * t) + 0.5 * r();
      row.pos_acc = 0.1 + 0.7 * (1 - Math.exp(-4 * t));
    }
    return row;
  });
  const up = method === 'loca' ? 0.05 : 0;
  const fm = {
    train: { kind: 'fashion-mnist', split: 'train', length: 2000 },
    test: { kind: 'fashion-mnist', split: 'test', length: 1000 },
    n_test: 1000,
  };
  const photos = {
    train: { kind: 'folder', root: '/data/photos' },
    test: { kind: 'folder', root: '/data/photos' },
    n_test: 80,
  };
  const scenes = {
    train: { kind: 'scenes', split: 'train', length: 800 },
    test: { kind: 'scenes', split: 'eval', length: 200 },
    n_test: 200,
  };
  const random = { checkpoint: { path: null, hash: 'random-0-abc', method: 'random', step: null }, seed: 0 };
  const trained = {
    checkpoint: { path: `/runs/${name}/checkpoints/step-000100.safetensors`, hash: 'ab12cd', method, step: 100 },
  };
  const seg = (miou: number, trainMiou: number) => ({
    kind: 'seg',
    data: scenes,
    miou,
    pixel_acc: 0.83 + up / 2,
    train_miou: trainMiou,
    per_class_iou: CLASS_NAMES.map((_, c) => 0.3 + 0.05 * c * (method === 'loca' ? 1 : 0.5)),
    class_names: CLASS_NAMES,
  });
  return {
    name,
    method,
    config: { method, seed, model: { dim: 192, depth: 6, heads: 3, patch: 4 }, optim: { lr: 5e-4, epochs: 100 } },
    metrics,
    provenance: { locus: '0.1.0', commit: COMMIT, torch: '1.13.0', device: 'cpu' },
    evals: {
      // k-NN on two datasets: Fashion-MNIST (loca better) and a photo folder (dino better, and far higher)
      'knn@fashion-mnist': {
        kind: 'knn',
        ...trained,
        data: fm,
        top1: 0.712 + up,
        top5: 0.95,
        k: 20,
        T: 0.07,
        top1_ci: [0.68 + up, 0.74 + up],
      },
      'knn_random_init@fashion-mnist': {
        kind: 'knn',
        ...random,
        data: fm,
        top1: 0.45,
        top5: 0.8,
        top1_ci: [0.42, 0.48],
      },
      [`knn@${PHOTOS}`]: {
        kind: 'knn',
        ...trained,
        data: photos,
        top1: method === 'loca' ? 0.8 : 0.86,
        top5: 1,
      },
      // the worse run has the higher train-set numbers: they must never be bolded
      'linear@fashion-mnist': {
        kind: 'linear',
        ...trained,
        data: fm,
        top1: 0.781 + up / 2,
        sweep: {
          train_top1: method === 'loca' ? 0.9534 : 0.9912,
          best: { val_top1: method === 'loca' ? 0.7 : 0.7712 },
        },
      },
      'seg@scenes': {
        ...seg(0.41 + up, method === 'loca' ? 0.5012 : 0.9021),
        ...trained,
        miou_ci: { lo: 0.39 + up, hi: 0.43 + up },
      },
      'seg_random_init@scenes': { ...seg(0.2, 0.3), ...random },
      'parts@parts': {
        kind: 'parts',
        ...trained,
        data: { test: { kind: 'parts', split: 'eval', length: 100 } },
        part_miou: 0.25 + up,
        part: { top1: 0.52 + up, map: 0.33 + up },
        object: { top1: 0.8, map: 0.6 },
        gap: { seg_miou: -0.28 + up },
      },
      location: { kind: 'location', ...trained, data: scenes, acc: 0.3 + 3 * up }, // an older run's file name
    },
    pictures: { images: [picture(seed * 10 + 1), picture(seed * 10 + 2)] },
  };
}

const RUNS = [syntheticRun('dino-seed0', 'dino', 1), syntheticRun('loca-seed0', 'loca', 2)];
const METRIC_KEYS = new Set(RUNS.flatMap((r) => r.metrics.flatMap((m) => Object.keys(m))).filter((k) => k !== 'step'));

describe('report building blocks', () => {
  test('nice ticks and labels', () => {
    assert.equal(niceStep(1, 5), 0.2);
    assert.equal(niceStep(980, 6), 200);
    assert.equal(niceStep(5e-4, 5), 1e-4);
    assert.equal(fmtTick(0.0004, 1e-4), '4e-4');
    assert.equal(fmtTick(0.4, 0.2), '0.4');
    assert.equal(fmtTick(12000, 2000), '12k');
    assert.equal(fmtTick(600, 200), '600');
    assert.equal(fmtNumber(0.71234), '0.7123');
  });

  test('line chart breaks on non-finite values and says "no data" when empty', () => {
    const svg = lineChart({
      series: [
        {
          name: 'a<b',
          color: '#000',
          points: [
            [0, 1],
            [1, Number.NaN],
            [2, 3],
            [3, 2],
          ],
        },
      ],
    });
    const d = /<path d="([^"]+)" fill="none" stroke="#000"/.exec(svg)?.[1] ?? '';
    assert.equal(d.match(/M/g)?.length, 2, 'two segments');
    assert.doesNotMatch(d, /NaN|Infinity/);
    assert.match(svg, /a&lt;b/);
    assert.match(lineChart({ series: [] }), /no data/);
  });

  test('heat and label tiles are upscaled nearest-neighbour PNGs', async () => {
    const heat = await heatMapTile({ width: 2, height: 2, data: Float32Array.from([0, 1, 2, 3]) }, 96);
    assert.equal(heat.width, 96);
    const png = Buffer.from(heat.src.split(',')[1] as string, 'base64');
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [96, 96]);
    const px = (x: number, y: number) => [
      ...data.subarray((y * 96 + x) * info.channels, (y * 96 + x) * info.channels + 3),
    ];
    assert.deepEqual(px(0, 0), px(47, 47), 'one source pixel fills a 48x48 block');
    assert.deepEqual(px(0, 0), [0, 0, 4], 'minimum maps to the dark end');
    assert.deepEqual(px(95, 95), [252, 255, 164], 'maximum maps to the bright end');
    const lab = await labelMapTile({ width: 1, height: 2, data: Uint8Array.from([2, 255]), classes: 3 }, 4);
    const raw = await sharp(Buffer.from(lab.src.split(',')[1] as string, 'base64'))
      .raw()
      .toBuffer();
    assert.deepEqual([...raw.subarray(0, 3)], [0x3c, 0xb4, 0x4b]);
    assert.equal(classColor(2), '#3cb44b');
    await assert.rejects(heatMapTile({ width: 3, height: 3, data: new Float32Array(4) }), /needs 9 values, got 4/);
  });

  test('escapes text and renders runs with missing pieces', async () => {
    const html = await renderReport([
      { name: '<script>alert(1)</script>', method: 'dino & co', config: {}, metrics: [], evals: {} },
      {
        name: 'partial',
        method: 'scrl',
        config: { a: 1n },
        metrics: [{ step: 0, loss: 1 }],
        evals: { knn: { top1: 0.5 } },
      },
    ]);
    assert.doesNotMatch(html, /<script/i);
    assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
    assert.match(html, /dino &amp; co/);
    assert.match(html, /No pictures for this run/);
    assert.match(await renderReport([]), /No runs/);
  });
});

describe('report in headless Chromium', () => {
  const skip = !existsSync(CHROMIUM) && `${CHROMIUM} is absent (Debian's chromium; scripts/setup.sh installs it)`;
  test('renders charts, images and tables with no errors and no network', { skip, timeout: 120_000 }, async () => {
    const html = await renderReport(RUNS, {
      title: 'Locus test report',
      generatedAt: new Date('2025-01-02T03:04:05Z'),
    });
    assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/i, 'no scripts, no remote URLs');
    const file = join(dir, 'report.html');
    writeFileSync(file, html);

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('request', (r) => requests.push(r.url()));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });

      const charts = await page.$$eval('svg.chart', (svgs) =>
        svgs.map((svg) => {
          const lines = [...svg.querySelectorAll('g.series path, g.series polyline')] as SVGGraphicsElement[];
          return lines.map((p) => {
            const coords =
              (p.getAttribute('d') ?? p.getAttribute('points') ?? '').match(/-?\d+(\.\d+)?|NaN|Infinity/g) ?? [];
            const box = p.getBBox();
            return { coords, w: box.width, h: box.height };
          });
        }),
      );
      assert.equal(charts.length, METRIC_KEYS.size, `one chart per metric (${[...METRIC_KEYS].join(', ')})`);
      for (const [i, lines] of charts.entries()) {
        assert.ok(lines.length >= 1, `chart ${i} has a line`);
        for (const l of lines) {
          assert.ok(l.coords.length >= 4, `chart ${i}: a line with at least two points`);
          assert.ok(
            l.coords.every((c) => Number.isFinite(Number(c))),
            `chart ${i}: finite coordinates`,
          );
          assert.ok(l.w > 0, `chart ${i}: the line spans some width`);
        }
      }
      const lossLines = await page.$$eval('svg.chart', (svgs) => svgs[0]?.querySelectorAll('g.series').length);
      assert.equal(lossLines, 2, 'the loss chart overlays both runs');

      const imgs = await page.$$eval('img', (els) =>
        (els as HTMLImageElement[]).map((i) => ({
          ok: i.complete,
          w: i.naturalWidth,
          h: i.naturalHeight,
          data: i.src.startsWith('data:image/png'),
        })),
      );
      assert.equal(imgs.length, 2 * 2 * (1 + 3 + 1 + 2), 'input, 3 heads, PCA, prediction, ground truth per picture');
      for (const im of imgs)
        assert.ok(im.ok && im.w > 0 && im.h > 0 && im.data, `image decoded: ${JSON.stringify(im)}`);

      // ---- the summary table: one row per (probe, dataset, backbone)
      const heads = await page.$$eval('table.summary thead th', (ths) => ths.map((t) => t.textContent ?? ''));
      assert.ok(
        heads.some((h) => /dataset/.test(h)),
        `a dataset column: ${heads.join(' | ')}`,
      );
      assert.equal(await page.$eval('table.summary', (t) => t.closest('details') === null), true, 'summary shown');
      const rows = await page.$$eval('table.summary tbody tr', (trs) =>
        trs.map((tr) => {
          const td = tr.querySelector('td.num') as HTMLElement;
          return {
            probe: tr.getAttribute('data-probe'),
            dataset: tr.getAttribute('data-dataset'),
            run: tr.getAttribute('data-run'),
            baseline: tr.getAttribute('data-baseline') === 'true',
            value: Number(td.getAttribute('title')),
            bold: Number(getComputedStyle(td).fontWeight) >= 700,
            text: tr.textContent ?? '',
          };
        }),
      );
      const total = RUNS.reduce((a, r) => a + Object.keys(r.evals).length, 0);
      assert.equal(rows.length, total, 'one row per eval record');
      // random init directly below its own run, same probe and dataset
      const baselines = rows.map((r, i) => [r, i] as const).filter(([r]) => r.baseline);
      assert.equal(baselines.length, 4);
      for (const [b, i] of baselines) {
        const above = rows[i - 1];
        assert.ok(
          above && !above.baseline && above.run === b.run && above.probe === b.probe && above.dataset === b.dataset,
          `random init row ${i} (${b.run} ${b.probe}) sits below its run: ${JSON.stringify(above)}`,
        );
      }
      // both datasets of k-NN present, each with its own dataset cell
      const photosKey = PHOTOS;
      assert.deepEqual(
        new Set(rows.filter((r) => r.probe === 'knn').map((r) => r.dataset)),
        new Set(['fashion-mnist', photosKey]),
      );
      const dsCells = await page.$$eval('table.summary td.dataset', (tds) => tds.map((t) => t.textContent ?? ''));
      assert.ok(
        dsCells.some((t) => t.startsWith('fashion-mnist')) && dsCells.some((t) => t.startsWith('folder photos')),
      );
      // bold: the best of one probe on one dataset, computed here from the records; never across datasets
      const HEAD: Record<string, string> = {
        knn: 'top1',
        linear: 'top1',
        seg: 'miou',
        parts: 'part_miou',
        location: 'acc',
      };
      const groups = new Map<string, typeof rows>();
      for (const r of rows)
        groups.set(`${r.probe}|${r.dataset}`, [...(groups.get(`${r.probe}|${r.dataset}`) ?? []), r]);
      for (const [g, rs] of groups) {
        const probe = g.split('|')[0] as string;
        const vals = RUNS.flatMap((run) =>
          Object.entries(run.evals)
            .filter(
              ([stem, rec]) =>
                rec.kind === probe &&
                (stem.split('@')[1] ?? 'scenes') === g.split('|')[1] &&
                rs.some((r) => r.run === run.name && r.baseline === stem.includes('_random_init')),
            )
            .map(([, rec]) => rec[HEAD[probe] as string] as number),
        );
        const distinct = new Set(vals).size > 1;
        const best = Math.max(...vals);
        for (const r of rs)
          assert.equal(
            r.bold,
            distinct && Math.abs(r.value - best) < 1e-12,
            `${g} ${r.run}${r.baseline ? ' random' : ''} ${r.value}`,
          );
      }
      const knnFm = rows.find(
        (r) => r.probe === 'knn' && r.dataset === 'fashion-mnist' && r.run === 'loca-seed0' && !r.baseline,
      );
      const knnPhotosLoca = rows.find((r) => r.dataset === photosKey && r.run === 'loca-seed0');
      assert.ok(
        knnFm?.bold && !knnPhotosLoca?.bold,
        '76% on Fashion-MNIST bolded, 80% on photos (beaten there by 86%) not',
      );
      // intervals as recorded ([lo, hi] and {lo, hi}), a dash where absent; the gap to the random init
      const row = (probe: string, run: string, baseline = false) =>
        rows.find((r) => r.probe === probe && r.run === run && r.baseline === baseline && r.dataset !== photosKey)
          ?.text ?? '';
      assert.match(row('knn', 'dino-seed0'), /\[0\.6800, 0\.7400\]/);
      assert.match(row('knn', 'dino-seed0'), /\+0\.2620/, 'Δ = 0.712 − 0.45');
      assert.match(row('knn', 'loca-seed0'), /\+0\.3120/, 'Δ = 0.762 − 0.45');
      assert.match(row('seg', 'loca-seed0'), /\[0\.4400, 0\.4800\]/);
      assert.match(row('linear', 'dino-seed0'), /–/);

      // ---- no train/validation number is bolded anywhere (the worse run has the higher ones)
      const trainVals = [0.9912, 0.9534, 0.7712, 0.9021, 0.5012];
      const trainCells = await page.$$eval(
        'td[title]',
        (tds, vals) =>
          (tds as HTMLElement[])
            .filter((t) => vals.includes(Number(t.getAttribute('title'))))
            .map((t) => Number(getComputedStyle(t).fontWeight)),
        trainVals,
      );
      assert.ok(trainCells.length >= trainVals.length, `train/val numbers shown (${trainCells.length})`);
      assert.ok(
        trainCells.every((w) => w < 700),
        `no train/val number bolded: ${trainCells}`,
      );

      // ---- full per-probe tables, collapsed
      const details = await page.$$eval('details.probe', (ds) =>
        (ds as HTMLDetailsElement[]).map((d) => ({ open: d.open, tables: d.querySelectorAll('table.evals').length })),
      );
      assert.equal(details.length, 5, 'one collapsible block per probe');
      assert.ok(details.every((d) => !d.open && d.tables === 1));
      const knnTable = await page.$eval('table.evals[data-probe="knn"]', (t) => t.textContent ?? '');
      for (const v of ['dino-seed0', 'loca-seed0', 'random init', '0.7620', '0.8600', 'folder photos'])
        assert.ok(knnTable.includes(v), `k-NN table shows ${v}`);
      const linBold = await page.$$eval('table.evals[data-probe="linear"] td.best', (tds) =>
        tds.map((t) => t.getAttribute('title')),
      );
      assert.deepEqual(linBold.map(Number), [0.781 + 0.025], 'the better linear top-1 (test) is bolded, nothing else');
      const perClass = await page.$eval('table.perclass', (t) => t.textContent ?? '');
      assert.ok(perClass.includes('trouser') && perClass.includes('loca-seed0'));
      assert.ok((await page.textContent('body'))?.includes('resolved config'));
      const runsTable = await page.$eval('table.runs', (t) => t.textContent ?? '');
      assert.ok(
        runsTable.includes(COMMIT.slice(0, 10)) && runsTable.includes('1.13.0'),
        'provenance in the runs table',
      );

      assert.deepEqual(errors, [], 'no console or page errors');
      const external = requests.filter((u) => !u.startsWith('data:') && !u.startsWith('file:'));
      assert.deepEqual(external, [], 'no network requests');

      const shot = join(dir, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      copyFileSync(shot, '/tmp/locus-report.png');
      const meta = await sharp(shot).metadata();
      assert.ok((meta.width ?? 0) >= 1000 && (meta.height ?? 0) > 1500, 'a full-page screenshot');
    } finally {
      await browser.close();
    }
  });
});
