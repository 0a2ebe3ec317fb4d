/**
 * Sessions in GraphQL resolvers (`@nestjs/graphql`, code-first schema built in
 * memory): Apollo on Express, Apollo on Fastify and Mercurius on Fastify, with
 * signed cookies and with a server-side store (the filesystem one, whose open
 * and save are asynchronous). Whatever number of resolvers ran, an HTTP
 * request opens its session once and saves it once, and the cookie is on the
 * HTTP response.
 */
import {
  ForbiddenException,
  Injectable,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Args, Context, Field, GqlExecutionContext, GraphQLModule, Int, Mutation, ObjectType, Query, ResolveField, Resolver } from '@nestjs/graphql';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import {
  Session,
  SessionModule,
  UseSession,
  getSession,
  type SessionMixin,
} from '../../lib/index.js';
import { cookiePair, createApp, sessionCookie, setCookies, type Platform } from '../support/apps.js';
import { CountingCookieInterface, CountingFileSystemInterface, type Counting } from '../support/counting-interfaces.js';

/** Where a guard leaves the session it saw, on the operation's GraphQL context. */
const SEEN = Symbol('session seen by the guard');

@Injectable()
class LoggedInGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await getSession(context);
    GqlExecutionContext.create(context).getContext()[SEEN] = session;
    if (!session.has('user')) throw new ForbiddenException('log in first');
    return true;
  }
}

/** Writes the session in a guard of a resolver that never declares `@Session()`. */
@Injectable()
class StampGuard implements CanActivate {
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await getSession(context);
    session.set('stamps', ((session.get('stamps') as number) ?? 0) + 1);
    return true;
  }
}

@ObjectType()
class Profile {
  @Field(() => String, { nullable: true })
  name!: string | null;
}

@Resolver(() => Profile)
class AccountResolver {
  @Query(() => String, { nullable: true })
  user(@Session('user') user?: string): string | null {
    return user ?? null;
  }

  @Query(() => String)
  everything(@Session() session: SessionMixin): string {
    return JSON.stringify(session.toJSON());
  }

  /** Counts its own calls in the session: several in one query share one session. */
  @Query(() => Int)
  visit(@Session() session: SessionMixin): number {
    const visits = ((session.get('visits') as number) ?? 0) + 1;
    session.set('visits', visits);
    return visits;
  }

  @Query(() => Profile)
  profile(): Profile {
    return { name: null };
  }

  /** A field resolver that reads the session: one more resolver of the same request. */
  @ResolveField(() => String, { nullable: true })
  name(@Session('user') user?: string): string | null {
    return user ?? null;
  }

  @Query(() => String)
  @UseGuards(LoggedInGuard)
  secret(@Session() session: SessionMixin, @Context() context: Record<symbol, unknown>): string {
    return `${session.get('user')}:${context[SEEN] === session ? 'same session' : 'another session'}`;
  }

  @Query(() => Int)
  @UseSession()
  @UseGuards(StampGuard)
  stamped(): number {
    return 1;
  }

  @Query(() => String)
  plain(): string {
    return 'plain';
  }

  @Mutation(() => Boolean)
  login(@Args('name') name: string, @Session() session: SessionMixin): boolean {
    session.set('user', name);
    return true;
  }

  @Mutation(() => Int)
  bump(@Session() session: SessionMixin): number {
    const bumps = ((session.get('bumps') as number) ?? 0) + 1;
    session.set('bumps', bumps);
    return bumps;
  }

  @Mutation(() => Boolean)
  logout(@Session() session: SessionMixin): boolean {
    session.clear();
    return true;
  }

  /** Writes, then fails: the write is kept, as Flask saves the session of a handled error. */
  @Mutation(() => Boolean)
  failAfterWriting(@Session() session: SessionMixin): boolean {
    session.set('beforeFailure', true);
    throw new ForbiddenException('refused after writing');
  }
}


const SERVERS = [
  { name: 'Apollo on Express', platform: 'express' as Platform, driver: 'apollo' },
  { name: 'Apollo on Fastify', platform: 'fastify' as Platform, driver: 'apollo' },
  { name: 'Mercurius on Fastify', platform: 'fastify' as Platform, driver: 'mercurius' },
] as const;

const INTERFACES = ['signed cookies', 'filesystem store'] as const;

function graphqlModule(driver: 'apollo' | 'mercurius') {
  // autoSchemaFile: true builds the code-first schema in memory; nothing is written to disk.
  return driver === 'apollo'
    ? GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true, allowBatchedHttpRequests: true })
    : GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, autoSchemaFile: true, allowBatchedQueries: true });
}

let cacheRoot: string;
beforeAll(() => {
  cacheRoot = mkdtempSync(join(tmpdir(), 'nest-session-graphql-'));
});
afterAll(() => rmSync(cacheRoot, { recursive: true, force: true }));

describe.each(SERVERS)('$name', ({ platform, driver }) => {
  describe.each(INTERFACES)('with %s', (kind) => {
    let app: INestApplication;
    let sessions: Counting;
    let server: ReturnType<INestApplication['getHttpServer']>;
    let cacheDir: string;

    beforeEach(async () => {
      cacheDir = mkdtempSync(join(cacheRoot, 'sessions-'));
      sessions = kind === 'signed cookies' ? new CountingCookieInterface() : new CountingFileSystemInterface({ cacheDir });
      app = await createApp(
        {
          imports: [SessionModule.forRoot({ interface: sessions, secretKey: 'graphql secret' }), graphqlModule(driver)],
          providers: [AccountResolver],
        },
        false,
        platform,
      );
      server = app.getHttpServer();
    });
    afterEach(() => app.close());

    /** One GraphQL operation over HTTP POST, as any client sends it. */
    function graphql(query: string, cookie?: string) {
      const post = request(server).post('/graphql').set('Content-Type', 'application/json');
      if (cookie) post.set('Cookie', cookie);
      return post.send({ query });
    }

    /** Opens and saves made while `run` ran. */
    async function counted<T>(run: () => Promise<T>): Promise<{ result: T; opens: number; saves: number }> {
      const before = { opens: sessions.opens, saves: sessions.saves };
      const result = await run();
      return { result, opens: sessions.opens - before.opens, saves: sessions.saves - before.saves };
    }

    async function login(name = 'alice'): Promise<string> {
      const response = await graphql(`mutation { login(name: "${name}") }`).expect(200);
      expect(response.body).toEqual({ data: { login: true } });
      return cookiePair(response);
    }

    /** The session's data as the server sees it, without the `_permanent` flag server-side sessions carry. */
    async function everything(cookie: string) {
      const response = await graphql('{ everything }', cookie).expect(200);
      const { _permanent, ...data } = JSON.parse(response.body.data.everything);
      expect(_permanent).toBe(kind === 'signed cookies' ? undefined : true);
      return data;
    }

    test('a mutation writes through @Session(): the cookie is on the HTTP response and the next query reads it', async () => {
      const { result: response, opens, saves } = await counted(() => graphql('mutation { login(name: "alice") }').expect(200));
      expect({ opens, saves }).toEqual({ opens: 1, saves: 1 });
      const cookie = sessionCookie(response);
      expect(cookie?.httpOnly).toBe(true);
      expect(cookie?.path).toBe('/');
      expect(response.headers.vary).toMatch(/Cookie/);
      const read = await graphql('{ user }', cookiePair(response)).expect(200);
      expect(read.body).toEqual({ data: { user: 'alice' } });
    });

    test('several resolvers in one query (aliases and a field resolver) share one session: one open, one save', async () => {
      const cookie = await login();
      const { result: response, opens, saves } = await counted(() =>
        graphql('{ a: visit b: visit c: visit user profile { name } }', cookie).expect(200),
      );
      expect({ opens, saves }).toEqual({ opens: 1, saves: 1 });
      expect(response.body.errors).toBeUndefined();
      const { a, b, c, user, profile } = response.body.data;
      expect([a, b, c].sort()).toEqual([1, 2, 3]);
      expect(user).toBe('alice');
      expect(profile).toEqual({ name: 'alice' });
      expect(await everything(cookiePair(response))).toEqual({ user: 'alice', visits: 3 });
    });

    test('@Session() in a field resolver, which Nest runs without interceptors, opens the session itself', async () => {
      const cookie = await login();
      const { result: response, opens, saves } = await counted(() => graphql('{ profile { name } }', cookie).expect(200));
      expect(response.body).toEqual({ data: { profile: { name: 'alice' } } });
      expect(opens).toBe(1);
      // Read, not written: only the signed cookie of a permanent session would be refreshed.
      expect(saves).toBe(1);
      expect(response.headers.vary).toMatch(/Cookie/);
    });

    test('mutations run one after another on the same session: one open, one save', async () => {
      const { result: response, opens, saves } = await counted(() =>
        graphql('mutation { login(name: "bob") first: bump second: bump }').expect(200),
      );
      expect(response.body).toEqual({ data: { login: true, first: 1, second: 2 } });
      expect({ opens, saves }).toEqual({ opens: 1, saves: 1 });
      expect(await everything(cookiePair(response))).toEqual({ user: 'bob', bumps: 2 });
    });

    test('a batch of operations in one HTTP request: one open, one save', async () => {
      const cookie = await login();
      const { result: response, opens, saves } = await counted(() =>
        request(server)
          .post('/graphql')
          .set('Content-Type', 'application/json')
          .set('Cookie', cookie)
          .send([{ query: 'mutation { bump }' }, { query: '{ visit }' }])
          .expect(200),
      );
      expect(response.body).toEqual([{ data: { bump: 1 } }, { data: { visit: 1 } }]);
      expect({ opens, saves }).toEqual({ opens: 1, saves: 1 });
      expect(await everything(cookiePair(response))).toEqual({ user: 'alice', bumps: 1, visits: 1 });
    });

    test('a guard with getSession(context) shares the resolver’s session, and refuses without a user', async () => {
      const refused = await graphql('{ secret }').expect(200);
      expect(refused.body.data).toBeNull();
      expect(refused.body.errors[0].message).toBe('log in first');
      expect(setCookies(refused)).toEqual([]);

      const cookie = await login();
      const { result: response, opens } = await counted(() => graphql('{ secret }', cookie).expect(200));
      expect(response.body).toEqual({ data: { secret: 'alice:same session' } });
      expect(opens).toBe(1);
    });

    test('@UseSession(): a guard that writes on a resolver without @Session() has its write saved once', async () => {
      const { result: response, opens, saves } = await counted(() => graphql('{ stamped }').expect(200));
      expect(response.body).toEqual({ data: { stamped: 1 } });
      expect({ opens, saves }).toEqual({ opens: 1, saves: 1 });
      const again = await graphql('{ stamped }', cookiePair(response)).expect(200);
      expect(await everything(cookiePair(again))).toEqual({ stamps: 2 });
    });

    test('a resolver that writes and then throws keeps its write (Flask saves on handled errors)', async () => {
      const response = await graphql('mutation { failAfterWriting }').expect(200);
      expect(response.body.errors[0].message).toBe('refused after writing');
      expect(await everything(cookiePair(response))).toEqual({ beforeFailure: true });
    });

    test('logging out clears the session and deletes the cookie', async () => {
      const cookie = await login();
      const response = await graphql('mutation { logout }', cookie).expect(200);
      const deleted = sessionCookie(response);
      expect(deleted?.value).toBe('');
      expect(deleted?.expires?.getTime()).toBe(0);
      expect(await everything(cookie)).toEqual(kind === 'signed cookies' ? { user: 'alice' } : {}); // a signed cookie cannot be revoked
    });

    test('a query that never uses the session opens nothing and sets no cookie', async () => {
      const cookie = await login();
      const { result: response, opens, saves } = await counted(() => graphql('{ plain }', cookie).expect(200));
      expect(response.body).toEqual({ data: { plain: 'plain' } });
      expect({ opens, saves }).toEqual({ opens: 0, saves: 0 });
      expect(setCookies(response)).toEqual([]);
      expect(response.headers.vary ?? '').not.toMatch(/Cookie/);
    });

    if (kind === 'filesystem store') {
      test('the store holds one record per session, written by the HTTP request that ran the resolvers', async () => {
        // Session files only: a write's lock link (<name>.lock) may outlive its answer by a moment.
        const sessionFiles = () => readdirSync(cacheDir).filter((f) => /^[0-9a-f]{64}$/.test(f));
        expect(sessionFiles()).toEqual([]);
        const cookie = await login();
        expect(sessionFiles()).toHaveLength(1);
        await graphql('mutation { a: bump b: bump }', cookie).expect(200);
        expect(sessionFiles()).toHaveLength(1);
        // The cookie holds only the sid; the data comes from the store.
        expect(cookie).toMatch(/^session=[A-Za-z0-9_-]{43}$/);
        expect(await everything(cookie)).toEqual({ user: 'alice', bumps: 2 });
      });
    }
  });
});
