/** The sample app, driven the way its README tells a newcomer to try it. */
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppModule } from '../src/app.module.js';

let app: INestApplication;
let agent: ReturnType<typeof request.agent>;

async function startSample() {
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  agent = request.agent(app.getHttpServer());
}
beforeEach(startSample);
afterEach(() => app.close());

test('the counter counts per client', async () => {
  await agent.post('/counter').expect(201, { count: 1 });
  await agent.post('/counter').expect(201, { count: 2 });
  await request(app.getHttpServer()).post('/counter').expect(201, { count: 1 });
});

test('the cart keeps nested changes because the handler sets modified', async () => {
  await agent.post('/cart').send({ item: 'pear' }).expect(201);
  await agent.post('/cart').send({ item: 'pear' }).expect(201);
  await agent.post('/cart').send({ item: 'fig' }).expect(201);
  await agent.get('/cart').expect(200, { items: { pear: 2, fig: 1 } });
});

test('log in, pass the guard, log out', async () => {
  await agent.get('/me').expect(401);
  const login = await agent.post('/login').send({ user: 'alice' }).expect(200);
  expect(String(login.headers['set-cookie'])).toMatch(/Expires=.*SameSite=Lax/);
  await agent.get('/me').expect(200, { user: 'alice' });
  const logout = await agent.post('/logout').expect(200);
  expect(String(logout.headers['set-cookie'])).toContain('Max-Age=0');
  await agent.get('/me').expect(401);
});

test('a failing route still saves what it wrote', async () => {
  const failed = await agent.post('/fail').expect(400);
  // A signed cookie is readable by its holder: its first part is the base64 JSON.
  const payload = String(failed.headers['set-cookie']).split('=')[1].split('.')[0];
  expect(JSON.parse(Buffer.from(payload, 'base64url').toString())).toEqual({ lastError: 'the order failed' });
});

describe('SESSION_STORE=filesystem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nest-session-sample-e2e-'));
  beforeEach(async () => {
    await app.close();
    process.env.SESSION_STORE = 'filesystem';
    process.env.SESSION_DIR = dir;
    await startSample();
  });
  afterEach(() => {
    delete process.env.SESSION_STORE;
    delete process.env.SESSION_DIR;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('the same app keeps its sessions in files, and login changes the session id', async () => {
    const first = await agent.post('/counter').expect(201, { count: 1 });
    const sidBefore = String(first.headers['set-cookie']).split(';')[0].split('=')[1];
    expect(sidBefore).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(readdirSync(dir).length).toBe(1);
    await agent.post('/counter').expect(201, { count: 2 });
    const login = await agent.post('/login').send({ user: 'bob' }).expect(200);
    const sidAfter = String(login.headers['set-cookie']).split(';')[0].split('=')[1];
    expect(sidAfter).not.toBe(sidBefore);
    await agent.get('/me').expect(200, { user: 'bob' });
  });
});
