// Token routes (the admin's): create, list and revoke researcher tokens.
import { createToken, listTokens, revokeToken } from '../hub/tokens.ts';
import { parseCredits } from '../protocol/credit.ts';
import { httpError, notFound, send } from './http.ts';
import { readJson } from './hub-context.ts';
import type { Route } from './routes.ts';

export const TOKEN_ROUTES: readonly Route[] = [
  {
    // A researcher's own budget: what its jobs hold of it (running: planned; closed: granted).
    methods: ['GET', 'HEAD'],
    path: '/v1/budget',
    auth: 'token',
    handle: ({ ctx, req, res, who }) => {
      if (who?.kind !== 'researcher') {
        return send(req, res, 200, { name: null, unlimited: true, used: '0' });
      }
      const budget = ctx.store.getToken(who.name)?.budget;
      const use = ctx.scheduler.budgetUse(who.name, budget);
      send(req, res, 200, {
        name: who.name,
        unlimited: budget === undefined,
        used: use.used.toString(),
        ...(use.budget === undefined ? {} : { budget: use.budget.toString() }),
        ...(use.left === undefined ? {} : { left: use.left.toString() }),
      });
    },
  },
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
      const b =
        typeof body === 'object' && body !== null ? (body as { name?: unknown; budget?: unknown }) : {};
      // A budget in credits, as a decimal string ("1000", "0.5"): money never travels as a float.
      if (b.budget !== undefined && typeof b.budget !== 'string') {
        throw httpError('input/invalid', 'budget: expected credits as a decimal string, e.g. "1000".', {
          details: { path: 'budget' },
        });
      }
      const budget = b.budget === undefined ? undefined : parseCredits(b.budget, 'budget');
      // createToken checks the name and refuses one that is taken.
      send(req, res, 201, createToken(ctx.store, b.name as string, Date.now(), budget));
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
