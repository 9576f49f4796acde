// The type definitions (herald.d.ts) describe what herald.js exports: the
// same names, the same public methods of HeraldClient, the same state
// properties and the same close codes. A rename in one file without the
// other fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as sdk from '../herald.js';

const dts = readFileSync(new URL('../herald.d.ts', import.meta.url), 'utf8');

// classBody returns the text between `export declare class name {` and its
// closing brace at the start of a line.
function classBody(name) {
  const start = dts.indexOf(`export declare class ${name}`);
  assert.ok(start >= 0, `herald.d.ts declares no class ${name}`);
  const open = dts.indexOf('{', start);
  const close = dts.indexOf('\n}', open);
  return dts.slice(open + 1, close);
}

test('every runtime export is declared, and nothing else', () => {
  const declared = [...dts.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual([...declared].sort(), Object.keys(sdk).sort());
});

test('HeraldClient methods match the declaration', () => {
  const body = classBody('HeraldClient');
  const declared = [...body.matchAll(/^ {2}(\w+)(?:<[^(]*>)?\(/gm)].map((m) => m[1]).filter((n) => n !== 'constructor');
  const runtime = Object.getOwnPropertyNames(sdk.HeraldClient.prototype)
    .filter((n) => n !== 'constructor' && !n.startsWith('_'));
  assert.deepEqual([...declared].sort(), [...runtime].sort());
});

test('HeraldClient state properties exist before connecting', () => {
  const body = classBody('HeraldClient');
  const props = [...body.matchAll(/^ {2}readonly (\w+):/gm)].map((m) => m[1]);
  assert.ok(props.length > 0, 'no readonly properties declared');
  // Not connected: the WebSocket class is never used.
  const client = new sdk.HeraldClient({ url: 'ws://127.0.0.1:1/ws', token: 't', WebSocket: class {} });
  for (const p of props) {
    assert.ok(p in client, `HeraldClient has no ${p}`);
  }
  assert.equal(client.unreadCount, 0);
  assert.deepEqual(client.unread, []);
  assert.equal(client.connected, false);
});

test('CloseCode values match the declaration', () => {
  const start = dts.indexOf('export declare const CloseCode');
  const block = dts.slice(start, dts.indexOf('}>', start));
  const declared = Object.fromEntries([...block.matchAll(/(\w+): (\d+);/g)].map((m) => [m[1], Number(m[2])]));
  assert.deepEqual(declared, { ...sdk.CloseCode });
});
