// Unit tests of the reconnect policy: the delay function and the decision
// taken for each way a socket can end. No server needed.

import test from 'node:test';
import assert from 'node:assert/strict';

import { backoffDelay, planReconnect, CloseCode } from '../herald.js';

const backoff = { initial: 500, max: 30_000, factor: 2, jitter: 1 };

test('backoff cap grows exponentially up to max', () => {
  const top = (attempt) => backoffDelay(attempt, { ...backoff, jitter: 0 });
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 20].map(top),
    [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
});

test('full jitter spreads delays over [0, cap]', () => {
  for (const attempt of [0, 3, 10]) {
    const cap = backoffDelay(attempt, { ...backoff, jitter: 0 });
    const samples = Array.from({ length: 2000 }, () => backoffDelay(attempt, backoff));
    assert.ok(samples.every((d) => d >= 0 && d <= cap), `attempt ${attempt}: delays within [0, ${cap}]`);
    const min = Math.min(...samples);
    const max = Math.max(...samples);
    // 2000 uniform samples: the extremes are within 5% of the ends.
    assert.ok(min < cap * 0.05 && max > cap * 0.95, `attempt ${attempt}: spread ${min}..${max} of ${cap}`);
    assert.ok(new Set(samples).size > 100, 'delays are not all alike');
  }
  // The ends, with a deterministic random source.
  assert.equal(backoffDelay(2, backoff, () => 0), 2000);
  assert.equal(backoffDelay(2, backoff, () => 0.999999), 0);
  assert.equal(backoffDelay(2, { ...backoff, jitter: 0.5 }, () => 0.999999), 1000);
});

test('planReconnect per close code', () => {
  const opts = { backoff, restartDelay: 2000, giveUpAfter: 60_000 };
  const mid = () => 0.5;
  const plan = (end) => planReconnect({ reason: '', opened: true, attempt: 2, failures: 0,
    hasGetToken: true, ...end }, opts, mid);

  const cases = [
    { name: 'network drop backs off', end: { code: CloseCode.ABNORMAL },
      want: { delay: 1000, attempt: 3, failures: 0 } },
    { name: 'restart reconnects soon, spread over restartDelay', end: { code: CloseCode.RESTART },
      want: { delay: 1000, attempt: 0, failures: 0 } },
    { name: 'try again later backs off 8 times longer', end: { code: CloseCode.TRY_AGAIN_LATER },
      want: { delay: 8000, attempt: 3, failures: 0 } },
    { name: 'token expired renews the token at once',
      end: { code: CloseCode.POLICY, reason: 'token expired' },
      want: { delay: 250, attempt: 3, failures: 0, refreshToken: true } },
    { name: 'token expired without getToken gives up',
      end: { code: CloseCode.POLICY, reason: 'token expired', hasGetToken: false },
      want: { stop: 'token expired and no getToken to renew it' } },
    { name: 'other policy close backs off longer',
      end: { code: CloseCode.POLICY, reason: 'too many connections' },
      want: { delay: 8000, attempt: 3, failures: 0, refreshToken: true } },
    { name: 'a first refused handshake counts a failure and renews the token',
      end: { code: CloseCode.ABNORMAL, opened: false, failures: 0 },
      want: { delay: 1000, attempt: 3, failures: 1, refreshToken: true } },
    { name: 'a second refused handshake keeps the token',
      end: { code: CloseCode.ABNORMAL, opened: false, failures: 1 },
      want: { delay: 1000, attempt: 3, failures: 2, refreshToken: false } },
    { name: 'refused handshakes for long, but too few of them: retry',
      end: { code: CloseCode.ABNORMAL, opened: false, failures: 1, failingFor: 90_000 },
      want: { delay: 1000, attempt: 3, failures: 2, refreshToken: false } },
    { name: 'many refused handshakes, but not for long: retry',
      end: { code: CloseCode.ABNORMAL, opened: false, failures: 20, failingFor: 59_000 },
      want: { delay: 1000, attempt: 3, failures: 21, refreshToken: false } },
    { name: 'a run of refused handshakes for giveUpAfter gives up',
      end: { code: CloseCode.ABNORMAL, opened: false, failures: 3, failingFor: 60_000 },
      want: { stop: 'cannot connect: 4 handshakes failed in 60 s' } },
  ];
  for (const c of cases) assert.deepEqual(plan(c.end), c.want, c.name);
});

test('restart delays are spread for a stampede', () => {
  const delays = Array.from({ length: 1000 }, () =>
    planReconnect({ code: CloseCode.RESTART, opened: true, attempt: 0, failures: 0 },
      { restartDelay: 2000 }).delay);
  assert.ok(delays.every((d) => d >= 0 && d <= 2000));
  assert.ok(Math.max(...delays) - Math.min(...delays) > 1800, 'spread over most of the window');
});
