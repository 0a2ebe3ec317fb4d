/**
 * A NestJS app (Express) whose sessions are files, run as its own process by
 * the filesystem tests: `node session-app.js '<json options>'`. It prints
 * `LISTENING <port>` once it accepts connections on 127.0.0.1.
 *
 * Routes: /put?key&value sets one key; /all answers the whole session;
 * /clear empties it (a logout); /visit creates a session per request without
 * a cookie (an anonymous visitor); /none never touches the session.
 */
import 'reflect-metadata';
import { Controller, Get, Module, Query } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FileSystemSessionInterface, type FileSystemSessionOptions } from '../../../lib/filesystem/index.js';
import { Session, SessionModule, type SessionMixin } from '../../../lib/index.js';

const options = JSON.parse(process.argv[2] ?? '{}') as FileSystemSessionOptions;

@Controller()
class SessionAppController {
  @Get('put')
  put(@Session() session: SessionMixin, @Query('key') key: string, @Query('value') value: string) {
    session.set(key, value);
    return { pid: process.pid };
  }

  @Get('all')
  all(@Session() session: SessionMixin) {
    return session.toJSON();
  }

  @Get('clear')
  clear(@Session() session: SessionMixin) {
    session.clear();
    return '';
  }

  @Get('visit')
  visit(@Session() session: SessionMixin) {
    session.set('visits', ((session.get('visits') as number | undefined) ?? 0) + 1);
    return '';
  }

  @Get('none')
  none() {
    return 'none';
  }
}

@Module({
  imports: [SessionModule.forRoot({ interface: new FileSystemSessionInterface(options), secretKey: 'test secret' })],
  controllers: [SessionAppController],
})
class SessionAppModule {}

const app = await NestFactory.create(SessionAppModule, { logger: ['error', 'warn'] });
await app.listen(0, '127.0.0.1');
const address = app.getHttpServer().address() as { port: number };
process.stdout.write(`LISTENING ${address.port}\n`);
