import 'reflect-metadata';
import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { parseSetCookie } from 'cookie';
import type { Response } from 'supertest';

/** Records what Nest logs, so tests can assert warnings. */
export class RecordingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string; context?: string }> = [];
  log(message: unknown, context?: string) {
    this.lines.push({ level: 'log', message: String(message), context });
  }
  warn(message: unknown, context?: string) {
    this.lines.push({ level: 'warn', message: String(message), context });
  }
  error(message: unknown, ...rest: unknown[]) {
    this.lines.push({ level: 'error', message: String(message), context: String(rest.at(-1)) });
  }
  debug(message: unknown, context?: string) {
    this.lines.push({ level: 'debug', message: String(message), context });
  }
  verbose() {}
  messages(level: string): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.message);
  }
}

/** The HTTP platforms every e2e suite runs on. */
export const PLATFORMS = ['express', 'fastify'] as const;
export type Platform = (typeof PLATFORMS)[number];

/**
 * Builds and initialises a Nest application on the given platform's real
 * adapter; supertest binds its HTTP server to a free loopback port.
 */
export async function createApp(
  metadata: ModuleMetadata,
  logger: LoggerService | false = false,
  platform: Platform = 'express',
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  if (platform === 'express') {
    const app = moduleRef.createNestApplication({ logger });
    await app.init();
    return app;
  }
  const { FastifyAdapter } = await import('@nestjs/platform-fastify');
  const app = moduleRef.createNestApplication(new FastifyAdapter(), { logger });
  await app.init();
  await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  return app;
}

/** The Set-Cookie headers of a response (an empty list when none). */
export function setCookies(response: Response): string[] {
  const header = response.headers['set-cookie'] as unknown as string[] | string | undefined;
  return header === undefined ? [] : Array.isArray(header) ? header : [header];
}

/** The one Set-Cookie header for `name`, parsed; fails the test when there are several. */
export function sessionCookie(response: Response, name = 'session') {
  const headers = setCookies(response).filter((h) => h.startsWith(`${name}=`));
  if (headers.length > 1) throw new Error(`${headers.length} Set-Cookie headers for ${name}`);
  return headers.length ? { header: headers[0], ...parseSetCookie(headers[0]) } : undefined;
}

/** `name=value`, ready for a Cookie request header. */
export function cookiePair(response: Response, name = 'session'): string {
  const cookie = sessionCookie(response, name);
  if (!cookie) throw new Error(`No ${name} cookie was set`);
  return `${name}=${cookie.value}`;
}
