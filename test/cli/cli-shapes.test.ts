/**
 * `hoist copy` on real-world image shapes, as users run it (the built CLI in a child process):
 * a Windows image whose foreign layer stays referenced by URL or, with
 * --allow-nondistributable-artifacts, is copied from its URL; and a target that refuses URLs.
 */
import { FixtureClient, rawRequest, seededBytes } from '../helpers/fixtures.js';
import { ALLOW_URLS, pushWindowsImage, startLayerHost, type LayerHost } from '../helpers/image-shapes.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { skopeoInspectRaw } from '../helpers/skopeo.js';
import { manifestStatus, requireBuild, runHoist, tempHome, type TempHome } from './support.js';

const LTSC2019 = '10.0.17763.5329';

let source: TestRegistry;
let target: TestRegistry;
let refusing: TestRegistry;
let host: LayerHost;
let home: TempHome;

beforeAll(async () => {
  requireBuild();
  [source, target, refusing, host, home] = await Promise.all([startRegistry({ extraConfig: ALLOW_URLS }), startRegistry({ extraConfig: ALLOW_URLS }), startRegistry(), startLayerHost(), tempHome()]);
  host.serve('base', seededBytes('cli-base', 6000));
});
afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop(), refusing?.stop(), host?.close(), home?.cleanup()]);
});

describe('hoist copy of a Windows image with a foreign layer', () => {
  it('lists the layer as external in the dry run and the copy, and copies it on request', async () => {
    const image = await pushWindowsImage(new FixtureClient(source), 'win/cli', 'ltsc2019', { urls: [`${host.url}/layers/base`], foreign: seededBytes('cli-base', 6000), osVersion: LTSC2019 });
    const src = `${source.host}/win/cli:ltsc2019`;

    const dry = await runHoist(['copy', src, `${target.host}/win/cli:ltsc2019`, '--dry-run'], home);
    expect(dry.code, dry.all).toBe(0);
    expect(dry.stdout).toContain(`  external ${image.foreignDigest} 5.9 KiB non-distributable, referenced by URL, not copied (${host.url}/layers/base)`);

    const copied = await runHoist(['copy', src, `${target.host}/win/cli:ltsc2019`], home);
    expect(copied.code, copied.all).toBe(0);
    expect(copied.stderr).toMatch(/^plan: 1 manifests, 2 blobs \(0 already there, 1 external\)/m);
    expect(copied.stderr).toContain(`blob ${image.foreignDigest.slice(7, 19)} 5.9 KiB external: non-distributable, left referenced by URL`);
    expect((await skopeoInspectRaw(`${target.host}/win/cli:ltsc2019`)).equals(image.bytes)).toBe(true);
    expect((await rawRequest(`${target.url}/v2/win/cli/blobs/${image.foreignDigest}`, { method: 'HEAD' })).status).toBe(404);

    const opted = await runHoist(['copy', src, `${target.host}/win/with-base:ltsc2019`, '--allow-nondistributable-artifacts'], home);
    expect(opted.code, opted.all).toBe(0);
    expect((await rawRequest(`${target.url}/v2/win/with-base/blobs/${image.foreignDigest}`, { method: 'HEAD' })).status).toBe(200);
    expect((await skopeoInspectRaw(`${target.host}/win/with-base:ltsc2019`)).equals(image.bytes)).toBe(true);
  });

  it('fails with a message naming the flag when the target refuses foreign URLs', async () => {
    await pushWindowsImage(new FixtureClient(source), 'win/refused', 'ltsc2019', { urls: [`${host.url}/layers/base`], foreign: seededBytes('cli-base', 6000), osVersion: LTSC2019 });
    const run = await runHoist(['copy', `${source.host}/win/refused:ltsc2019`, `${refusing.host}/win/refused:ltsc2019`], home);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^hoist: the target refused manifest .* non-distributable layer\(s\) by URL .*--allow-nondistributable-artifacts/m);
    expect(await manifestStatus(refusing, 'win/refused', 'ltsc2019')).toBe(404);
  });

  it('prints a layer URL with an escape sequence in it cleaned, never raw', async () => {
    // distribution refuses a URL with an ASCII control character (ESC) in it, but takes the
    // one-character CSI (U+009B), which terminals read as ESC [ does.
    const url = `${host.url}/layers/\u009b31mred`;
    await pushWindowsImage(new FixtureClient(source), 'win/escape', 'ltsc2019', { urls: [url], foreign: seededBytes('cli-escape', 3000), osVersion: LTSC2019 });
    const src = `${source.host}/win/escape:ltsc2019`;
    const dry = await runHoist(['copy', src, `${target.host}/win/escape:ltsc2019`, '--dry-run'], home);
    expect(dry.code, dry.all).toBe(0);
    expect(dry.stdout).toContain(`referenced by URL, not copied (${host.url}/layers/ 31mred)`);
    const opted = await runHoist(['copy', src, `${target.host}/win/escape:ltsc2019`, '--allow-nondistributable-artifacts'], home);
    expect(opted.code).toBe(1);
    expect(opted.stderr).toMatch(/no URL of blob .* served it/);
    expect(dry.all + opted.all).not.toContain('\u001b');
    expect(dry.all + opted.all).not.toContain('\u009b');
  });
});
