// What `hearth status` prints beside its bar (issue 10): why a job failed, which shards failed and
// why, and what a job waits for — a researcher used to see "0% · 0 failed · running" forever.
import { describe, expect, it } from 'vitest';
import { detailLines, progressLine } from '../../src/node/cli-client.ts';

const base = {
  job: 'job-1',
  status: 'running' as const,
  shards: 4,
  validated: 1,
  failed: 0,
  inFlight: 1,
  done: 2,
  progress: 0.25,
};

describe('hearth status lines', () => {
  it('a bar and the counts', () => {
    expect(progressLine(base)).toBe(
      'job-1 [#######.......................]  25% 1/4 validated · 2 done awaiting agreement · 1 in flight · 0 failed · running',
    );
    expect(detailLines(base)).toEqual([]);
  });

  it('the job’s error first, then each other failed shard, then what it waits for', () => {
    const error = {
      code: 'wgsl/compile',
      message: 'WGSL error in shader "shard job-1/0" at line 3, column 9: expected )',
    };
    const lines = detailLines({
      ...base,
      status: 'failed',
      failed: 3,
      error,
      failures: [
        { shard: 'job-1/0', index: 0, ...error },
        { shard: 'job-1/2', index: 2, message: 'its replicas never agreed within maxReplicas (5).' },
      ],
      waiting: '1 shard has a result and waits for another volunteer',
    });
    expect(lines).toEqual([
      `job failed: wgsl/compile: ${error.message}`,
      'shard 2 failed: its replicas never agreed within maxReplicas (5).',
      '(1 more failed shards)',
      'waiting: 1 shard has a result and waits for another volunteer',
    ]);
  });
});
