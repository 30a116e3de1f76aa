// Volunteer routes: what a volunteer has earned, for the volunteer page, the widget and the CLI.
import { type CreditReport, creditReport } from '../protocol/credit.ts';
import { notFound, send } from './http.ts';
import type { Ctx } from './hub-context.ts';
import type { Route } from './routes.ts';

/**
 * A volunteer's credit, amounts in base units as decimal strings (protocol/credit.ts): JSON numbers
 * are doubles, and money is an integer. A volunteer the hub has never credited nor judged is a 404.
 */
function creditsOf(ctx: Ctx, volunteer: string): CreditReport {
  const c = ctx.scheduler.credits(volunteer);
  const pendingResults = ctx.scheduler.pendingResults(volunteer);
  if (ctx.store.getVolunteer(volunteer) === undefined && ctx.store.ledger(volunteer).length === 0) {
    throw notFound(`volunteer ${volunteer.slice(0, 100)}`);
  }
  return creditReport(volunteer, { ...c, pendingResults });
}

export const VOLUNTEER_ROUTES: readonly Route[] = [
  {
    methods: ['GET', 'HEAD'],
    path: '/v1/volunteers/:id/credits',
    auth: 'token',
    handle: ({ ctx, req, res, params }) => send(req, res, 200, creditsOf(ctx, params.id ?? '')),
  },
];
