export { RedisSessionInterface, type RedisSessionOptions } from './redis.session-interface.js';
