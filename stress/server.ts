/**
 * The application under stress: `node stress/dist/server.js PORT REDIS_PORT`.
 * A NestJS app on Express with sessions in Redis (storeTimeout 500 ms):
 *   GET /put?key=K   sets one key of the session (each key is written once)
 *   GET /none        never touches the session
 * It reports its memory to the parent process every 250 ms.
 */
import 'reflect-metadata';
import { Controller, Get, Module, Query } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { Session, SessionModule, type SessionMixin } from 'nest-session';
import { RedisSessionInterface } from 'nest-session/redis';

@Controller()
class StressController {
  @Get('put')
  put(@Session() session: SessionMixin, @Query('key') key: string) {
    session.set(key, 1);
    return 'ok';
  }

  @Get('none')
  none() {
    return 'none';
  }
}

const [port, redisPort] = [Number(process.argv[2]), Number(process.argv[3])];
const client = new Redis({ host: '127.0.0.1', port: redisPort, retryStrategy: () => 50 });
client.on('error', () => undefined); // outages are the point here; the interface logs them

@Module({
  imports: [SessionModule.forRoot({ interface: new RedisSessionInterface({ client, storeTimeout: 500 }), secretKey: 'stress' })],
  controllers: [StressController],
})
class StressModule {}

const app = await NestFactory.create(StressModule, { logger: ['fatal'] });
await app.listen(port, '127.0.0.1');
const report = () => process.send?.({ memory: process.memoryUsage() });
setInterval(report, 250).unref();
process.on('message', (message) => {
  if (message === 'gc') {
    (globalThis as { gc?: () => void }).gc?.();
    report();
  }
});
process.send?.('ready');
