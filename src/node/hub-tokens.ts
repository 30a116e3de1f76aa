// Token routes (the admin's): create, list and revoke researcher tokens.
import { createToken, listTokens, revokeToken } from '../hub/tokens.ts';
import { notFound, send } from './http.ts';
import { readJson } from './hub-context.ts';
import type { Route } from './routes.ts';

export const TOKEN_ROUTES: readonly Route[] = [
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/tokens',
    auth: 'admin',
    handle: ({ ctx, req, res }) => send(req, res, 200, { tokens: listTokens(ctx.store) }),
  },
  {
    methods: ['POST'],
    path: '/v1/tokens',
    auth: 'admin',
    handle: async ({ ctx, req, res }) => {
      const body = await readJson(ctx, req);
      const name = typeof body === 'object' && body !== null ? (body as { name?: unknown }).name : undefined;
      // createToken checks the name and refuses one that is taken.
      send(req, res, 201, createToken(ctx.store, name as string));
    },
  },
  {
    methods: ['DELETE'],
    path: '/v1/tokens/:name',
    auth: 'admin',
    handle: ({ ctx, req, res, params }) => {
      const name = params.name ?? '';
      if (!revokeToken(ctx.store, name)) throw notFound(`token ${name}`);
      send(req, res, 200, { revoked: name });
    },
  },
];
