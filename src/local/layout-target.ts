/**
 * The local host's target when no registry is configured: imports land in OCI image layouts
 * under `.hoist/oci/` (git-ignored), one per target repository, each tag a ref name, so the first
 * `npm start` works on a machine with no registry, and skopeo, oras or podman read the result.
 */
import path from 'node:path';
import { TARGET_LAYOUTS_SETTING } from '../jobs/settings.js';

/** Where the layouts go, relative to the project root. */
export const LOCAL_LAYOUTS_DIR = path.join('.hoist', 'oci');

/**
 * With HOIST_TARGET_REGISTRY empty (and no HOIST_TARGET_LAYOUTS of the user's), points
 * HOIST_TARGET_LAYOUTS at `.hoist/oci` under the project root, and returns the start-up notice
 * saying where imports land and how to look at them; undefined when a registry is configured.
 */
export function useLocalLayoutsUnlessRegistry(projectRoot: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.HOIST_TARGET_REGISTRY?.trim()) return undefined;
  if (!env[TARGET_LAYOUTS_SETTING]?.trim()) env[TARGET_LAYOUTS_SETTING] = path.join(projectRoot, LOCAL_LAYOUTS_DIR);
  const dir = path.relative(process.cwd(), env[TARGET_LAYOUTS_SETTING]!.trim()) || '.';
  return [
    `HOIST_TARGET_REGISTRY is empty: imports land in OCI image layouts under ${dir}/, one per repository, the tag as its name.`,
    `  look:     skopeo inspect oci:${dir}/REPO:TAG`,
    `  copy on:  npx hoist copy oci:${dir}/REPO:TAG REGISTRY/REPO:TAG`,
    '  set HOIST_TARGET_REGISTRY (e.g. myregistry.azurecr.io) in local.settings.json to write to a registry instead.',
  ].join('\n');
}
