// Early refusals (401, 413) answered before a large request body is read must reach the client.
// Closing a socket with unread bytes makes the kernel send a reset, and a client that is still
// writing, or reads only once it has written, then sees EPIPE or ECONNRESET instead of the
// hub's answer. The hub reads and drops the rest of the body for a while after answering.
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN, type TestHub, testHub } from './hub-helpers.ts';

let h: TestHub | undefined;
afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

const BLOB = `/v1/blobs/${'a'.repeat(64)}`;
const BIG = 64 << 20;

/** PUTs BIG bytes with node:http, writing as fast as the socket takes them; what came back. */
function bigPut(url: string, headers: Record<string, string>, chunked: boolean): Promise<string> {
  return new Promise((resolve) => {
    const req = httpRequest(url, {
      method: 'PUT',
      headers: chunked ? headers : { ...headers, 'content-length': String(BIG) },
    });
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const pump = () => {
      while (sent < BIG) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e}`));
    pump();
  });
}

/**
 * A client that writes its request head and 4 MiB of body at once, reads nothing for 300 ms,
 * then reads what the hub sent; everything it read, and any socket error.
 */
function writeThenRead(port: number, head: string, chunked: boolean): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    let errors = '';
    const s = connect(port, '127.0.0.1', () => {
      s.write(head);
      const piece = Buffer.alloc(64 * 1024, 7);
      const framed = chunked
        ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')])
        : piece;
      for (let i = 0; i < 64; i++) s.write(framed);
      s.pause();
      setTimeout(() => s.resume(), 300);
    });
    s.on('data', (d) => (text += d));
    s.on('error', (e) => (errors += ` error ${(e as NodeJS.ErrnoException).code}`));
    s.on('close', () => resolve(`${text}${errors}`));
    setTimeout(() => s.destroy(), 10_000).unref();
  });
}

describe('errors answered before a large body is read', () => {
  it('reach a client that is still writing 64 MiB (node:http and fetch)', async () => {
    h = await testHub({ maxBlobBytes: 1024 });
    const url = `${h.hub.url}${BLOB}`;
    const auth = { authorization: `Bearer ${ADMIN}` };
    for (const chunked of [false, true]) {
      expect(await bigPut(url, {}, chunked)).toMatch(/^401 \{"error":\{"code":"http\/unauthorized"/);
      expect(await bigPut(url, auth, chunked)).toMatch(/^413 \{"error":\{"code":"http\/too-large"/);
    }
    const viaFetch = await fetch(url, { method: 'PUT', body: new Uint8Array(BIG), headers: auth });
    expect(viaFetch.status).toBe(413);
  }, 60_000);

  it('reach a client that reads only after writing 4 MiB (it used to see EPIPE and no answer)', async () => {
    h = await testHub({ maxBlobBytes: 1024 });
    const port = Number(new URL(h.hub.url).port);
    const cases = ['', `authorization: Bearer ${ADMIN}\r\n`].flatMap((auth) =>
      [false, true].map((chunked) => ({
        auth,
        chunked,
        head: `PUT ${BLOB} HTTP/1.1\r\nhost: x\r\n${auth}${chunked ? 'transfer-encoding: chunked' : `content-length: ${BIG}`}\r\n\r\n`,
      })),
    );
    const got = await Promise.all(cases.map((c) => writeThenRead(port, c.head, c.chunked)));
    cases.forEach((c, i) => {
      expect(got[i], `auth=${c.auth !== ''} chunked=${c.chunked}`).toMatch(
        c.auth
          ? /^HTTP\/1\.1 413 .*"code":"http\/too-large"/s
          : /^HTTP\/1\.1 401 .*"code":"http\/unauthorized"/s,
      );
    });
  }, 60_000);
});
