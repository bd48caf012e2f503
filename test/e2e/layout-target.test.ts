/**
 * The first run (issue 12): `npm start` with the committed sample settings, whose
 * HOIST_TARGET_REGISTRY is empty, writes imports into OCI image layouts under `.hoist/oci/`,
 * says so at start, and skopeo reads the result byte for byte. Only the storage connection is
 * changed, to a private Azurite, so the test does not take the machine's ports 10000-10002.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { pushImage, pushOciIndexThreePlatforms } from '../helpers/fixtures.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { SKOPEO_BINARY } from '../helpers/skopeo.js';
import { PROJECT_ROOT, startTestAzurite, type TestAzurite } from '../local/support.js';
import { buildApp, type AppProcesses, type HostProcess } from './app-process.js';

const run = promisify(execFile);
/** Unique per run: the layouts live in the project's own .hoist/oci/, as for a user. */
const REPOSITORY = `e2e-layout-${randomBytes(4).toString('hex')}`;
const LAYOUTS = path.join(PROJECT_ROOT, '.hoist', 'oci');

let azurite: TestAzurite;
let source: TestRegistry;
let app: AppProcesses;
let host: HostProcess;

beforeAll(async () => {
  if (existsSync(path.join(PROJECT_ROOT, 'local.settings.json'))) throw new Error('local.settings.json exists: this test runs npm start with the committed sample settings');
  [azurite, source, app] = await Promise.all([startTestAzurite(), startRegistry(), buildApp('e2e-layout')]);
  host = await app.startHost({ AzureWebJobsStorage: azurite.connectionString });
});
afterAll(async () => {
  await app?.stop();
  await Promise.all([azurite?.stop(), source?.stop(), rm(path.join(LAYOUTS, REPOSITORY), { recursive: true, force: true })]);
});

async function skopeoRaw(reference: string): Promise<Buffer> {
  return (await run(SKOPEO_BINARY, ['inspect', '--raw', reference], { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 })).stdout;
}

describe('npm start without a target registry', () => {
  it('says at start where imports land and how to look at them', () => {
    expect(host.output()).toContain('HOIST_TARGET_REGISTRY is empty: imports land in OCI image layouts under .hoist/oci/, one per repository, the tag as its name.');
    expect(host.output()).toContain('skopeo inspect oci:.hoist/oci/REPO:TAG');
    expect(host.output()).toContain('set HOIST_TARGET_REGISTRY (e.g. myregistry.azurecr.io) in local.settings.json to write to a registry instead.');
  });

  it('imports into .hoist/oci/REPO, readable by skopeo byte for byte, and lists the layout target', async () => {
    const index = await pushOciIndexThreePlatforms(source, `${REPOSITORY}/app`, 'v1');
    const accepted = await host.api.post({ source: `${source.host}/${REPOSITORY}/app:v1` });
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
    const layout = `oci:${path.join(LAYOUTS, REPOSITORY, 'app')}:v1`;
    expect(accepted.body.targets).toEqual([{ reference: layout, tagged: true }]);
    const done = await host.api.waitForStatus(accepted.body.id, 'succeeded', { logs: host.output });
    expect(done.targets).toEqual([expect.objectContaining({ reference: layout, digest: index.digest, written: true })]);
    expect((await skopeoRaw(`oci:.hoist/oci/${REPOSITORY}/app:v1`)).equals(index.manifestBytes)).toBe(true);
    // Every platform's manifest, config and layers are there.
    for (const child of index.children) for (const blob of [child, ...child.blobs]) expect(existsSync(path.join(LAYOUTS, REPOSITORY, 'app', 'blobs', 'sha256', blob.digest.slice(7)))).toBe(true);
    const listed = await host.api.list();
    expect(listed.status).toBe(200);
    expect(listed.body.value.find((j: { id: string }) => j.id === accepted.body.id)?.targets).toEqual(done.targets);
  });

  it('treats a layout tag as a registry tag: the same digest is a no-op, another one TAG_EXISTS without force', async () => {
    await pushImage(source, `${REPOSITORY}/tags`, 'v1', { layers: [500] });
    const other = await pushImage(source, `${REPOSITORY}/tags`, 'v2', { layers: [600] });
    const first = await host.api.post({ source: `${source.host}/${REPOSITORY}/tags:v1`, images: [`${REPOSITORY}/tags:stable`] });
    await host.api.waitForStatus(first.body.id, 'succeeded', { logs: host.output });

    const same = await host.api.post({ source: `${source.host}/${REPOSITORY}/tags:v1`, images: [`${REPOSITORY}/tags:stable`] });
    expect(same.status).toBe(202);
    expect((await host.api.waitForStatus(same.body.id, 'succeeded', { logs: host.output })).targets).toEqual([expect.objectContaining({ written: false })]);

    const conflict = await host.api.post({ source: `${source.host}/${REPOSITORY}/tags:v2`, images: [`${REPOSITORY}/tags:stable`] });
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ error: { code: 'TAG_EXISTS' } });

    const forced = await host.api.post({ source: `${source.host}/${REPOSITORY}/tags:v2`, images: [`${REPOSITORY}/tags:stable`], force: true });
    await host.api.waitForStatus(forced.body.id, 'succeeded', { logs: host.output });
    expect((await skopeoRaw(`oci:.hoist/oci/${REPOSITORY}/tags:stable`)).equals(other.manifestBytes)).toBe(true);
  });
});
