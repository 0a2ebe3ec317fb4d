export { MemcachedSessionInterface, memcachedExpiry, type MemcachedSessionOptions } from './memcached.session-interface.js';
