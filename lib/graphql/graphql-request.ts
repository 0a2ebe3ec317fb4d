/**
 * The HTTP request of a GraphQL operation, from its context: `@nestjs/apollo`
 * and `@nestjs/mercurius` both put it in `context.req` (Express's `req`, or
 * Fastify's request); Mercurius also gives `context.reply`.
 */
export function graphqlRequest(context: unknown): object | undefined {
  const candidate = context as { req?: object; reply?: { request?: object } } | null | undefined;
  return candidate?.req ?? candidate?.reply?.request;
}
