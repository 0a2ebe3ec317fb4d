import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';

const app = await NestFactory.create(AppModule);
const port = Number(process.env.PORT ?? 3000);
// 127.0.0.1, not localhost: cookies belong to a host name, and the Flask app next door uses this one.
await app.listen(port, '127.0.0.1');
new Logger('Sample').log(
  `Open http://127.0.0.1:${port} in a browser, or try: curl -c jar -b jar -X POST http://127.0.0.1:${port}/counter`,
);
