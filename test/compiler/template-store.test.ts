/**
 * Templates compiled ahead by `npm run build` (dist/templates.precompiled.cjs) save every run the
 * compile; they must never render anything but what the template's text in templates/ says.
 */
import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';
import { describe, expect, it } from 'vitest';
import { packageFile } from '../../src/package-root.js';
import { compilerKey, createEngine, loadTemplates } from '../../src/compiler/template-store.js';
import { sha256 } from '../../src/sha256.js';
import type { BuiltTemplates } from '../../src/compiler/template-store.js';

const COMMIT = readFileSync(packageFile('templates/commit.sql.hbs'), 'utf8');

/** A build whose `commit` template renders `rendered`, recorded as compiled from `source` by `compiler`. */
function buildOf(rendered: string, source: string, compiler = compilerKey([])): BuiltTemplates {
  const spec = new Function(`return ${String(Handlebars.precompile(rendered, { strict: true, noEscape: true }))};`)() as BuiltTemplates['templates'][string]['spec'];
  return { compiler, templates: { commit: { source: sha256(source), spec } } };
}

const renderCommit = (built: BuiltTemplates | undefined): string => {
  const template = loadTemplates(createEngine(), [], built).get('commit');
  if (template === undefined) throw new Error('no commit template');
  return template({});
};

describe('templates compiled ahead by the build', () => {
  it('a template the build compiled from the same text is rendered from the build', () => {
    expect(renderCommit(buildOf('-- compiled ahead', COMMIT))).toBe('-- compiled ahead');
  });

  it('a template edited since the build is compiled from its text in templates/, not taken from the build', () => {
    expect(renderCommit(buildOf('-- compiled ahead', `${COMMIT}-- an older text`))).toBe(COMMIT);
  });

  it('a build by another compiler or with other options is not used', () => {
    expect(renderCommit(buildOf('-- compiled ahead', COMMIT, 'another compiler'))).toBe(COMMIT);
  });

  it('without a build every template is compiled from its text', () => {
    expect(renderCommit(undefined)).toBe(COMMIT);
  });
});
