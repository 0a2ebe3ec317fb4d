export { CacheManagerSessionInterface, type CacheManagerSessionOptions } from './cache-manager.session-interface.js';
