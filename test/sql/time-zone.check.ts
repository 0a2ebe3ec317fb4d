/**
 * Run by time-zone.e2e-spec.ts in a Jest of its own, with TZ set to a zone
 * far from UTC (a Jest worker cannot change its own time zone): sessions
 * written and read through the interface on PostgreSQL, MariaDB and SQLite
 * keep `expiry` in naive UTC, and expired rows are expired at the UTC
 * instant, whatever this process's time zone.
 */
import { Controller, Get, Query, type INestApplication } from '@nestjs/common';
import Database from 'better-sqlite3';
import { createPool } from 'mysql2/promise';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import request from 'supertest';
import { Session, SessionModule, type SessionMixin } from '../../lib/index.js';
import { SqlSessionInterface, type SqlClient } from '../../lib/sql/index.js';
import { cookiePair, createApp } from '../support/apps.js';
import { MariaDBServer } from '../support/mariadb-server.js';
import { PostgresServer } from '../support/postgres-server.js';
import { expiryIn, numbered, utcMillis, utcTextOf, type Dialect } from './sql-backend.js';

@Controller()
class TimeController {
  @Get('set')
  set(@Session() session: SessionMixin, @Query('value') value: string) {
    session.set('value', value);
    return { sid: (session as unknown as { sid: string }).sid };
  }

  @Get('get')
  get(@Session() session: SessionMixin) {
    return { value: session.get('value') ?? null };
  }
}

const LIFETIME = 7200;

async function exercise(dialect: Dialect, client: SqlClient, query: (sql: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>) {
  let app: INestApplication | undefined;
  try {
    app = await createApp({
      imports: [SessionModule.forRoot({ interface: new SqlSessionInterface({ client }), secretKey: 'k', permanentSessionLifetime: LIFETIME })],
      controllers: [TimeController],
    });
    const before = Date.now();
    const set = await request(app.getHttpServer()).get('/set?value=here').expect(200);
    const [row] = await query(`SELECT ${utcTextOf(dialect, 'expiry')} AS expiry FROM sessions WHERE session_id = ?`, [`session:${set.body.sid}`]);
    const expiry = utcMillis(String(row!.expiry));
    expect(expiry).toBeGreaterThanOrEqual(before + LIFETIME * 1000 - 1500);
    expect(expiry).toBeLessThanOrEqual(Date.now() + LIFETIME * 1000 + 1500);
    await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(set)).expect(200, { value: 'here' });
    // A minute past in UTC is expired, though in this process's local time it would be hours ahead (or behind).
    await query(`UPDATE sessions SET expiry = ${expiryIn(dialect, -60)} WHERE session_id = ?`, [`session:${set.body.sid}`]);
    await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(set)).expect(200, { value: null });
    await query(`UPDATE sessions SET expiry = ${expiryIn(dialect, 60)} WHERE session_id = ?`, [`session:${set.body.sid}`]);
    await request(app.getHttpServer()).get('/get').set('Cookie', cookiePair(set)).expect(200, { value: 'here' });
  } finally {
    await app?.close();
  }
}

test('this process runs outside UTC', () => {
  expect(process.env.TZ).toBeDefined();
  expect(new Date(Date.UTC(2024, 0, 1)).getTimezoneOffset()).not.toBe(0);
});

test('PostgreSQL: expiry is now + the lifetime in UTC, and expires at the UTC instant', async () => {
  const server = await PostgresServer.start();
  const pool = new pg.Pool(server.poolConfig);
  try {
    await exercise('postgres', pool, async (sql, params = []) => (await pool.query(numbered(sql), params)).rows);
  } finally {
    await pool.end();
    await server.close();
  }
}, 120_000);

test('MariaDB: expiry is now + the lifetime in UTC, and expires at the UTC instant', async () => {
  const server = await MariaDBServer.start();
  // mysql2's default time zone is 'local': any Date sent or read would be shifted by this process's offset.
  const pool = createPool(server.connectionOptions);
  try {
    await exercise('mysql', pool, async (sql, params = []) => {
      const [rows] = await pool.query(sql, params);
      return Array.isArray(rows) ? (rows as Array<Record<string, unknown>>) : [];
    });
  } finally {
    await pool.end();
    await server.close();
  }
}, 120_000);

test('SQLite: expiry is now + the lifetime in UTC, and expires at the UTC instant', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nest-session-sqlite-tz-'));
  const db = new Database(join(dir, 'sessions.db'));
  try {
    await exercise('sqlite', db, async (sql, params = []) => {
      const statement = db.prepare(sql);
      if (statement.reader) return statement.all(...params) as Array<Record<string, unknown>>;
      statement.run(...params);
      return [];
    });
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
